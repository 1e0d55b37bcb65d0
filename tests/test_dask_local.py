"""gdcore.dask.fit without a distributed client: dask's local scheduler runs the blocks."""

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="gdcore.dask needs the optional dask extra")

import gdcore  # noqa: E402
import gdcore.dask  # noqa: E402

from conftest import problem  # noqa: E402


def test_local_scheduler_equals_in_memory_fit():
    from gdcore.dask import _active_client
    assert _active_client() is None  # no distributed.Client in this process now
    X, y, _ = problem(n=3000, d=4)
    w = np.random.default_rng(0).uniform(0, 1, 3000)
    result = gdcore.dask.fit(da.from_array(X, chunks=(700, 4)), da.from_array(y, chunks=700),
                             sample_weight=da.from_array(w, chunks=700), optimizer="adam",
                             lr=0.05, epochs=6, tol=None)
    memory = gdcore.fit(X, y, sample_weight=w, optimizer="adam", lr=0.05, epochs=6, tol=None,
                        precompute=False)
    np.testing.assert_allclose(result.loss_history, memory.loss_history, rtol=1e-10)
    np.testing.assert_allclose(result.coef, memory.coef, rtol=1e-10)


def assert_same_fit(a, b):
    np.testing.assert_array_equal(a.loss_history, b.loss_history)
    np.testing.assert_array_equal(a.coef, b.coef)
    assert a.intercept == b.intercept


def blocks_fits(X, y, w, rows, **settings):
    """gdcore.dask.fit with persist True and False, and fit_chunks over the same blocks."""
    dX, dy, dw = (da.from_array(a, chunks=(rows,) + a.shape[1:]) for a in (X, y, w))
    chunks = [(X[i:i + rows], y[i:i + rows], w[i:i + rows]) for i in range(0, len(y), rows)]
    return ([gdcore.dask.fit(dX, dy, sample_weight=dw, persist=persist, **settings)
             for persist in (True, False)]
            + [gdcore.fit_chunks(chunks, **settings)])


def test_blocks_add_in_block_order_whatever_persist():
    # one order of addition for every path, so the same bits; fit_chunks adds its chunks'
    # sums in their order too (persist=True tree-summed the blocks, and gave other bits)
    X, y, _ = problem(n=5000, d=6)
    w = np.random.default_rng(1).uniform(0.5, 2.0, 5000)
    fits = blocks_fits(X, y, w, 600, optimizer="adam", lr=0.05, epochs=8, tol=None)
    for other in fits[1:]:
        assert_same_fit(fits[0], other)


@pytest.mark.parametrize("name, row, column", [("X", 7000, 3), ("y", 19999, None),
                                               ("sample_weight", 12345, None)])
def test_block_errors_name_the_block_and_the_whole_arrays_row(name, row, column):
    X, y, _ = problem(n=20000, d=5)
    arrays = dict(X=X.copy(), y=y.copy(), sample_weight=np.ones(20000))
    bad = arrays[name]
    bad[(row, column) if column is not None else row] = -1.0 if name == "sample_weight" \
        else np.nan
    block = row // 3000
    where = f"first at index [{row}, {column}]" if column is not None else f"[{row}]"
    with pytest.raises(ValueError) as error:
        gdcore.dask.fit(da.from_array(arrays["X"], chunks=(3000, 5)),
                        da.from_array(arrays["y"], chunks=3000),
                        sample_weight=da.from_array(arrays["sample_weight"], chunks=3000))
    message = str(error.value)
    rows = f"rows {block * 3000} to {min(block * 3000 + 2999, 19999)}"
    assert message.startswith(f"block {block} ({rows}): {name}") and where in message


@pytest.mark.parametrize("fault", ["NaN in X", "weight lost once scaled"])
def test_of_several_bad_blocks_the_first_is_named_whichever_task_ends_first(monkeypatch,
                                                                             fault):
    """Blocks 1 and 3 are both refused and block 1's check is the slower: the error names
    block 1, whose row gdcore.fit names (the first task to fail named its own block).  A
    NaN, found as blocks are validated; a weight that float32 loses only once the weights
    are scaled by 2^-100 for their largest, 1e30 (it was found in the first epoch's sums)."""
    import time

    from gdcore import _validation
    from gdcore import dask as gdask
    X, y, _ = problem(n=5000, d=3, dtype=np.float32)
    X, w = X.copy(), None
    if fault == "NaN in X":
        X[1500, 0] = X[3500, 2] = np.nan
    else:
        w = np.full(5000, 1e30)
        w[1500] = w[3500] = 1e-20

    def slow_for_block_1(function):
        def slowed(*args, **kwargs):
            if kwargs.get("row_offset", args[-1]) == 1000:
                time.sleep(0.3)
            return function(*args, **kwargs)
        return slowed
    monkeypatch.setattr(gdask, "check_data", slow_for_block_1(gdask.check_data))
    for module in (gdask, _validation):
        if hasattr(module, "converted_weights"):
            monkeypatch.setattr(module, "converted_weights",
                                slow_for_block_1(module.converted_weights))
    with pytest.raises(ValueError) as error:
        gdcore.fit(X, y, sample_weight=w)
    expected = str(error.value)
    with pytest.raises(ValueError) as error:
        gdcore.dask.fit(da.from_array(X, chunks=(1000, 3)), da.from_array(y, chunks=1000),
                        sample_weight=None if w is None else da.from_array(w, chunks=1000),
                        callback=lambda info: pytest.fail("an epoch ran"))
    assert str(error.value) == f"block 1 (rows 1000 to 1999): {expected}"


@pytest.mark.parametrize("precompute", [False, True])
def test_weights_at_any_scale_as_fit(precompute):
    """Weights near 1e300 are brought near 1 by one power of two over all blocks, as gdcore.fit
    brings them (they overflowed the blocks' sums: DivergenceError, or a Gram matrix blamed on
    X and y), and no numpy overflow warning escapes."""
    import warnings
    X, y, _ = problem(n=2000, d=4)
    y = y * 1e3
    w = np.random.default_rng(1).uniform(0.5, 1.0, 2000) * 1e300
    options = dict(optimizer="adam", lr=0.05, epochs=5, tol=None, precompute=precompute)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = gdcore.dask.fit(da.from_array(X, chunks=(300, 4)), da.from_array(y, chunks=300),
                                 sample_weight=da.from_array(w, chunks=300), **options)
    memory = gdcore.fit(X, y, sample_weight=w, **options)
    np.testing.assert_allclose(result.loss_history, memory.loss_history, rtol=1e-10)
    np.testing.assert_allclose(result.coef, memory.coef, rtol=1e-10)


@pytest.mark.parametrize("precompute", [False, True])
@pytest.mark.parametrize("scale", [1e40, 1e-40, 1e-45])
def test_float64_weights_past_float32s_range_fit_float32_x_as_fit(precompute, scale):
    """float64 weights with float32 X are scaled by one power of two over all blocks before
    each block's are converted, as gdcore.fit scales them: past float32's range (~3.4e38) or
    all below its normal range (~1.2e-38) they were refused (too large, 0 in float32, or
    keeping fewer than 24 bits).  The fit is gdcore.fit's on the whole data, no numpy
    warning escapes, and the caller's weights are left alone."""
    import warnings
    X, y, _ = problem(n=2000, d=4, dtype=np.float32)
    w = np.random.default_rng(1).uniform(0.5, 1.5, 2000) * scale
    w[::7] = 0.0
    given = w.copy()
    options = dict(optimizer="adam", lr=0.05, epochs=5, tol=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = gdcore.dask.fit(da.from_array(X, chunks=(300, 4)), da.from_array(y, chunks=300),
                                 sample_weight=da.from_array(w, chunks=300),
                                 precompute=precompute, **options)
    memory = gdcore.fit(X, y, sample_weight=w, precompute=False, **options)
    assert result.coef.dtype == np.float32
    np.testing.assert_allclose(result.loss_history, memory.loss_history, rtol=1e-6)
    np.testing.assert_allclose(result.coef, memory.coef, rtol=1e-6)
    assert result.intercept == pytest.approx(memory.intercept, rel=1e-6)
    np.testing.assert_array_equal(w, given)


@pytest.mark.parametrize("precompute", [False, True])
@pytest.mark.parametrize("case", ["unscaled", "scaled", "tiny"])
def test_a_weight_float32_loses_is_named_as_fit_names_it(precompute, case):
    """A positive weight that becomes 0 in float32 is refused before any update, named as
    gdcore.fit names it in the whole data: 0 in float32 as given, or once the weights are
    scaled by a power of two (they span more than float32's range).  Each block narrowed
    its weights first: "0 in float32 (X's dtype)" for a weight that scaling loses."""
    from test_chunked import lost_weight_cases
    X, y, _ = problem(n=1000, d=4, dtype=np.float32)
    w = lost_weight_cases(len(y))[case]
    with pytest.raises(ValueError) as caught:
        gdcore.fit(X, y, sample_weight=w, epochs=3)
    expected = str(caught.value)
    with pytest.raises(ValueError) as caught:
        gdcore.dask.fit(da.from_array(X, chunks=(150, 4)), da.from_array(y, chunks=150),
                        sample_weight=da.from_array(w, chunks=150), epochs=3,
                        precompute=precompute, callback=lambda info: pytest.fail("an epoch ran"))
    assert str(caught.value) == f"block 2 (rows 300 to 449): {expected}"


def test_overflowing_weights_are_refused_without_a_numpy_warning():
    import warnings
    X, y, _ = problem(n=2, d=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(ValueError, match="sums to infinity"):
            gdcore.dask.fit(da.from_array(X, chunks=(1, 2)), da.from_array(y, chunks=1),
                            sample_weight=da.from_array(np.full(2, 1.5e308), chunks=1),
                            epochs=2)


def test_big_endian_float32_stays_float32():
    X, y, _ = problem(n=200, d=3, dtype=np.float32)
    swapped = X.astype(X.dtype.newbyteorder())
    result = gdcore.dask.fit(da.from_array(swapped, chunks=(50, 3)), da.from_array(y, chunks=50),
                             epochs=3, tol=None)
    memory = gdcore.fit(X, y, epochs=3, tol=None, precompute=False)
    assert result.coef.dtype == np.float32
    np.testing.assert_allclose(result.coef, memory.coef, rtol=1e-6)


def test_y_as_one_column_and_unknown_chunk_sizes():
    X, y, _ = problem(n=300, d=3)
    dX = da.from_array(X, chunks=(100, 3))
    column = gdcore.dask.fit(dX, da.from_array(y[:, None], chunks=(100, 1)), epochs=3, tol=None)
    flat = gdcore.dask.fit(dX, da.from_array(y, chunks=100), epochs=3, tol=None)
    np.testing.assert_array_equal(column.coef, flat.coef)
    dy = da.from_array(y, chunks=100)
    unknown = dy[dy > -np.inf]          # a boolean mask leaves the chunk sizes unknown
    with pytest.raises(ValueError, match=r"y has unknown chunk sizes; call "
                                         r"y.compute_chunk_sizes\(\) first"):
        gdcore.dask.fit(dX, unknown, epochs=2)
    with pytest.raises(ValueError, match="sample_weight has unknown chunk sizes"):
        gdcore.dask.fit(dX, dy, sample_weight=unknown, epochs=2)


def test_empty_partitions_and_nullable_columns_as_in_memory():
    """A filtered dask DataFrame (empty partitions), in pandas' nullable types, fits as
    gdcore.fit fits the same rows; an NA is named as NaN in the whole data's row; a boolean
    column is refused as gdcore.fit refuses it."""
    pd = pytest.importorskip("pandas", reason="dask DataFrames need pandas")
    dd = pytest.importorskip("dask.dataframe", reason="dask DataFrames need dask[dataframe]")
    X, y, _ = problem(n=900, d=3)
    frame = pd.DataFrame({"a": pd.array(X[:, 0], dtype="Float64"), "b": X[:, 1],
                          "c": pd.array(np.round(X[:, 2] * 10), dtype="Int64"), "t": y})
    keep = np.r_[np.ones(300), np.zeros(300), np.ones(300)].astype(bool)
    frame["keep"] = keep
    whole = dd.from_pandas(frame, npartitions=3)
    part = whole[whole.keep]
    assert part.map_partitions(len).compute().tolist() == [300, 0, 300]
    options = dict(optimizer="adam", lr=0.05, epochs=5, tol=None)
    result = gdcore.dask.fit(part[["a", "b", "c"]], part.t, **options)
    memory = gdcore.fit(frame[keep][["a", "b", "c"]], frame[keep].t, precompute=False,
                        **options)
    np.testing.assert_allclose(result.coef, memory.coef, rtol=1e-12)
    weighted = gdcore.dask.fit(part[["a", "b", "c"]], part.t, sample_weight=part.b.abs(),
                               **options)
    np.testing.assert_allclose(weighted.coef, gdcore.fit(
        frame[keep][["a", "b", "c"]], frame[keep].t, sample_weight=frame[keep].b.abs(),
        precompute=False, **options).coef, rtol=1e-12)
    frame.loc[650, "c"] = pd.NA
    with pytest.raises(ValueError, match=r"block 2 \(rows 300 to 599\): X contains NaN or infinity "
                                         r"\(first at index \[350, 2\]"):
        part = dd.from_pandas(frame, npartitions=3)
        part = part[part.keep]
        gdcore.dask.fit(part[["a", "b", "c"]], part.t, **options)
    frame["flag"] = True
    with pytest.raises(TypeError, match="X has boolean dtype"):
        gdcore.dask.fit(dd.from_pandas(frame, npartitions=3)[["a", "flag"]],
                        dd.from_pandas(frame, npartitions=3).t, **options)


def test_a_gram_matrix_past_memory_does_not_suggest_auto():
    """gdcore.dask.fit takes precompute True or False only: the message for a Gram matrix
    past the machine's memory said 'use precompute=False (or "auto")', and "auto" is
    refused here."""
    X = da.from_array(np.ones((3, 1_000_000), np.float32), chunks=(3, 1_000_000))
    y = da.from_array(np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"use precompute=False, which streams") as error:
        gdcore.dask.fit(X, y, precompute=True)
    assert "auto" not in str(error.value)
    with pytest.raises(ValueError, match=r"precompute must be one of True, False"):
        gdcore.dask.fit(X, y, precompute="auto")


def test_batch_size_is_checked_as_fit_checks_it_and_n_or_more_is_the_full_batch():
    """batch_size >= n is the full batch (SPEC section 2), as gdcore.fit takes it; dask.fit
    refused it as a mini-batch size, and 0 or True too, not as fit names them."""
    X, y, _ = problem(n=300, d=3)
    dX, dy = da.from_array(X, chunks=(100, 3)), da.from_array(y, chunks=100)
    whole = gdcore.dask.fit(dX, dy, epochs=3, tol=None)
    assert_same_fit(gdcore.dask.fit(dX, dy, epochs=3, tol=None, batch_size=300), whole)
    assert_same_fit(gdcore.dask.fit(dX, dy, epochs=3, tol=None, batch_size=10**30), whole)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        gdcore.dask.fit(dX, dy, batch_size=0)
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        gdcore.dask.fit(dX, dy, batch_size=True)
    with pytest.raises(ValueError, match="full-batch optimizers only .*got 299"):
        gdcore.dask.fit(dX, dy, batch_size=299)


def test_blocks_large_enough_to_thread_match_fit_chunks_at_the_same_n_threads():
    """README: dask.fit gives fit_chunks' bits over the same blocks with the same n_threads
    (dask.fit's default is 1 a block, fit_chunks' OpenMP's: blocks large enough to be cut
    among threads differ in the last bits with the defaults)."""
    X, y, _ = problem(n=20000, d=20)
    w = np.ones(20000)
    for n_threads in (1, 2):
        fits = blocks_fits(X, y, w, 5000, optimizer="adam", lr=0.05, epochs=8, tol=None,
                           n_threads=n_threads)
        for other in fits[1:]:
            assert_same_fit(fits[0], other)
