"""Threads, extremes, 64-bit indexing, and a warm-started estimator interrupted by Ctrl-C."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import gdcore
from gdcore import _core

from conftest import assert_same_fit, problem, subprocess_env


def test_concurrent_fits_equal_sequential_ones():
    jobs = []
    for k, (optimizer, batch) in enumerate([("adam", None), ("sgd", 32), ("rmsprop", 8),
                                            ("nesterov", None), ("adagrad", 64), ("adam", 1)]):
        X, y, _ = problem(n=3000 + 500 * k, d=6 + k, seed=k)
        jobs.append((X, y, dict(optimizer=optimizer, lr=0.01, epochs=4, batch_size=batch,
                                seed=k, tol=None, n_threads=2)))
    sequential = [gdcore.fit(X, y, **o) for X, y, o in jobs]
    with ThreadPoolExecutor(max_workers=6) as pool:
        concurrent = list(pool.map(lambda job: gdcore.fit(job[0], job[1], **job[2]), jobs * 2))
    for a, b in zip(sequential * 2, concurrent):
        np.testing.assert_array_equal(a.coef, b.coef)
        np.testing.assert_array_equal(a.loss_history, b.loss_history)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_huge_values_diverge_cleanly(dtype, backend):
    """Residuals of ~max/16 overflow the first loss: DivergenceError in epoch 1, before any
    update, with the starting parameters (zeros) and an empty history as its result."""
    big = np.finfo(dtype).max / 16
    X = np.array([[big], [-big], [big / 2]], dtype=dtype)
    y = np.array([big, 0.0, 1.0], dtype=dtype)
    with pytest.raises(gdcore.DivergenceError) as error:
        gdcore.fit(X, y, optimizer="sgd", lr=0.1, epochs=5, tol=None, backend=backend)
    result = error.value.result
    assert error.value.epoch == 1 and result.n_updates == 0 and len(result.loss_history) == 0
    np.testing.assert_array_equal(result.coef, 0.0)
    assert result.intercept == 0.0


def test_gram_mode_diverges_as_streaming_does():
    """Values of ~1e150 make θ ~1e298 after one step; the next loss overflows.  In Gram mode
    θᵀGθ − θᵀc is then inf − inf: a NaN that must not be clamped to a loss of 0 (which left
    the overflow to the update, a different error).  All three runs stop alike."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3)) * 1e150
    y = rng.normal(size=50) * 1e150
    messages = []
    for backend, precompute in (("core", True), ("core", False), ("numpy", False)):
        with pytest.raises(gdcore.DivergenceError) as error:
            gdcore.fit(X, y, optimizer="gd", lr=0.1, epochs=5, tol=None, backend=backend,
                       precompute=precompute)
        result = error.value.result
        assert error.value.epoch == 2 and result.n_updates == 1 and len(result.loss_history) == 1
        messages.append(str(error.value).split(" (lr=")[0])
    assert messages == ["the loss stopped being finite in epoch 2"] * 3


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch_size", [None, 1, 7])
def test_weights_at_any_scale_give_the_unit_scale_fit(backend, dtype, batch_size):
    """J and ∇J do not depend on the weights' scale.  Weights near 1e300 (Σsᵢrᵢ² and 2S
    overflowed: loss 0, "converged") or near 1e-320 (1/S overflowed: DivergenceError) are
    scaled by a power of two, which changes no bit: the fit is the one with the same
    weights brought near 1 (float32: 2^123 and 2^-145); the caller's weights are left
    alone.  (Subnormal weights hold fewer bits, so their fit is that of those bits.)"""
    X, y, _ = problem(n=40, d=3, dtype=dtype)
    base = np.random.default_rng(1).uniform(0.5, 1.5, 40)
    base[::9] = 0.0
    exponents = (990, -1060) if dtype == np.float64 else (123, -145)
    options = dict(optimizer="adam", lr=0.05, epochs=6, tol=None, batch_size=batch_size,
                   seed=2, backend=backend, precompute=False)
    for exponent in exponents:
        weights = np.ldexp(base, exponent).astype(dtype)
        near_one = np.ldexp(weights.astype(np.float64), -exponent).astype(dtype)  # exact
        unit = gdcore.fit(X, y, sample_weight=near_one, **options)
        before = weights.copy()
        scaled = gdcore.fit(X, y, sample_weight=weights, **options)
        assert_same_fit(scaled, unit)
        np.testing.assert_array_equal(weights, before)


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("batch_size", [None, 7])
def test_float64_weights_at_any_scale_fit_float32_x_as_near_one(backend, batch_size):
    """float64 weights with float32 X were narrowed to float32 before being scaled: past
    float32's range they were refused, and all below its normal range (~1.2e-38) they kept
    fewer than 24 bits (coefficients 1e-5 off).  gdcore.fit now scales them first: the fit is
    the one with the weights near 1, bit for bit (fit_chunks and gdcore.dask scale them
    alike: tests/test_chunked.py, test_dask_local.py)."""
    X, y, _ = problem(n=40, d=3, dtype=np.float32)
    base = np.random.default_rng(1).uniform(0.5, 1.5, 40)
    base[::9] = 0.0
    options = dict(optimizer="adam", lr=0.05, epochs=6, tol=None, batch_size=batch_size,
                   seed=2, backend=backend)
    unit = gdcore.fit(X, y, sample_weight=base.astype(np.float32), **options)
    for exponent in (140, -130, -140):
        weights = np.ldexp(base, exponent)
        before = weights.copy()
        scaled = gdcore.fit(X, y, sample_weight=weights, **options)
        assert_same_fit(scaled, unit)
        np.testing.assert_array_equal(weights, before)


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("batch_size", [None, 7])
@pytest.mark.parametrize("kind", [np.int64, np.uint64])
def test_integer_weights_are_rounded_to_float32_once(backend, batch_size, kind):
    """Integer weights past 2^53 with float32 X are rounded to float32 once, as NumPy casts
    them: 2^60 + 2^36 + 1 is 2^60 + 2^37 in float32, where through float64 (2^60 + 2^36, a
    tie) it would be 2^60.  The fit is the one with weights.astype(float32), bit for bit, in
    gdcore.fit and fit_chunks alike."""
    X, y, _ = problem(n=40, d=3, dtype=np.float32)
    weights = np.full(40, 2**60, dtype=kind)
    weights[::3] += kind(2**36 + 1)
    as_float32 = weights.astype(np.float32)
    assert as_float32[0] == 2.0**60 + 2.0**37 and as_float32[1] == 2.0**60
    options = dict(optimizer="adam", lr=0.05, epochs=6, tol=None, batch_size=batch_size,
                   seed=2, backend=backend)
    assert_same_fit(gdcore.fit(X, y, sample_weight=weights, **options),
                    gdcore.fit(X, y, sample_weight=as_float32, **options))
    if batch_size is None and backend == "core":
        def chunks(w):
            return [(X[:20], y[:20], w[:20]), (X[20:], y[20:], w[20:])]
        options = dict(optimizer="adam", lr=0.05, epochs=6, tol=None)
        assert_same_fit(gdcore.fit_chunks(chunks(weights), **options),
                        gdcore.fit_chunks(chunks(as_float32), **options))


def test_chunks_refuse_what_fit_refuses():
    """fit_chunks promises fit on the rows put together: weights whose sum overflows only
    across chunks are refused (they gave coef 0 and loss 0, "converged"), and a float32 loss
    past float32's range diverges, as in fit (it went on)."""
    X, y, _ = problem(n=20, d=2)
    w = np.full(10, 1e307)
    with pytest.raises(ValueError, match="sums to infinity"):
        gdcore.fit(X, y, sample_weight=np.full(20, 1e307))
    for precompute in (False, True):
        with pytest.raises(ValueError, match="sums to infinity in float64 over all chunks"):
            gdcore.fit_chunks([(X[:10], y[:10], w), (X[10:], y[10:], w)], epochs=5,
                              precompute=precompute)
    X32, y32 = np.ones((4, 1), np.float32), np.full(4, 3e19, np.float32)
    outcomes = []
    for run in (lambda: gdcore.fit(X32, y32, lr=0.5, epochs=3, tol=None, precompute=False),
                lambda: gdcore.fit_chunks([(X32[:2], y32[:2]), (X32[2:], y32[2:])], lr=0.5,
                                          epochs=3, tol=None)):
        with pytest.raises(gdcore.DivergenceError) as error:
            run()
        outcomes.append((error.value.epoch, str(error.value).split(" (")[0]))
    assert outcomes[0] == outcomes[1] == (1, "the loss is not finite at the starting parameters")


def test_check_grad_refuses_a_step_that_does_not_move_theta():
    X, y, _ = problem(n=20, d=2)
    with pytest.raises(ValueError, match="step=1e-20 is below the spacing of float64"):
        gdcore.check_grad(X, y, [0.5, 0.5], step=1e-20)


def _outcome(X, y, **options):
    """(epoch of divergence or None, coef, intercept) of a fit."""
    try:
        result, epoch = gdcore.fit(X, y, **options), None
    except gdcore.DivergenceError as exc:
        result, epoch = exc.result, exc.epoch
    return epoch, result.coef, result.intercept


@pytest.mark.parametrize("optimizer, diverges_in", [
    ("sgd", 3),                  # steps of lr·g: ~1e300 by the second update, then inf
    ("adam", None), ("rmsprop", None), ("adagrad", None), ("normalized", None),  # ~lr a step
])
def test_huge_learning_rate_never_leaves_nan(optimizer, diverges_in):
    X, y, _ = problem(n=30, d=3)
    options = dict(optimizer=optimizer, lr=1e150, epochs=20, tol=None)
    core = _outcome(X, y, **options)
    reference = _outcome(X, y, backend="numpy", **options)
    assert core[0] == reference[0] == diverges_in
    assert np.all(np.isfinite(core[1])) and np.isfinite(core[2])
    # 20 steps of ~1e150 amplify rounding: the backends agree to 1e-9 to 2e-7
    np.testing.assert_allclose(core[1], reference[1], rtol=1e-5)
    assert core[2] == pytest.approx(reference[2], rel=1e-5, abs=1e-300)


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_constant_and_duplicated_columns(backend):
    X, y, _ = problem(n=200, d=3)
    X = np.column_stack([X, np.full(200, 3.0), X[:, 0]])  # constant column, duplicate of 0
    r = gdcore.fit(X, y, optimizer="gd", lr=0.05, epochs=3000, tol=None, backend=backend)
    assert np.all(np.isfinite(r.coef))
    # a rank-deficient problem: the fitted values still reach the least-squares optimum
    A = np.column_stack([X, np.ones(200)])
    best = np.linalg.lstsq(A, y, rcond=None)[0]
    np.testing.assert_allclose(X @ r.coef + r.intercept, A @ best, atol=1e-5)
    assert r.coef[0] == pytest.approx(r.coef[4], abs=1e-12)  # duplicates share the weight


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (7, 1)])
def test_tiny_problems(backend, shape):
    rng = np.random.default_rng(0)
    X = rng.standard_normal(shape)
    y = rng.standard_normal(shape[0])
    for batch in (None, 1, 100):
        r = gdcore.fit(X, y, optimizer="gd", lr=0.1, epochs=50, batch_size=batch,
                       backend=backend)
        assert np.all(np.isfinite(r.coef)) and len(r.loss_history) == r.n_epochs
    if shape == (1, 1):  # one point: the line through it is reached, loss → 0
        r = gdcore.fit(X, y, optimizer="gd", lr=0.2, epochs=500, tol=None, backend=backend)
        assert r.predict(X)[0] == pytest.approx(y[0], abs=1e-8)


def test_more_than_2_to_the_31_elements():
    """The kernels index with Py_ssize_t: rows past element 2³¹ are read where they are.
    X and y are calloc'd zeros (the OS maps them to one zero page, so this costs no RAM);
    only the last rows hold data, so the gradient is known exactly."""
    d = 8
    rows = (1 << 28) + 16  # rows·d = 2³¹ + 128
    X = np.zeros((rows, d), dtype=np.float32)
    y = np.zeros(rows, dtype=np.float32)
    rng = np.random.default_rng(0)
    X[-3:] = rng.standard_normal((3, d))
    y[-3:] = rng.standard_normal(3)
    assert X.size > 2**31
    loss, grad = _core.objective_gradient(X, y, np.empty(0, np.float32),
                                          np.zeros(d + 1, np.float32), 0.0, 0.0, True, 2)
    tail_x, tail_y = X[-3:].astype(np.float64), y[-3:].astype(np.float64)
    np.testing.assert_allclose(grad[:d], tail_x.T @ -tail_y / rows, rtol=1e-5)
    assert grad[d] == pytest.approx(-tail_y.sum() / rows, rel=1e-5)
    assert loss == pytest.approx((tail_y ** 2).sum() / (2 * rows), rel=1e-6)


ESTIMATOR_INTERRUPT = textwrap.dedent("""
    import sys
    import numpy as np
    import gdcore
    import gdcore.estimator
    X, y, _ = gdcore.make_regression(20_000, 20, seed=0)
    options = dict(optimizer="adam", lr=1e-4, tol=None, batch_size=BATCH, seed=3,
                   precompute=False, n_threads=1)
    model = gdcore.GDRegressor(epochs=10**6, warm_start=True, **options)
    original = gdcore.estimator._fit

    def announcing_fit(*args, callback=None, **kwargs):
        def announce(progress):
            if progress.epoch == 1:
                print("running", flush=True)
            # full batch: the estimator installs no callback (the interrupt lands between epochs)
            return callback(progress) if callback is not None else False
        return original(*args, callback=announce, **kwargs)
    gdcore.estimator._fit = announcing_fit
    try:
        model.fit(X, y)
    except KeyboardInterrupt:
        gdcore.estimator._fit = original
        done = model.result_.n_epochs
        assert done == len(model.loss_curve_) >= 1
        # the kept parameters are exactly those at the end of epoch `done`
        fresh = gdcore.GDRegressor(epochs=done, **options).fit(X, y)
        assert np.array_equal(model.coef_, fresh.coef_), "not the last finished epoch"
        assert model.loss_curve_ == fresh.loss_curve_
        # and a warm start resumes exactly from there
        model.set_params(epochs=2)
        model.fit(X, y)
        longer = gdcore.GDRegressor(epochs=done + 2, **options).fit(X, y)
        assert np.array_equal(model.coef_, longer.coef_), "warm start did not resume exactly"
        print("kept", done, flush=True)
        sys.exit(3)
""")


@pytest.mark.parametrize("batch", ["None", "64"])
def test_interrupted_estimator_keeps_its_last_epoch(batch):
    pytest.importorskip("sklearn", reason="GDRegressor needs the optional scikit-learn")
    code = ESTIMATOR_INTERRUPT.replace("BATCH", batch)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        assert proc.stdout.readline().strip() == "running", proc.stderr.read()
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 3, err
    assert out.startswith("kept")


def _divergence(X, y, **options):
    try:
        gdcore.fit(X, y, **options)
    except gdcore.DivergenceError as exc:
        return str(exc), exc.result
    raise AssertionError("the fit did not diverge")


@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
@pytest.mark.parametrize("position", [0, 1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_single_row_overflow_is_undone_wherever_it_happens(position, dtype, optimizer):
    """batch_size=1 SGD sees an update overflow only in the next row's residual (or at the
    end of the epoch), momentum right after the update (its own single-row path); both must
    stop exactly where the reference stops, at the last finite parameters.  One row, placed
    at each position, overflows the update."""
    big = np.sqrt(np.finfo(dtype).max)      # r·x overflows, r² (the row's loss) does not
    X = np.ones((4, 2), dtype=dtype)
    y = np.zeros(4, dtype=dtype)
    X[position] = [8 * big, 1.0]
    y[position] = big / 4
    outcomes = [_divergence(X, y, optimizer=optimizer, lr=1.0, epochs=3, batch_size=1,
                            shuffle=False, tol=None, backend=backend)
                for backend in ("core", "numpy")]
    (core_message, core), (ref_message, ref) = outcomes
    assert core_message == ref_message
    assert core.n_updates == ref.n_updates and core.n_epochs == ref.n_epochs
    np.testing.assert_array_equal(core.coef, ref.coef)
    assert core.intercept == ref.intercept
    assert np.all(np.isfinite(core.coef)) and np.isfinite(core.intercept)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_single_row_loss_overflow_matches_reference(optimizer):
    big = np.finfo(np.float64).max / 4     # the residual is finite, its square is not
    X = np.ones((5, 1))
    y = np.zeros(5)
    y[3] = big
    outcomes = [_divergence(X, y, optimizer=optimizer, lr=0.1, epochs=2, batch_size=1,
                            shuffle=False, tol=None, backend=backend)
                for backend in ("core", "numpy")]
    (core_message, core), (ref_message, ref) = outcomes
    assert core_message == ref_message
    assert core.n_updates == ref.n_updates == 3
    np.testing.assert_array_equal(core.coef, ref.coef)


@pytest.mark.parametrize("single_row_path", [True, False])
@pytest.mark.parametrize("optimizer, batch_size", [("sgd", 1), ("momentum", 1), ("adam", 1),
                                                   ("sgd", 2), ("adam", 3)])
def test_an_epoch_whose_mean_loss_overflows_diverges(optimizer, batch_size, single_row_path):
    """Every batch's J is 0.45·DBL_MAX/b, finite (as is its Σsᵢrᵢ², 0.9·DBL_MAX), but the sum
    of the epoch's 3b batch losses, and so their mean as summed, is not: the epoch's loss
    stopped being finite (SPEC §5), after all the epoch's updates.  It was recorded as inf,
    with no DivergenceError."""
    n = 3 * batch_size * batch_size
    X = np.full((n, 1), 1e-200)      # the updates barely move θ: every residual stays ~y
    y = np.full(n, np.sqrt(0.9 * np.finfo(np.float64).max / batch_size))
    try:
        _core._set_single_row_path(single_row_path)
        outcomes = [_divergence(X, y, optimizer=optimizer, lr=1e-3, epochs=3,
                                batch_size=batch_size, shuffle=False, tol=None,
                                backend=backend)
                    for backend in ("core", "numpy")]
    finally:
        _core._set_single_row_path(True)
    (core_message, core), (ref_message, ref) = outcomes
    assert core_message == ref_message
    assert core_message.startswith("the loss stopped being finite in epoch 1 ")
    assert core.n_updates == ref.n_updates == 3 * batch_size     # the whole epoch's updates
    assert core.n_epochs == ref.n_epochs == 0 and len(core.loss_history) == 0
    # (the same steps, rounded as the core and NumPy each round them)
    np.testing.assert_allclose(core.coef, ref.coef, rtol=1e-12)
    np.testing.assert_allclose(core.intercept, ref.intercept, rtol=1e-12)
    assert np.all(np.isfinite(core.coef)) and np.isfinite(core.intercept)


@pytest.mark.parametrize("optimizer", ["adam", "amsgrad", "normalized", "rmsprop"])
def test_float32_steps_whose_intermediates_pass_float32(optimizer):
    """A float32 fit with gradients ~1e20: g², v/(1 − β₂ᵗ) and Σg² are past float32's range,
    the step is not.  The core works in float64 and stores in float32; the reference does
    too now (it squared and divided in float32, and θ never moved).  (Adagrad's Σg² is
    state, kept in float32 as torch keeps it: there it overflows, in both.)"""
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(20, 2)) * 1e10).astype(np.float32)
    y = (X @ np.array([1.0, 2.0], np.float32) + np.float32(1e10)).astype(np.float32)
    runs = [gdcore.fit(X, y, optimizer=optimizer, lr=0.1, epochs=3, tol=None, backend=backend,
                       precompute=False) for backend in ("core", "numpy")]
    for run in runs:
        assert np.all(run.coef != 0) and run.loss_history[-1] < run.loss_history[0]
    np.testing.assert_allclose(runs[0].coef, runs[1].coef, rtol=1e-5)
    np.testing.assert_allclose(runs[0].loss_history, runs[1].loss_history, rtol=1e-5)


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_normalized_step_when_the_squared_norm_overflows(backend):
    """‖g‖ ~ 5e200 but Σgⱼ² overflows: the step is still lr·g/‖g‖ (by hand, with one
    feature, w₁ = lr·sign(−g) = 0.001); it was lr/inf = 0, and θ never moved."""
    X = np.array([[1e190], [2e190], [3e190]])
    y = np.array([1e10, 2e10, 3e10])
    result = gdcore.fit(X, y, optimizer="normalized", lr=0.001, epochs=1, tol=None,
                        fit_intercept=False, backend=backend, precompute=False)
    assert result.coef[0] == 0.001


@pytest.mark.parametrize("batch_size, optimizer", [(1, "sgd"), (1, "momentum"), (1, "adam"),
                                                   (2, "sgd"), (None, "sgd")])
def test_a_subnormal_weight_among_others(batch_size, optimizer):
    """One weight of 1e-310 (subnormal, so 1/s overflows) among weights near 1: its row still
    counts as SPEC has it (s cancels from a single row's update), and the core follows the
    reference (it diverged)."""
    X, y, _ = problem(n=20, d=3)
    weights = np.ones(20)
    weights[7] = 1e-310
    runs = [gdcore.fit(X, y, sample_weight=weights, batch_size=batch_size, epochs=5, tol=None,
                       seed=0, backend=backend, precompute=False, optimizer=optimizer)
            for backend in ("core", "numpy")]
    np.testing.assert_allclose(runs[0].coef, runs[1].coef, rtol=1e-10)
    np.testing.assert_allclose(runs[0].loss_history, runs[1].loss_history, rtol=1e-10)


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_penalties_with_zero_weight_are_not_added(backend):
    """‖w‖² overflows (w ≈ 1e155) while the data term stays finite: with l2 = l1 = 0 the loss
    is the data term on both backends (0·inf would be NaN and a false DivergenceError)."""
    X = np.array([[1e-160], [2e-160], [3e-160]])
    y = np.array([1.0, 2.0, 3.0])
    result = gdcore.fit(X, y, init=(np.array([1e155]), 0.0), epochs=3, tol=None,
                        backend=backend)
    r = X[:, 0] * 1e155 - y
    assert result.loss_history[0] == pytest.approx(0.5 * np.mean(r * r), rel=1e-14)
    assert np.all(np.isfinite(result.loss_history))


@pytest.mark.parametrize("dtype, big", [(np.float64, 1e155), (np.float32, 1e20)])
@pytest.mark.parametrize("batch_size", [None, 2])
@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_a_loss_that_overflows_before_any_update_says_to_rescale(dtype, big, batch_size,
                                                                 backend):
    X, y = np.ones((10, 1), dtype), np.full(10, big, dtype)
    with pytest.raises(gdcore.DivergenceError, match=(
            f"the loss is not finite at the starting parameters \\(epoch 1, before any "
            f"update\\): the squared residuals overflow {np.dtype(dtype).name}, so no learning "
            "rate can help; rescale y")) as raised:
        gdcore.fit(X, y, lr=1e-30, epochs=3, batch_size=batch_size, backend=backend)
    assert raised.value.result.n_updates == 0
    with pytest.raises(gdcore.DivergenceError, match="stopped being finite in epoch 2"):
        gdcore.fit(np.ones((10, 1)), np.ones(10), lr=1e300, epochs=3, backend=backend)


@pytest.mark.parametrize("dtype, x, y", [(np.float64, 1e160, 1e150), (np.float32, 1e25, 1e15)])
@pytest.mark.parametrize("optimizer, batch_size", [("gd", None), ("adam", None), ("gd", 2),
                                                   ("gd", 1), ("momentum", 1)])
@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_a_gradient_that_overflows_before_any_update_says_to_rescale(dtype, x, y, optimizer,
                                                                     batch_size, backend):
    """The loss is finite at the start but Σ sᵢrᵢxᵢ overflows (|x|·|r| past the dtype's range):
    the first update's gradient is already inf, so no lr helps and the message says to
    rescale (it said 'try a smaller lr'), on both backends, in fit and fit_chunks, classic
    SGD's fused rows included; with a continuation, in its own first epoch.  A step that
    overflows from a finite gradient still suggests a smaller lr."""
    X = np.array([[1.0], [2.0], [3.0]], dtype) * dtype(x)
    Y = np.array([1.0, 2.0, 3.0], dtype) * dtype(y)
    expected = ("the gradient is not finite at the starting parameters \\(epoch 1, before any "
                f"update\\): the loss is finite but Σ sᵢrᵢxᵢ overflows {np.dtype(dtype).name}, "
                "so no learning rate can help; rescale X and y")
    options = dict(optimizer=optimizer, lr=1e-30, epochs=3, batch_size=batch_size)
    with pytest.raises(gdcore.DivergenceError, match=expected) as raised:
        gdcore.fit(X, Y, backend=backend, **options)
    assert raised.value.result.n_updates == 0 and "smaller lr" not in str(raised.value)
    if backend == "core" and batch_size is None:
        with pytest.raises(gdcore.DivergenceError, match=expected):
            gdcore.fit_chunks([(X[:2], Y[:2]), (X[2:], Y[2:])], optimizer=optimizer,
                              lr=1e-30, epochs=3)
        first = gdcore.fit(X / dtype(x), Y / dtype(y), **dict(options, epochs=2, tol=None))
        with pytest.raises(gdcore.DivergenceError, match=expected.replace("epoch 1", "epoch 3")):
            gdcore.fit(X, Y, init=first, **options)
    with pytest.raises(gdcore.DivergenceError, match=r"stopped being finite in epoch \d .*smaller"):
        gdcore.fit(X / dtype(x), Y / dtype(y), backend=backend, **dict(
            options, optimizer="gd", lr=float(np.finfo(dtype).max) / 10))


@pytest.mark.parametrize("kind", [np.random.PCG64, np.random.MT19937, np.random.SFC64,
                                  np.random.Philox])
def test_a_continuation_goes_on_with_the_seed_generators_own_kind(kind):
    X, y, _ = problem(n=100, d=3)
    first = gdcore.fit(X, y, epochs=2, batch_size=8, seed=np.random.Generator(kind(5)), tol=None)
    continued = gdcore.fit(X, y, epochs=3, batch_size=8, init=first, tol=None)
    straight = gdcore.fit(X, y, epochs=5, batch_size=8, seed=np.random.Generator(kind(5)),
                          tol=None)
    np.testing.assert_array_equal(continued.coef, straight.coef)


def test_a_generator_given_as_seed_is_not_reset_by_a_continuation():
    import copy
    X, y, _ = problem(n=100, d=3)
    first = gdcore.fit(X, y, epochs=2, batch_size=8, seed=1, tol=None)
    generator = np.random.default_rng(123)
    before = copy.deepcopy(generator.bit_generator.state)
    with pytest.raises(ValueError, match="precompute"):
        gdcore.fit(X, y, batch_size=8, seed=generator, init=first, precompute="yes")
    continued = gdcore.fit(X, y, batch_size=8, seed=generator, init=first, epochs=3, tol=None)
    assert generator.bit_generator.state == before
    straight = gdcore.fit(X, y, epochs=5, batch_size=8, seed=1, tol=None)
    np.testing.assert_array_equal(continued.coef, straight.coef)


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_numpy_matrix_input_is_read_as_an_array(backend):
    X, y, _ = problem(n=60, d=3)
    as_matrix = gdcore.fit(np.asmatrix(X), np.asmatrix(y).T, epochs=5, backend=backend)
    as_array = gdcore.fit(X, y, epochs=5, backend=backend)
    np.testing.assert_array_equal(as_matrix.coef, as_array.coef)


def test_the_finite_check_runs_in_blocks_so_ctrl_c_reaches_it(monkeypatch):
    """X's NaN/inf check hands the core one block at a time, Python running between blocks,
    so a signal handler (Ctrl-C's KeyboardInterrupt) runs during the check of a large memmap;
    the blocks cover every value (a NaN in the last one is still found)."""
    from gdcore import _validation
    X, y, _ = problem(n=1000, d=7)
    monkeypatch.setattr(_validation, "FINITE_CHECK_BLOCK", 1000)
    seen = []
    real = _core.all_finite

    threads = []

    def counted(values, n_threads):
        seen.append(values.size)
        threads.append(n_threads)
        return real(values, n_threads)
    monkeypatch.setattr(_core, "all_finite", counted)
    gdcore.fit(X, y, epochs=1, n_threads=1)
    assert seen[:7] == [1000] * 7 and sum(seen[:7]) == X.size
    assert set(threads) == {1}      # n_threads bounds the check's threads too
    X[-1, -1] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN or infinity \(first at index \[999, 6\]"):
        gdcore.fit(X, y, epochs=1)

    def interrupted(values, n_threads):
        if len(seen) == 2:
            raise KeyboardInterrupt
        seen.append(values.size)
        return True
    seen.clear()
    monkeypatch.setattr(_core, "all_finite", interrupted)
    with pytest.raises(KeyboardInterrupt):
        gdcore.fit(X, y, epochs=1)
    assert len(seen) == 2


def _interrupted(fit, delay):
    """fit() interrupted by SIGINT in this (the main) thread after ``delay`` seconds; its
    KeyboardInterrupt's .result, once an epoch has finished (on a loaded machine the signal
    can land before: then again, with twice the delay)."""
    import threading
    main = threading.get_ident()
    for attempt in range(6):
        timer = threading.Timer(delay * 2 ** attempt,
                                lambda: signal.pthread_kill(main, signal.SIGINT))
        timer.start()
        try:
            fit()
        except KeyboardInterrupt as interrupt:
            result = getattr(interrupt, "result", None)     # none: it landed in set-up
            if result is not None and result.n_epochs > 0:
                return result
        else:
            raise AssertionError("the fit ended before the interrupt")
        finally:
            timer.cancel()
            timer.join()
    raise AssertionError("no interrupt landed after an epoch")


@pytest.mark.parametrize("how", ["chunks-gram", "chunks-streamed", "numpy-full",
                                 "numpy-mini-batch"])
def test_an_interrupt_anywhere_leaves_a_finished_update(how):
    """Ctrl-C landing at any moment of the Python epoch loops (fit_chunks, the NumPy
    reference) leaves a .result whose parameters, counters and history agree: those of an
    uninterrupted run of its length (θ was once an update ahead of the counters)."""
    X, y, _ = gdcore.make_regression(2000, 5, noise=0.1, seed=1)
    chunks = [(X[i:i + 500], y[i:i + 500]) for i in range(0, 2000, 500)]
    options = dict(optimizer="adam", lr=0.01, tol=None, n_threads=1)
    if how.startswith("chunks"):
        options["precompute"] = how == "chunks-gram"

        def fit(epochs):
            return gdcore.fit_chunks(chunks, epochs=epochs, **options)
    else:
        options.update(backend="numpy", batch_size=None if how == "numpy-full" else 500,
                       seed=0)

        def fit(epochs):
            return gdcore.fit(X, y, epochs=epochs, **options)
    for delay in (0.02, 0.031, 0.047, 0.06, 0.083):
        result = _interrupted(lambda: fit(10**7), delay)
        assert result.n_epochs == len(result.loss_history)
        if how != "numpy-mini-batch":
            assert result.n_updates == result.n_epochs
        replay = fit(result.n_epochs)
        if how == "numpy-mini-batch" and result.n_updates != replay.n_updates:
            continue    # cut inside an epoch: its finished updates are kept (README)
        np.testing.assert_array_equal(result.coef, replay.coef)
        np.testing.assert_array_equal(result.loss_history, replay.loss_history)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs CPU affinity (Linux) and two CPUs to tell one from all")
@pytest.mark.parametrize("binding", [{"OMP_PROC_BIND": "true"}, {"OMP_PLACES": "cores"},
                                     {"OMP_PROC_BIND": "false"}])
def test_all_cores_counts_the_cpus_pinning_hides(binding):
    """n_threads=-1 is every CPU the process may run on; with OMP_PROC_BIND or OMP_PLACES
    libgomp pins the importing thread to one place, whose own affinity then shows one CPU
    (-1 ran on one thread)."""
    code = ("import os, gdcore; X, y, _ = gdcore.make_regression(500, 3, seed=0); "
            "print(len(os.sched_getaffinity(0)), gdcore.fit(X, y, n_threads=-1, "
            "epochs=2).n_threads)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(subprocess_env(), **binding), check=True).stdout.split()
    assert int(out[1]) == min(len(os.sched_getaffinity(0)), 1024)


def test_interrupt_right_after_an_update_in_a_nested_fit(monkeypatch):
    """A SIGINT sent the moment θ has moved (before the counters) is held until the epoch is
    booked, in a fit_chunks run by another's callback too (it shares the outer run's guard);
    SIGINT's handler is Python's own again afterwards, or the caller's if a callback set one."""
    from gdcore import _chunked
    real = _chunked._core
    armed = []

    class SignalAfterUpdate:
        def __getattr__(self, name):
            return getattr(real, name)

        def optimizer_update(self, *args):
            moved = real.optimizer_update(*args)
            if armed:
                armed.clear()
                os.kill(os.getpid(), signal.SIGINT)
            return moved
    monkeypatch.setattr(_chunked, "_core", SignalAfterUpdate())
    X, y, _ = problem(n=50, d=3)

    def arm_at_epoch_2(progress):
        if progress.epoch == 2:
            armed.append(True)
        return False

    inner = []

    def run_inner(progress):
        if progress.epoch == 2:
            try:
                gdcore.fit_chunks([(X, y)], epochs=10, tol=None, callback=arm_at_epoch_2)
            except KeyboardInterrupt as interrupt:
                inner.append(interrupt.result)
                raise
        return False
    for callback in (arm_at_epoch_2, run_inner):
        with pytest.raises(KeyboardInterrupt) as caught:
            gdcore.fit_chunks([(X, y)], epochs=10, tol=None, callback=callback)
        result = inner[-1] if callback is run_inner else caught.value.result
        assert result.n_updates == result.n_epochs == len(result.loss_history) == 3
        replay = gdcore.fit_chunks([(X, y)], epochs=3, tol=None)
        np.testing.assert_array_equal(result.coef, replay.coef)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    def mine(signum, frame):
        pass

    def install_mine(progress):
        signal.signal(signal.SIGINT, mine)
        return False
    try:
        gdcore.fit(X, y, epochs=3, backend="numpy", callback=install_mine)
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
