"""The ``gdcore`` console script: one module per subcommand, registered here."""

from __future__ import annotations

import argparse
import sys

from .. import __version__, build_info
from . import bench, demo, fit, lr_search, predict

# Each subcommand module has add_parser(subparsers) and run(args) -> exit code.
SUBCOMMANDS = [demo, fit, predict, lr_search, bench]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="gdcore",
        description="Linear regression by gradient descent: every classic optimizer in a "
                    "fused, multithreaded Cython core.")
    info = build_info()
    # what a bug report needs: which compiled core runs here and how it was built
    version = (f"gdcore {__version__} (compiled core: {info['core']}"
               + (f", {info['flags']}" if info["flags"] else "")
               + f"; OpenMP {'on' if info['openmp'] else 'off'})")
    parser.add_argument("--version", action="version", version=version)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("gdcore: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
