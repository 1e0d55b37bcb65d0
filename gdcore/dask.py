"""gdcore on Dask: full-batch fits of dask arrays on a cluster.

Each epoch, every row block's fused loss-and-gradient sums are computed by gdcore._core on
the worker that holds the block, and only its d + 3 sums travel to the client, which adds
them in block order and makes the update (the epoch loop of gdcore._chunked, shared with
``gdcore.fit_chunks``).  ``precompute=True`` forms the Gram matrix in one distributed pass,
after which every epoch runs locally in O(d²).

Results equal ``gdcore.fit(X.compute(), y.compute(), batch_size=None, ...)`` up to rounding.
Mini-batch optimisation is not offered on Dask: one update per mini-batch would cost one
cluster round trip per batch; a ``batch_size`` below the rows' count raises ValueError
(one of n or more is the full batch, as in gdcore.fit).

    from dask.distributed import Client
    import dask.array as da, gdcore.dask
    client = Client("tcp://scheduler:8786")          # or LocalCluster()
    X = da.from_zarr(...)                             # rows chunked, all columns per chunk
    result = gdcore.dask.fit(X, y, optimizer="adam", lr=0.01, epochs=200)

Requires ``pip install 'gdcore[dask]'``.
"""

from __future__ import annotations

import numpy as np

from . import _core
from ._api import finish_run, name_features, prepare_run
from ._chunked import run_full_batch
from ._precompute import (augmented_gram, check_gram, check_gram_fits_in_memory,
                          gram_epoch_sums, merge_grams)
from ._validation import (check_choice, check_data, check_int, check_weight_sum,
                          converted_weights, feature_names_of, fit_dtype, nullable_numbers,
                          provisional_weights, scaled_weights, weight_scale_exponent,
                          weight_sum_and_largest)

__all__ = ["fit"]


def _import_dask():
    try:
        import dask
        import dask.array as da
    except ImportError:
        raise ImportError("gdcore.dask needs dask: pip install 'gdcore[dask]'") from None
    return dask, da


def _in_block(exc, index, first_row, rows):
    """exc, its message prefixed with the row block it is about."""
    return type(exc)(f"block {index} (rows {first_row} to {first_row + rows - 1}): {exc}")


def _validate_block(X, y, w, index, first_row, n_threads):
    """On a worker, once per fit: check a row block as gdcore.fit checks X, y and weights;
    returns its weights' float64 sum and largest (as given), for the check and the scale
    gdcore.fit applies to them, the error that refuses the block, or None, and the message of
    the error its weights raise if they are not scaled (a positive one 0 in X's dtype: see
    provisional_weights), or None.  Errors name the block and rows of the whole array, and
    are returned, not raised: the client raises the first block's, as gdcore.fit names the
    first bad row, whichever block's task ends first."""
    try:
        problem = check_data(X, y, w, allow_zero_weight_sum=True, row_offset=first_row,
                             n_threads=n_threads, weights_as_given=True)
    except (ValueError, TypeError) as exc:
        return 0.0, 0.0, _in_block(exc, index, first_row, len(X)), None
    total, largest = weight_sum_and_largest(problem)
    unscaled_error = None
    if problem.sample_weight is not None:
        _, lost = provisional_weights(problem.sample_weight, problem.dtype, first_row)
        if lost is not None:
            unscaled_error = str(_in_block(lost, index, first_row, len(X)))
    return total, largest, None, unscaled_error


def _first_error(a, b):
    """Of two runs of blocks' errors (or None), a's blocks before b's: the first block's."""
    return a if a is not None else b


def _combine_validations(a, b):
    """Two runs of blocks' _validate_block results, a's blocks before b's, as one: the sums
    added, the larger largest, and each kind of error of the first block that has one."""
    with np.errstate(over="ignore"):
        total = a[0] + b[0]
    return total, max(a[1], b[1]), _first_error(a[2], b[2]), _first_error(a[3], b[3])


def _weight_lost_once_scaled(w, dtype, weight_exponent, index, first_row):
    """On a worker, once per fit whose weights are scaled: the error naming the first
    positive weight of the block that scaling and converting to dtype make 0, or None."""
    _, lost = converted_weights(np.asarray(w), dtype, weight_exponent, first_row)
    return None if lost is None else _in_block(lost, index, first_row, len(w))


def _block_problem(X, y, w, dtype, weight_exponent):
    """A validated block in the fit's dtype, its weights scaled as all the blocks' are, then
    converted: validation has refused a weight this loses (_validate_block, and
    _weight_lost_once_scaled where the weights are scaled)."""
    X = np.ascontiguousarray(X, dtype=dtype)
    y = np.ascontiguousarray(y, dtype=dtype)
    if w is not None:
        w = (np.ascontiguousarray(w, dtype=dtype) if weight_exponent == 0
             else scaled_weights(np.asarray(w), dtype, weight_exponent))
    return X, y, w


def _block_sums(X, y, w, theta, n_threads, weight_exponent=0):
    """On a worker, every epoch: the raw sums of one (already validated) row block."""
    dtype = theta.dtype
    X, y, w = _block_problem(X, y, w, dtype, weight_exponent)
    return _core.block_sums_of(X, y, np.empty(0, dtype) if w is None else w, theta, n_threads)


def _block_gram(X, y, w, dtype, weight_exponent=0):
    return augmented_gram(*_block_problem(X, y, w, dtype, weight_exponent))


def _add_quietly(a, b):
    """a + b, an overflow left to the checks that report it (weights, divergence)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.add(a, b)


def _in_block_order(parts):
    """The blocks' sums added in block order.  d + 3 numbers a block: gathering them beats a
    tree of tasks, and one order for every scheduler and persist gives the same bits in each,
    whichever worker finished first."""
    total = np.array(parts[0], dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        for part in parts[1:]:
            total += part
    return total


def _active_client():
    """The current dask.distributed Client, or None (then the local scheduler is used)."""
    try:
        from distributed import default_client
        return default_client()
    except (ImportError, ValueError):
        return None


def _tree_sum(dask, parts, combine=_add_quietly):
    """Pairwise sums (or another combine) of delayed arrays, so no single task adds up every
    block."""
    add = dask.delayed(combine, pure=True)
    while len(parts) > 1:
        parts = [add(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i]
                 for i in range(0, len(parts), 2)]
    return parts[0]


def _known_chunks(name, values):
    if any(np.isnan(c) for c in values.chunks[0]):
        raise ValueError(f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() "
                         "first")


def _partition_as_float64(part):
    """A pandas partition of nullable numbers (Int64, Float64, ...) as float64, NA as NaN
    (which the blocks' finite check then names), as gdcore.fit converts such a frame."""
    import pandas as pd
    values = part.to_numpy(dtype=np.float64, na_value=np.nan)
    if values.ndim == 2:
        return pd.DataFrame(values, index=part.index, columns=part.columns)
    return pd.Series(values, index=part.index, name=part.name)


def _frame_as_array(name, frame):
    """A dask DataFrame or Series as a dask array, its columns checked as gdcore.fit checks
    a pandas frame's: booleans refused, pandas' nullable numbers made float64."""
    dtypes = [frame.dtype] if frame.ndim == 1 else list(frame.dtypes)
    if nullable_numbers(name, dtypes):
        frame = frame.map_partitions(_partition_as_float64,
                                     meta=_partition_as_float64(frame._meta))
    return frame.to_dask_array(lengths=True)


def _as_dask_arrays(da, X, y, sample_weight):
    if hasattr(X, "to_dask_array"):  # dask DataFrame
        X = _frame_as_array("X", X)
    if hasattr(y, "to_dask_array"):
        y = _frame_as_array("y", y)
    X = X if isinstance(X, da.Array) else da.from_array(np.asarray(X))
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got {X.ndim}-D")
    _known_chunks("X", X)
    # whole rows per block: each task needs every column of its rows
    X = X.rechunk({1: -1})
    rows = X.chunks[0]
    y = da.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:     # a one-column frame or array, as gdcore.fit takes
        y = y[:, 0]
    _known_chunks("y", y)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must be 1-D with len(y) == X.shape[0] = {X.shape[0]}, got shape "
                         f"{y.shape}")
    y = y.rechunk((rows,))
    if hasattr(sample_weight, "to_dask_array"):     # a dask Series
        sample_weight = _frame_as_array("sample_weight", sample_weight)
    if sample_weight is not None:
        sample_weight = da.asarray(sample_weight)
        _known_chunks("sample_weight", sample_weight)
        if sample_weight.ndim != 1 or sample_weight.shape[0] != X.shape[0]:
            raise ValueError(f"sample_weight must be 1-D of length {X.shape[0]}, got shape "
                             f"{sample_weight.shape}")
        sample_weight = sample_weight.rechunk((rows,))
    return X, y, sample_weight


def fit(X, y, *, sample_weight=None, optimizer=None, lr=None, epochs=100, batch_size=None,
        schedule=None, l2=0.0, l1=0.0, fit_intercept=True, tol=1e-4, n_iter_no_change=5,
        gtol=None, n_threads=1, init=None, callback=None, precompute=False, persist=True):
    """Full-batch :func:`gdcore.fit` on dask arrays (or dask DataFrames through their arrays).

    Uses the active Dask client (or scheduler).  ``persist=True`` keeps X, y and the weights
    in the cluster's memory (with no distributed client, this process's) between epochs; a
    lost worker's blocks are recomputed from their graph, so the fit survives it.
    ``persist=False`` keeps nothing: each epoch computes the blocks again from their graph,
    for data larger than the cluster's memory.  ``n_threads`` is the number of threads each
    block's pass uses on its worker (default 1).  ``precompute`` is True or False (default
    False: each epoch streams the blocks; True forms the Gram matrix in one distributed pass),
    not "auto".  Weights at any scale are brought near 1 as gdcore.fit brings them: the
    blocks' validation finds the largest of all, and every block's weights are scaled by the
    one power of two it gives before they are converted to X's dtype (float64 weights with
    float32 X past float32's range, or all below its normal range, fit as the same weights
    near 1; weights beyond 2^±64 take one more read of the weights, so that one scaling loses
    is named before the first epoch).  An error names the first block refused (and the row
    in the whole array), as gdcore.fit names the first bad row, whichever block's task ends
    first.  Other arguments are those of :func:`gdcore.fit`.
    """
    dask, da = _import_dask()
    # checked as gdcore.fit checks it (0 and True were refused as mini-batch sizes)
    batch_size = check_int("batch_size", batch_size, low=1, allow_none=True)
    precompute = check_choice("precompute", precompute, (True, False))
    names = feature_names_of(X)
    X, y, sample_weight = _as_dask_arrays(da, X, y, sample_weight)
    n, d = X.shape
    if batch_size is not None and batch_size < n:
        # a batch of n rows or more is the full batch, as in gdcore.fit
        raise ValueError(f"gdcore.dask.fit runs full-batch optimizers only (batch_size=None, "
                         f"or >= n_samples={n}; got {batch_size}): a mini-batch update per "
                         "cluster round trip would be slower than fitting on one machine; use "
                         "gdcore.fit on a sample for mini-batch methods")
    if n == 0 or d == 0:
        raise ValueError(f"X has shape {X.shape}; it needs at least 1 row and 1 column")
    dtype = fit_dtype(X.dtype)
    if precompute:
        check_gram_fits_in_memory(d, auto=False)    # (no "auto" here)
    run = prepare_run(n, d, dtype, optimizer=optimizer, lr=lr, epochs=epochs, batch_size=None,
                      schedule=schedule, l2=l2, l1=l1, fit_intercept=fit_intercept, tol=tol,
                      n_iter_no_change=n_iter_no_change, gtol=gtol, shuffle=False, seed=None,
                      n_threads=n_threads, init=init, callback=callback, backend="dask")
    name_features(run, names)
    if persist:
        X, y = X.persist(), y.persist()
        sample_weight = sample_weight.persist() if sample_weight is not None else None
    # a filter's empty partitions add nothing (and gdcore.fit's checks refuse empty data)
    sizes = X.chunks[0]
    kept = [index for index, size in enumerate(sizes) if size > 0]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
    first_rows = [starts[i] for i in kept]
    x_all, y_all = X.to_delayed().ravel(), y.to_delayed().ravel()
    x_blocks, y_blocks = [x_all[i] for i in kept], [y_all[i] for i in kept]
    if sample_weight is not None:
        w_all = sample_weight.to_delayed().ravel()
        w_blocks = [w_all[i] for i in kept]
    else:
        w_blocks = [None] * len(x_blocks)
    block_sums = dask.delayed(_block_sums, pure=True)
    block_gram = dask.delayed(_block_gram, pure=True)
    validate = dask.delayed(_validate_block, pure=True)
    total_weight, largest, refused, unscaled_error = _tree_sum(
        dask, [validate(xb, yb, wb, index, first, run.n_threads)
               for index, xb, yb, wb, first in zip(kept, x_blocks, y_blocks, w_blocks,
                                                   first_rows)],
        _combine_validations).compute()
    if refused is not None:
        raise refused
    check_weight_sum(total_weight)
    # one power of two for every block, found from the largest of all, as gdcore.fit scales
    # its weights; each block's are scaled before they are converted to X's dtype
    scale = weight_scale_exponent(largest) if sample_weight is not None else 0
    if scale == 0 and unscaled_error is not None:
        raise ValueError(unscaled_error)
    if scale != 0:
        # one more read of the weights (not X), for weights past 2^±64 only: a weight that
        # scaling loses is named in the first block holding one, before the first epoch
        lost = dask.delayed(_weight_lost_once_scaled, pure=True)
        refused = _tree_sum(dask, [lost(wb, dtype, scale, index, first)
                                   for index, wb, first in zip(kept, w_blocks, first_rows)],
                            _first_error).compute()
        if refused is not None:
            raise refused

    # persist=False: nothing of the data is kept between epochs, so each epoch computes the
    # blocks from their graph (on the active client, through dask's scheduler); futures of
    # the blocks would hold all of them in the cluster's memory for the whole fit
    client = _active_client() if persist else None
    if client is not None:
        # With a distributed client, submit each epoch's tasks straight to the blocks'
        # futures: no graph to build and optimise per epoch.  The futures keep their lineage,
        # so a lost worker's blocks are recomputed.
        x_futures = client.compute(list(x_blocks))
        y_futures = client.compute(list(y_blocks))
        w_futures = (client.compute(list(w_blocks)) if sample_weight is not None
                     else [None] * len(x_futures))

        def distributed_sums(theta):
            parts = [client.submit(_block_sums, xf, yf, wf, theta.copy(), run.n_threads,
                                   scale, pure=False)
                     for xf, yf, wf in zip(x_futures, y_futures, w_futures)]
            return _in_block_order(client.gather(parts))
    else:
        def distributed_sums(theta):
            parts = [block_sums(xb, yb, wb, theta.copy(), run.n_threads, scale)
                     for xb, yb, wb in zip(x_blocks, y_blocks, w_blocks)]
            return _in_block_order(dask.compute(*parts))

    def execute(run):
        if not precompute:
            return run_full_batch(run, distributed_sums)
        gram = _tree_sum(dask, [block_gram(xb, yb, wb, dtype, scale)
                                for xb, yb, wb in zip(x_blocks, y_blocks, w_blocks)],
                         merge_grams).compute()
        check_gram(gram)
        return run_full_batch(run, gram_epoch_sums(gram, distributed_sums))
    return finish_run(run, execute)
