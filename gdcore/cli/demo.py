"""``gdcore demo``: every optimizer on one synthetic problem, side by side."""

from __future__ import annotations

import math
import time

import numpy as np

from .. import DivergenceError, build_info, fit, make_regression
from .._validation import make_rng, resolve_n_threads
from ..bench import refuse_past_memory
from ..schedules import CosineAnnealingLR
from ._messages import fail
from ._options import count
from ._paths import check_plot_path

# (label, fit options): settings under which each optimizer converges on standardised data.
# Full-batch for the deterministic methods, mini-batches of 256 for the stochastic ones.
MIN_UPDATES = 20_000

DEMO_RUNS = [
    ("gd", dict(optimizer="gd", lr=0.5, epochs=100)),
    ("sgd (batch 256)", dict(optimizer="sgd", lr=0.05, epochs=10, batch_size=256,
                             schedule="invscaling")),
    # Heavy-ball losses oscillate on the way down, so the tol rule would stop them early.
    # With momentum 0.9 the error shrinks by about √0.9 an epoch whatever the lr: 200 epochs
    # (100 left |w - w*| at 0.05; Gram mode makes them cheap).
    ("momentum", dict(optimizer="momentum", lr=0.05, epochs=200, tol=None)),
    ("nesterov", dict(optimizer="nesterov", lr=0.05, epochs=100, tol=None)),
    ("adagrad (batch 256)", dict(optimizer="adagrad", lr=0.5, epochs=10, batch_size=256,
                                 tol=1e-5)),
    ("rmsprop (batch 256)", dict(optimizer="rmsprop", lr=0.003, epochs=10, batch_size=256,
                                 schedule="invscaling")),
    ("adam (batch 256)", dict(optimizer="adam", lr=0.01, epochs=10, batch_size=256,
                              schedule="invscaling")),
    ("amsgrad (batch 256)", dict(optimizer="amsgrad", lr=0.01, epochs=10, batch_size=256,
                                 schedule="invscaling")),
    # Fixed-length steps never settle, so it runs its whole cosine schedule.
    ("normalized", dict(optimizer="normalized", lr=1.0, epochs=100, tol=None)),
]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "demo", help="fit a synthetic problem with every optimizer and print a table",
        description="Fit y = X·w + b + noise (X standard normal, known w) with every optimizer "
                    "and print epochs run, final MSE, distance to the true coefficients and time.")
    p.add_argument("--n", type=count, default=1_000_000,
                   help="rows (default 1,000,000; 1e6 and 1_000_000 are taken too)")
    p.add_argument("--d", type=count, default=100, help="features (default 100)")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                   help="dtype of X and y (default float64)")
    p.add_argument("--noise", type=float, default=0.1,
                   help="noise standard deviation (default 0.1)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the data and the mini-batch shuffles (default 0)")
    p.add_argument("--threads", type=int, default=None, help="n_threads (default: OpenMP's)")
    p.add_argument("--optimizers", default=None,
                   help="comma-separated subset of: "
                        + ", ".join(label.split()[0] for label, _ in DEMO_RUNS))
    p.add_argument("--plot", metavar="PNG",
                   help="write every optimizer's loss curve to one figure")
    p.set_defaults(run=run)
    return p


def chosen_runs(optimizers):
    """DEMO_RUNS, or those whose optimizer --optimizers names (comma-separated)."""
    if optimizers is None:
        return DEMO_RUNS
    known = [label.split()[0] for label, _ in DEMO_RUNS]
    # names in any case, as --optimizer and gdcore.fit take them
    wanted = [name.strip().lower() for name in optimizers.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in known]
    if unknown or not wanted:
        raise ValueError(f"--optimizers: unknown {', '.join(map(repr, unknown)) or 'empty list'}"
                         f"; choose from {', '.join(known)}")
    return [run for run in DEMO_RUNS if run[0].split()[0] in wanted]


def check_arguments(args):
    """Every option checked before the data are made (which takes seconds at the default size)."""
    if args.n < 1 or args.d < 1:
        raise ValueError(f"--n and --d must be >= 1, got {args.n} and {args.d}")
    if not (math.isfinite(args.noise) and args.noise >= 0):
        raise ValueError(f"--noise must be a finite number >= 0, got {args.noise}")
    # y = X·w + 1 + noise·ε: |ε| past 10 is a 1-in-10²³ draw, so a noise below a tenth of the
    # dtype's largest value gives a finite y (make_regression refuses one that does not)
    largest = float(np.finfo(args.dtype).max)
    if args.noise >= largest / 10:
        raise ValueError(f"--noise {args.noise:g} is too large for --dtype {args.dtype}: y "
                         f"would pass its largest value, {largest:.4g}")
    resolve_n_threads(args.threads)
    make_rng(args.seed)
    check_plot_path(args.plot)
    # X, y and a shuffle's permutation
    refuse_past_memory(args.n, args.d, args.n * (args.d + 1) * np.dtype(args.dtype).itemsize
                       + 8 * args.n, f"X and y in {args.dtype}, a permutation")
    return chosen_runs(args.optimizers)


def run(args):
    try:
        runs = check_arguments(args)
    except (ValueError, TypeError) as exc:
        return fail("demo", exc)
    print(f"gdcore demo: {args.n:,} x {args.d} {args.dtype}, noise {args.noise}, "
          f"seed {args.seed}; compiled core: {build_info()['core']}", flush=True)
    started = time.perf_counter()
    try:
        X, y, true_coef = make_regression(args.n, args.d, noise=args.noise, intercept=1.0,
                                          seed=args.seed, dtype=args.dtype)
    except MemoryError:
        return fail("demo", f"--n {args.n:,} x --d {args.d} ({args.dtype}) does not fit in "
                            "memory; choose a smaller problem")
    except ValueError as exc:      # a y past the dtype's range (noise·ε, however unlikely)
        return fail("demo", f"--noise {args.noise:g}: {exc}")
    print(f"generated in {time.perf_counter() - started:.1f} s\n", flush=True)
    header = (f"{'optimizer':<22}{'epochs':>7}{'stop':>8}{'final MSE':>13}{'|w - w*|':>12}"
              f"{'seconds':>9}")
    curves = {}
    print(header)
    print("-" * len(header), flush=True)
    for label, options in runs:
        options = dict(options)
        if options.get("batch_size"):
            # Small problems have few batches an epoch: give the stochastic methods at least
            # MIN_UPDATES updates (the tol rule still stops them once they settle).
            per_epoch = -(-args.n // options["batch_size"])
            options["epochs"] = max(options["epochs"], -(-MIN_UPDATES // per_epoch))
        if options["optimizer"] == "normalized":
            options["schedule"] = CosineAnnealingLR(T_max=options["epochs"])
        try:
            result = fit(X, y, seed=args.seed, n_threads=args.threads, **options)
        except DivergenceError as exc:    # e.g. a --noise so large that a demo lr is too big
            return fail("demo", f"{label}: {exc}")
        curves[label] = result.loss_history
        residual = X @ result.coef + result.intercept - y
        mse = float(np.mean(np.square(residual, dtype=np.float64)))
        distance = float(np.linalg.norm(result.coef.astype(np.float64) - true_coef))
        print(f"{label:<22}{result.n_epochs:>7}{result.stop_reason:>8}{mse:>13.6g}"
              f"{distance:>12.3g}{result.elapsed:>9.2f}", flush=True)
    print(f"\n(the noise variance, the expected MSE of the true coefficients, is "
          f"{args.noise ** 2:.6g}; a fit's in-sample MSE can be lower)")
    if args.plot:
        from .._plot import save_loss_plot
        try:
            save_loss_plot(args.plot, curves, title=f"gdcore demo: {args.n:,} x {args.d} "
                                                    f"{args.dtype}")
        except Exception as exc:    # matplotlib's own errors too: one line, not a traceback
            return fail("demo", f"--plot {args.plot}: {exc}")
        print(f"plot written to {args.plot}")
    return 0
