"""``gdcore bench``: gdcore side by side with its baselines (see gdcore.bench)."""

from __future__ import annotations


from .. import bench
from .._validation import make_rng, resolve_n_threads
from ._messages import drop_stdout, fail
from ._options import count
from ._paths import check_output_path
from .fit import DATA_EXTENSIONS


def add_parser(subparsers):
    p = subparsers.add_parser(
        "bench", help="time gdcore against read bandwidth, NumPy, scikit-learn and torch",
        description="Each row is a ratio of two timings taken in this run on the same data. "
                    "scikit-learn and torch rows are skipped (n/a) where not installed.")
    p.add_argument("--n", type=count, default=1_000_000,
                   help="rows (default 1,000,000; 1e6 and 1_000_000 are taken too)")
    p.add_argument("--d", type=count, default=100, help="features (default 100)")
    p.add_argument("--threads", type=int, default=None, help="n_threads (default: OpenMP's)")
    p.add_argument("--quick", action="store_true", help="fewer repeats")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the data and the shuffles (default 0)")
    p.set_defaults(run=run)
    return p


def run(args):
    try:
        if args.n < 1000 or args.d < 1:
            raise ValueError(f"--n must be >= 1000 and --d >= 1, got {args.n} and {args.d}")
        threads_used = resolve_n_threads(args.threads)
        make_rng(args.seed)
        bench.check_fits_in_memory(args.n, args.d)
        check_output_path("--json", args.json)      # before minutes of timing
        if args.json is not None and args.json.lower().endswith(DATA_EXTENSIONS):
            # as --save refuses one: a data file's name is most often a data file
            raise ValueError(f"--json {args.json}: the results are written as JSON; name "
                             "the file .json")
    except (ValueError, TypeError) as exc:
        return fail("bench", exc)
    say = _printer()
    say(f"gdcore bench on {bench.describe_machine(bench.machine_description())}")
    results = bench.run_benchmarks(n=args.n, d=args.d, n_threads=args.threads,
                                   quick=args.quick, seed=args.seed, log=say)
    say(bench.summarize(results))
    if args.json:
        # the settings as given (run is the subcommand's function, not a setting)
        settings = {key: value for key, value in vars(args).items() if key != "run"}
        settings["threads_used"] = threads_used
        try:
            bench.write_json(args.json, results, settings)
        except OSError as exc:
            return fail("bench", f"--json {args.json}: {exc.strerror}")
        say(f"wrote {args.json}")
    return 0


def _printer():
    """print(), flushed, that outlives its reader: once stdout's pipe is closed (``| head``)
    the rest goes nowhere and the bench runs on, so that --json is still written."""
    closed = []

    def say(line):
        if closed:
            return
        try:
            print(line, flush=True)
        except BrokenPipeError:
            closed.append(True)
            drop_stdout()
    return say
