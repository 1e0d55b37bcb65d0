"""The side-by-side comparison of ``gdcore bench``, runnable from here:

    python benches/bench_compare.py [--n N --d D --threads K --json out.json]
"""

import sys

from gdcore.cli import main

if __name__ == "__main__":
    # gdcore bench's own options and help (its usage line says "gdcore bench")
    sys.exit(main(["bench", *sys.argv[1:]]))
