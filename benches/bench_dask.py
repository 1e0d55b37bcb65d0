"""Per-epoch time of gdcore.dask.fit on a local cluster, against the in-memory core and
against dask_glm.algorithms.gradient_descent on the same chunked data.

    python benches/bench_dask.py [--n 1000000 --d 100 --chunks 8]

Prints seconds per epoch and the ratios (targets: >= 10x faster per epoch than dask-glm,
within 2x of the in-memory core).  dask-glm is optional (pip install dask-glm).
"""

import argparse
import time

import numpy as np



def median_epoch(fit, X, y, **options):
    stamps = []
    fit(X, y, callback=lambda progress: stamps.append(time.perf_counter()) and False,
        **options)
    return float(np.median(np.diff(stamps)))


def per_epoch(function, epochs):
    started = time.perf_counter()
    function(epochs)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(
        description=" ".join(__doc__.split("\n\n")[0].split()),
        epilog="Targets: >= 10x faster per epoch than dask-glm, within 2x of the in-memory "
               "core; dask-glm is optional (pip install dask-glm). Not the same work per "
               "iteration: dask-glm's gradient_descent runs a backtracking line search (two or "
               "more passes over X) and fits no intercept; gdcore's epoch is one pass.")
    parser.add_argument("--n", type=int, default=1_000_000, help="rows (default 1,000,000)")
    parser.add_argument("--d", type=int, default=100, help="features (default 100)")
    parser.add_argument("--chunks", type=int, default=8, help="row chunks (default 8)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs timed (default 10)")
    args = parser.parse_args()
    if args.n < 1 or args.d < 1 or args.epochs < 1:
        parser.error(f"--n, --d and --epochs must be >= 1, got {args.n}, {args.d} and "
                     f"{args.epochs}")
    if not 1 <= args.chunks <= args.n:
        parser.error(f"--chunks must be 1 to --n ({args.n}), got {args.chunks}")

    import dask.array as da
    from distributed import Client, LocalCluster

    import gdcore
    import gdcore.dask

    X, y, _ = gdcore.make_regression(args.n, args.d, seed=0)
    rows = -(-args.n // args.chunks)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        dX = da.from_array(X, chunks=(rows, args.d)).persist()
        dy = da.from_array(y, chunks=rows).persist()
        options = dict(optimizer="gd", lr=0.1, tol=None, epochs=args.epochs + 1)
        # seconds per epoch: the median gap between clock readings at each epoch's end, so
        # set-up (persisting, validating the blocks) is not counted
        dask_epoch = median_epoch(gdcore.dask.fit, dX, dy, **options)
        memory_epoch = median_epoch(gdcore.fit, X, y, precompute=False, **options)
        print(f"data {args.n:,} x {args.d} float64 in {args.chunks} chunks, 2 workers")
        print(f"gdcore.dask.fit      {dask_epoch * 1e3:9.2f} ms/epoch")
        print(f"gdcore.fit in memory {memory_epoch * 1e3:9.2f} ms/epoch   "
              f"dask / memory = {dask_epoch / memory_epoch:.2f}x (target <= 2x)")
        try:
            from dask_glm.algorithms import gradient_descent
            from dask_glm.families import Normal
        except ImportError:
            print("dask-glm not installed: pip install dask-glm to compare with it")
            return
        # dask-glm has no per-iteration hook: the difference of two runs removes its set-up
        def glm_fit(epochs):
            gradient_descent(dX, dy, max_iter=epochs, tol=0, family=Normal)
        glm_epoch = (per_epoch(glm_fit, args.epochs + 1) - per_epoch(glm_fit, 1)) / args.epochs
        print(f"dask_glm gradient_descent {glm_epoch * 1e3:9.2f} ms/iteration   "
              f"dask-glm / gdcore.dask = {glm_epoch / dask_epoch:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
