"""dtypes and layouts (SPEC §7): float32 and float64 in their own precision, other real dtypes
as float64, memmaps read in place, any layout giving the C-contiguous result."""

import numpy as np
import pytest

import gdcore

from conftest import problem, traced_peak


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_size", [None, 8])
def test_result_dtype_follows_input(dtype, batch_size):
    X, y, _ = problem(n=40, d=3, dtype=dtype)
    r = gdcore.fit(X, y, epochs=3, batch_size=batch_size)
    assert r.coef.dtype == dtype and isinstance(r.intercept, float)
    assert r.loss_history.dtype == np.float64


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.float16])
def test_other_real_dtypes_become_float64(dtype):
    X, y, _ = problem(n=40, d=3)
    Xc = (X * 4).astype(dtype) if dtype != np.uint8 else (np.abs(X) * 4).astype(dtype)
    r = gdcore.fit(Xc, y, epochs=4, tol=None)
    expected = gdcore.fit(Xc.astype(np.float64), y, epochs=4, tol=None)
    assert r.coef.dtype == np.float64
    np.testing.assert_array_equal(r.coef, expected.coef)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_either_byte_order_keeps_its_precision(dtype):
    """A big-endian float32 X is float32 data (it was computed in float64): swapped to the
    machine's order, it gives the native array's result, bit for bit, in its own dtype."""
    X, y, _ = problem(n=40, d=3, dtype=dtype)
    swapped = X.astype(np.dtype(dtype).newbyteorder())
    native = gdcore.fit(X, y, epochs=4, tol=None, batch_size=8, seed=2)
    r = gdcore.fit(swapped, y, epochs=4, tol=None, batch_size=8, seed=2)
    assert r.coef.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(r.coef, native.coef)


@pytest.mark.skipif(np.finfo(np.longdouble).max <= np.finfo(np.float64).max,
                    reason="long double is float64 on this platform: no value past float64")
def test_a_long_double_past_float64_is_named_as_such():
    X = np.ones((5, 2), dtype=np.longdouble)
    X[3, 1] = np.longdouble(10) ** 400
    with pytest.raises(ValueError, match=r"X\[3, 1\] = 1e\+400 is too large for float64"):
        gdcore.fit(X, np.ones(5))
    # an infinity is named as one, by the finite check
    X[3, 1] = np.inf
    with pytest.raises(ValueError, match=r"X contains NaN or infinity \(first at index \[3, 1\]"):
        gdcore.fit(X, np.ones(5))
    with pytest.raises(ValueError, match=r"y contains NaN or infinity \(first at index \[2\]"):
        gdcore.fit(np.ones((5, 2), np.float32), np.array([1, 1, np.inf, 1, 1]))


def layouts(X):
    yield "fortran", np.asfortranarray(X)
    wide = np.zeros((X.shape[0], 2 * X.shape[1]), X.dtype)
    wide[:, ::2] = X
    yield "strided", wide[:, ::2]
    yield "reversed", np.ascontiguousarray(X[::-1])[::-1]
    readonly = X.copy()
    readonly.flags.writeable = False
    yield "readonly", readonly


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layouts_give_the_contiguous_result(dtype):
    X, y, _ = problem(n=50, d=4, dtype=dtype)
    expected = gdcore.fit(X, y, optimizer="adam", lr=0.05, epochs=5, batch_size=7, seed=1,
                          tol=None)
    for name, variant in layouts(X):
        r = gdcore.fit(variant, y, optimizer="adam", lr=0.05, epochs=5, batch_size=7, seed=1,
                       tol=None)
        np.testing.assert_array_equal(r.coef, expected.coef, err_msg=name)


def test_memmap_input(tmp_path):
    X, y, _ = problem(n=300, d=5)
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    assert isinstance(mapped, np.memmap)
    a = gdcore.fit(mapped, y, epochs=5, tol=None)
    b = gdcore.fit(X, y, epochs=5, tol=None)
    np.testing.assert_array_equal(a.coef, b.coef)


def test_lists_are_accepted():
    a = gdcore.fit([[1.0], [3.0]], [1.0, 2.0], epochs=2, tol=None)
    b = gdcore.fit(np.array([[1.0], [3.0]]), np.array([1.0, 2.0]), epochs=2, tol=None)
    np.testing.assert_array_equal(a.coef, b.coef)


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_a_column_y_is_the_flat_y(backend):
    # y of shape (n, 1), as a one-column frame or a torch target gives it: the same fit
    X, y, _ = problem(n=60, d=3)
    column = y[:, None].copy()
    a = gdcore.fit(X, column, optimizer="adam", lr=0.05, epochs=4, batch_size=16, seed=2,
                   tol=None, backend=backend)
    b = gdcore.fit(X, y, optimizer="adam", lr=0.05, epochs=4, batch_size=16, seed=2,
                   tol=None, backend=backend)
    np.testing.assert_array_equal(a.coef, b.coef)
    np.testing.assert_array_equal(a.loss_history, b.loss_history)
    np.testing.assert_array_equal(column[:, 0], y)
    with pytest.raises(ValueError, match=r"y must be 1-D of length n_samples=60, got shape "
                                         r"\(60, 2\)"):
        gdcore.fit(X, np.hstack([column, column]), epochs=1)


def test_mixed_precision_follows_X():
    X, y, _ = problem(n=40, d=3, dtype=np.float32)
    r = gdcore.fit(X, y.astype(np.float64), sample_weight=np.ones(40), epochs=2)
    assert r.coef.dtype == np.float32


def test_make_regression():
    X, y, coef = gdcore.make_regression(500, 4, noise=0.0, intercept=2.0, seed=1,
                                        dtype=np.float32)
    assert X.dtype == y.dtype == coef.dtype == np.float32 and X.shape == (500, 4)
    np.testing.assert_allclose(X @ coef + 2.0, y, rtol=1e-5, atol=1e-5)
    X2, _, _ = gdcore.make_regression(500, 4, seed=1)
    np.testing.assert_allclose(X2, X, rtol=1e-6)


@pytest.mark.parametrize("batch_size", [None, 50, 1])
def test_float32_divergence_is_where_the_loss_leaves_float32(batch_size):
    """The core sums a float32 fit's loss in float64, which stays finite past float32's range
    (~3.4e38); the fit has diverged there, in the core as in the NumPy reference: both stop
    in the same epoch with the same history, its last loss within float32's range."""
    X, y, _ = problem(n=300, d=3, noise=0.1)
    X, y = (X * 30).astype(np.float32), y.astype(np.float32)
    errors = []
    for backend in ("core", "numpy"):
        with pytest.raises(gdcore.DivergenceError) as error:
            gdcore.fit(X, y, optimizer="sgd", lr=1.0, batch_size=batch_size, epochs=200,
                       tol=None, seed=0, backend=backend)
        errors.append(error.value)
    core, reference = errors
    assert core.epoch == reference.epoch
    np.testing.assert_allclose(core.result.loss_history, reference.result.loss_history,
                               rtol=1e-5)
    assert np.all(core.result.loss_history <= np.finfo(np.float32).max)


def test_pandas_nullable_number_columns_are_read_as_float64():
    """Int64/Float64 (pandas' nullable types) become float64 as scikit-learn reads them, with
    NA as NaN for the finite check to name (np.asarray made them objects: a TypeError)."""
    pd = pytest.importorskip("pandas", reason="pandas input needs the optional pandas")
    frame = pd.DataFrame({"a": pd.array([1, 2, 3, 4, 5], dtype="Int64"),
                          "b": [0.5, 1.0, -2.0, 3.0, 0.1]})
    y = pd.Series(pd.array([1.0, 2.0, 3.0, 4.0, 4.5], dtype="Float64"))
    for backend in ("core", "numpy"):
        got = gdcore.fit(frame, y, epochs=3, backend=backend)
        expected = gdcore.fit(frame.to_numpy(np.float64), y.to_numpy(np.float64), epochs=3,
                              backend=backend)
        np.testing.assert_array_equal(got.coef, expected.coef)
    frame.loc[2, "a"] = None
    with pytest.raises(ValueError, match=r"X contains NaN or infinity \(first at index \[2, 0\]"):
        gdcore.fit(frame, y)
    with pytest.raises(TypeError, match="X has boolean dtype"):
        gdcore.fit(pd.DataFrame({"a": pd.array([True, False], dtype="boolean")}), [1.0, 2.0])


def test_a_pyarrow_boolean_column_is_refused_as_pandas_one_is():
    """np.asarray of a Table would make a boolean column 1.0 / 0.0 beside its float columns."""
    pa = pytest.importorskip("pyarrow", reason="pyarrow is an optional extra")
    table = pa.table({"a": [1.0, 2.0, 3.0], "flag": [True, False, True]})
    for X in (table, table.to_batches()[0]):
        with pytest.raises(TypeError, match="X has boolean dtype"):
            gdcore.fit(X, [1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="chunk 0 .*X has boolean dtype"):
        gdcore.fit_chunks([(table, [1.0, 2.0, 3.0])])
    with pytest.raises(TypeError, match="y has boolean dtype"):
        gdcore.fit([[1.0], [2.0]], pa.chunked_array([[True, False]]))
    floats = pa.table({"a": [1.0, 2.0, 3.0], "b": [0.5, -1.0, 2.0]})
    np.testing.assert_array_equal(
        gdcore.fit(floats, [1.0, 2.0, 3.0], epochs=3).coef,
        gdcore.fit(np.column_stack([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]]), [1.0, 2.0, 3.0],
                   epochs=3).coef)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_float32_full_batch_gradient_against_float64_truth(n_threads):
    """SPEC §7: float32 data is computed in float32, but a full pass's gradient sums must not
    run in float32 over the whole pass.  Row 0 is an outlier (x = 2²⁸ in every column) and
    the other 49,999 rows have x ∈ [0.5, 1.5], y = 1: a float32 running sum that has taken
    row 0's term (ulp 32) drops every later term of its part of the pass, even added four
    rows at a time (≤ 6 < 16), 1e-4 to 2e-4 of the sum; the core's float32 block sums of 64
    rows, added in float64, lose at most the outlier's block (< 4e-7).  One SGD step from
    θ = 0 (r = −y) against the gradient in float64."""
    rng = np.random.default_rng(0)
    n, d, lr = 50_000, 100, 1e-3
    X = rng.uniform(0.5, 1.5, (n, d)).astype(np.float32)
    X[0] = 2.0 ** 28
    y = np.ones(n, dtype=np.float32)
    r = gdcore.fit(X, y, optimizer="sgd", lr=lr, epochs=1, tol=None, n_threads=n_threads,
                   precompute=False)
    grad_w = -(X.sum(axis=0, dtype=np.float64)) / n       # ∇w = 1/n·Σ rᵢxᵢ with rᵢ = −1
    assert r.coef.dtype == np.float32
    np.testing.assert_allclose(r.coef, -lr * grad_w, rtol=1e-5)
    assert r.intercept == pytest.approx(lr, rel=1e-6)     # ∂b = −1 exactly


@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_predict_converts_x_a_block_at_a_time(dtype):
    """A float64 model predicting float32 (or integer) X: NumPy's product converted the
    whole of X to float64 at once, a temporary twice the size of a float32 memmap; the
    rows now go a block at a time, with the same values."""
    X, y, _ = problem(n=200, d=50)
    result = gdcore.fit(X, y, epochs=3)
    big = np.random.default_rng(0).uniform(-50, 50, (40_000, 50)).astype(dtype)
    expected = big.astype(np.float64) @ result.coef + result.intercept
    predicted, peak = traced_peak(result.predict, big)
    assert predicted.dtype == np.float64
    np.testing.assert_allclose(predicted, expected, rtol=1e-12, atol=1e-9)
    assert peak < big.size * 8 // 2      # well under one float64 copy of X


def test_predict_checks_a_fortran_ordered_x_without_copying_it():
    """X in the model's dtype but not C-contiguous (a DataFrame's values are Fortran-ordered):
    the NaN/inf check FitResult.predict gained ravelled it, a C-ordered copy of the whole of
    X, where the product alone copies nothing; such X now goes a block of rows at a time."""
    import tracemalloc
    X, y, _ = problem(n=200, d=50)
    result = gdcore.fit(X, y, epochs=3)
    big = np.asfortranarray(np.random.default_rng(0).uniform(-50, 50, (40_000, 50)))
    expected = big @ result.coef + result.intercept
    tracemalloc.start()
    try:
        predicted = result.predict(big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_allclose(predicted, expected, rtol=1e-12, atol=1e-9)
    assert peak < big.nbytes // 2       # well under a copy of X
    big[30_001, 7] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN or infinity \(first at index "
                                         r"\[30001, 7\]"):
        result.predict(big)


def test_predict_takes_long_double_x(tmp_path):
    """long double X (a fit takes it, as float64): the NaN/inf check FitResult.predict and
    SavedModel.predict gained ran the core's float32/float64 check on it, a TypeError 'No
    matching signature found'; it is now checked by NumPy."""
    X, y, _ = problem(n=50, d=3)
    result = gdcore.fit(X, y, epochs=3)
    wide = X.astype(np.longdouble)
    expected = X @ result.coef + result.intercept
    np.testing.assert_allclose(result.predict(wide).astype(np.float64), expected, rtol=1e-12)
    gdcore.save_model(tmp_path / "model.json", result)
    saved = gdcore.load_model(tmp_path / "model.json")
    np.testing.assert_allclose(saved.predict(wide).astype(np.float64), expected, rtol=1e-12)
    wide[7, 2] = np.inf
    for model in (result, saved):
        with pytest.raises(ValueError, match=r"X contains NaN or infinity \(first at index "
                                             r"\[7, 2\]"):
            model.predict(wide)

