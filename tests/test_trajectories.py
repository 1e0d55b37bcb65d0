"""The compiled core against the NumPy reference, along whole trajectories: every epoch's
loss and every epoch's parameters (read through the callback)."""

import numpy as np
import pytest

import gdcore
from gdcore.optim import SGD, Adagrad, Adam, NormalizedGD, RMSprop
from gdcore.schedules import (CosineAnnealingLR, ExponentialLR, InverseScaling, LinearLR,
                              StepLR)

from conftest import problem, starting_within_a_line

OPTIMIZERS = {
    "sgd": SGD(lr=0.05),
    "momentum": SGD(lr=0.02, momentum=0.9),
    "nesterov": SGD(lr=0.02, momentum=0.9, nesterov=True),
    "sgd-dampening": SGD(lr=0.05, momentum=0.5, dampening=0.5),
    "adagrad": Adagrad(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1),
    "rmsprop": RMSprop(lr=0.01),
    "rmsprop-centered-momentum": RMSprop(lr=0.005, momentum=0.5, centered=True),
    "adam": Adam(lr=0.02),
    "amsgrad": Adam(lr=0.02, betas=(0.8, 0.99), amsgrad=True),
    "normalized": NormalizedGD(lr=0.02),
}
SCHEDULES = {
    "constant": "constant",
    "step": StepLR(step_size=3, gamma=0.5),
    "exponential": ExponentialLR(gamma=0.9),
    "cosine": CosineAnnealingLR(T_max=6, eta_min=0.001),
    "linear": LinearLR(start_factor=0.25, end_factor=1.0, total_iters=4),
    "invscaling": InverseScaling(power_t=0.3),
}
# Full-batch fits run in two modes (SPEC §7 holds both to the reference): streaming X every
# epoch (precompute=False) and Gram mode (precompute=True).  fit's default "auto" picks Gram
# mode for most small full-batch fits, so each mode is asked for explicitly.
BATCHES = {"full-streaming": dict(batch_size=None, precompute=False),
           "full-gram": dict(batch_size=None, precompute=True),
           "mini": dict(batch_size=16),
           "single": dict(batch_size=1)}
RTOL = {np.float64: 1e-10, np.float32: 1e-4}
# block_sums cuts a pass between threads only from this many multiply-adds (n·(d+1)) on
# (PARALLEL_MIN_WORK and on_one_thread in src/gd_threads.pxi)
PARALLEL_MIN_WORK = 16384


def trajectory(X, y, backend, **options):
    """(loss_history, per-epoch (coef, intercept) array, result).  A full-batch core fit
    must say which mode it runs in (precompute=True or False), and is held to it: Gram mode
    forms the Gram matrix once, streaming never does."""
    params = []
    full_batch = options.get("batch_size") is None or options["batch_size"] >= len(y)
    precompute = options.get("precompute", "auto")
    if backend == "core" and full_batch:
        assert precompute in (True, False), "say which full-batch mode is compared"
    grams = []
    original = gdcore._api.augmented_gram

    def counted(*args, **kwargs):
        grams.append(1)
        return original(*args, **kwargs)
    gdcore._api.augmented_gram = counted
    try:
        result = gdcore.fit(X, y, backend=backend, tol=None, seed=5,
                            callback=lambda p: params.append(np.append(p.coef, p.intercept)),
                            **options)
    finally:
        gdcore._api.augmented_gram = original
    if backend == "core":
        assert len(grams) == (1 if full_batch and precompute is True else 0)
    assert len(params) == result.n_epochs == len(result.loss_history)
    return result.loss_history, np.array(params), result


def assert_same_trajectory(X, y, dtype, **options):
    loss_core, params_core, core = trajectory(X, y, "core", **options)
    loss_ref, params_ref, ref = trajectory(X, y, "numpy", **options)
    rtol = RTOL[dtype]
    assert core.coef.dtype == ref.coef.dtype == dtype
    assert core.n_epochs == ref.n_epochs and core.n_updates == ref.n_updates
    np.testing.assert_allclose(loss_core, loss_ref, rtol=rtol)
    scale = np.abs(params_ref).max()
    np.testing.assert_allclose(params_core, params_ref, rtol=rtol, atol=rtol * scale)
    assert np.all(np.isfinite(loss_core))
    return core


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("batch", BATCHES)
def test_every_optimizer_and_schedule(optimizer, schedule, batch):
    X, y, _ = problem(n=50, d=4)
    result = assert_same_trajectory(X, y, np.float64, optimizer=OPTIMIZERS[optimizer],
                                    schedule=SCHEDULES[schedule], epochs=8,
                                    **BATCHES[batch])
    assert result.n_epochs == 8


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_weights_dtypes_intercept(optimizer, batch, fit_intercept, weighted, dtype):
    X, y, _ = problem(n=45, d=3, dtype=dtype)
    weights = None
    if weighted:
        weights = np.random.default_rng(1).uniform(0.0, 2.0, len(y)).astype(dtype)
        weights[::4] = 0.0
    result = assert_same_trajectory(X, y, dtype, optimizer=OPTIMIZERS[optimizer],
                                    epochs=6, **BATCHES[batch],
                                    fit_intercept=fit_intercept, sample_weight=weights,
                                    schedule=StepLR(step_size=2, gamma=0.7))
    if not fit_intercept:
        assert result.intercept == 0.0


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov"])
def test_penalties(optimizer, batch):
    X, y, _ = problem(n=40, d=6)
    result = assert_same_trajectory(X, y, np.float64, optimizer=OPTIMIZERS[optimizer],
                                    epochs=10, l2=0.05, l1=0.02, **BATCHES[batch])
    assert result.n_updates > 0


@pytest.mark.parametrize("precompute", [False, True], ids=["streaming", "gram"])
def test_l1_sets_coefficients_exactly_to_zero(precompute):
    X, y, _ = problem(n=80, d=6)
    y = X[:, 0] * 2.0 + 0.01 * np.random.default_rng(0).standard_normal(80)
    core = gdcore.fit(X, y, optimizer="sgd", lr=0.1, l1=0.2, epochs=200, tol=None,
                      precompute=precompute)
    ref = gdcore.fit(X, y, optimizer="sgd", lr=0.1, l1=0.2, epochs=200, tol=None,
                     backend="numpy")
    assert np.count_nonzero(core.coef == 0.0) >= 4
    np.testing.assert_array_equal(core.coef == 0.0, ref.coef == 0.0)


@pytest.mark.parametrize("precompute", [False, True], ids=["streaming", "gram"])
@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_threaded_pass_matches_reference(l2, precompute):
    """A problem large enough that the core cuts rows between two threads: streaming, each
    full-batch pass (20,000 rows of 8 values) and each 8,192-row batch is well past the
    threading bar; in Gram mode the epochs are O(d²) and only the Gram pass is large."""
    X, y, _ = problem(n=20000, d=8)
    assert 8192 * (8 + 1) >= 2 * PARALLEL_MIN_WORK
    threads = 2 if gdcore._core.openmp_enabled() else 1
    core = assert_same_trajectory(X, y, np.float64, optimizer="adam", lr=0.05, epochs=5,
                                  l2=l2, n_threads=2, precompute=precompute)
    assert core.n_threads == threads
    core = assert_same_trajectory(X, y, np.float64, optimizer="sgd", lr=0.05, epochs=2,
                                  batch_size=8192, n_threads=2, l2=l2)
    assert core.n_threads == threads


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("penalties", [{}, {"l2": 0.05, "l1": 0.01}])
def test_classic_sgd_on_wide_rows(dtype, penalties):
    """batch_size=1 SGD has its own fused path; with d >= 32 its residual goes through the
    lane-summed dot product.  Weighted rows, some of weight 0, are skipped or cancel."""
    X, y, _ = problem(n=60, d=40, dtype=dtype)
    weights = np.random.default_rng(2).uniform(0.0, 2.0, len(y)).astype(dtype)
    weights[::5] = 0.0
    assert_same_trajectory(X, y, dtype, optimizer="sgd", lr=0.01, batch_size=1, epochs=5,
                           sample_weight=weights, schedule=InverseScaling(power_t=0.5),
                           **penalties)


def switched_off(setter):
    """A core switch (one of _core's _set_* test hooks) off for the duration of a test."""
    setter(False)
    try:
        yield
    finally:
        setter(True)


@pytest.fixture
def sgd_sums_apart():
    """Classic SGD with each row's x·w summed apart from the update before it."""
    yield from switched_off(gdcore._core._set_sgd_fusion)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [1, 3, 4, 7, 20, 31, 32, 47, 100])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("schedule", ["constant", InverseScaling(0.25)],
                         ids=["one-lr-an-epoch", "lr-an-update"])
def test_classic_sgd_forms_next_dot_in_its_update(dtype, d, shuffle, fit_intercept, schedule,
                                                  request):
    """Without weights or penalties, each batch_size=1 update also forms the next row's x·w
    in the same sweep: the trajectory must be the bits of the path that sums it apart,
    across chunk ends (90,000 rows of 100 values are three chunks between signal checks);
    and follow the reference.  With one lr an epoch the rows take plain_sgd_rows, with an
    lr an update (InverseScaling) sgd_rows' fused path: both are held to it."""
    n = 90_000 if d == 100 else 300
    X, y, _ = problem(n=n, d=d, dtype=dtype)
    options = dict(optimizer="sgd", lr=0.002, batch_size=1, epochs=3, shuffle=shuffle,
                   fit_intercept=fit_intercept, schedule=schedule)
    fused_losses, fused_params, fused = trajectory(X, y, "core", **options)
    request.getfixturevalue("sgd_sums_apart")
    apart_losses, apart_params, apart = trajectory(X, y, "core", **options)
    np.testing.assert_array_equal(fused_losses, apart_losses)
    np.testing.assert_array_equal(fused_params, apart_params)
    assert fused.n_updates == apart.n_updates == 3 * n
    if n <= 300:
        assert_same_trajectory(X, y, dtype, **options)


@pytest.fixture
def general_loop_for_single_rows():
    """batch_size=1 fits of the other rules through the general mini-batch loop."""
    yield from switched_off(gdcore._core._set_single_row_path)


SINGLE_ROW_RULES = {name: OPTIMIZERS[name] for name in
                    ["momentum", "nesterov", "adagrad", "rmsprop-centered-momentum", "adam",
                     "amsgrad", "normalized"]}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [1, 3, 7, 31, 41, 65, 100])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("optimizer", SINGLE_ROW_RULES)
def test_single_row_updates_of_every_rule(optimizer, weighted, d, dtype, request):
    """batch_size=1 with momentum, Adagrad, RMSprop, Adam or normalized steps forms each
    row's gradient straight from the row.  Against the general loop (four-row groups and
    their sums): the same bits wherever both sum x·w alike (float64 rows of more than 40
    values, float32 of more than 64: the short-row kernels sum theirs in another order),
    else the same to rounding; and against the reference, with weights (some 0) and l2."""
    n = 200
    X, y, _ = problem(n=n, d=d, dtype=dtype)
    options = dict(optimizer=SINGLE_ROW_RULES[optimizer], batch_size=1, epochs=3,
                   schedule=InverseScaling(power_t=0.3))
    if weighted:
        weights = np.random.default_rng(d).uniform(0.0, 2.0, n).astype(dtype)
        weights[::5] = 0.0
        options.update(sample_weight=weights, l2=0.01)
    direct_losses, direct_params, direct = trajectory(X, y, "core", **options)
    assert_same_trajectory(X, y, dtype, **options)
    request.getfixturevalue("general_loop_for_single_rows")
    loop_losses, loop_params, loop = trajectory(X, y, "core", **options)
    assert direct.n_updates == loop.n_updates == 3 * (n - n // 5 if weighted else n)
    if d > (40 if dtype == np.float64 else 64):
        np.testing.assert_array_equal(direct_losses, loop_losses)
        np.testing.assert_array_equal(direct_params, loop_params)
    else:
        rtol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(direct_losses, loop_losses, rtol=rtol)
        np.testing.assert_allclose(direct_params, loop_params, rtol=rtol,
                                   atol=rtol * np.abs(loop_params).max())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [1, 7, 8, 9, 12, 13, 15, 16, 17, 24, 25, 31, 32, 33, 39, 40, 41,
                               47, 48, 49, 63, 64, 65])
@pytest.mark.parametrize("batch", [dict(batch_size=None, precompute=False),
                                   dict(batch_size=None, precompute=True),
                                   dict(batch_size=7)], ids=["full-streaming", "full-gram", "7"])
def test_every_short_row_width(d, dtype, batch):
    """Rows of up to 40 (float64) or 64 (float32) values go through padded vector kernels of
    width 8 to 64 (the last rows of X copied, zero-padded): every width, both sides of each
    edge, float32's block sums (n > 64), weights, and shuffled mini-batches that reach the
    last row."""
    X, y, _ = problem(n=203, d=d, dtype=dtype)
    weights = np.random.default_rng(d).uniform(0.0, 2.0, len(y)).astype(dtype)
    assert_same_trajectory(X, y, dtype, optimizer="adam", lr=0.05, epochs=4,
                           sample_weight=weights, l2=0.01, **batch)


@pytest.mark.parametrize("dtype, d", [(np.float64, 450), (np.float32, 900)])
@pytest.mark.parametrize("batch", [None, 16])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_rows_of_3200_bytes_or_more(dtype, d, batch, n_threads):
    """Rows of 3,200 bytes or more read in order are prefetched as a stream that runs with
    both sweeps of a group (the gradient sweep then goes 16 values a step, tail after): whole
    fits, full-batch and shuffled, weighted, with 203 rows (groups and a short last one)."""
    X, y, _ = problem(n=203, d=d, dtype=dtype)
    weights = np.random.default_rng(d).uniform(0.0, 2.0, len(y)).astype(dtype)
    assert_same_trajectory(X, y, dtype, optimizer="adam", lr=0.01, epochs=4, batch_size=batch,
                           sample_weight=weights, l2=0.01, n_threads=n_threads,
                           precompute=False)


@pytest.mark.parametrize("dtype, d, n, batch", [(np.float64, 48, 3000, 1400),
                                               (np.float64, 1000, 203, 96),
                                               (np.float32, 128, 203, 64)])
def test_shuffled_batches_wherever_x_starts(dtype, d, n, batch):
    """Gathered rows of whole cache lines all start where X does within a line, and their
    gradient terms go to a buffer placed like them (float64: from 65,536 values a batch;
    float32: its block sums, from 64 rows): whole shuffled fits from X at several offsets
    within a line must follow the NumPy reference and one another, bit for bit."""
    X, y, _ = problem(n=n, d=d, dtype=dtype)
    runs = []
    for offset in (0, 8, 16, 56):
        placed = starting_within_a_line(X, offset)
        core = assert_same_trajectory(placed, y, dtype, optimizer="adam", lr=0.01, epochs=3,
                                      batch_size=batch, l2=0.01, n_threads=1,
                                      precompute=False)
        runs.append(np.append(core.loss_history, np.append(core.coef, core.intercept)))
    for run in runs[1:]:
        assert np.array_equal(run, runs[0])


def test_shuffled_batches_of_long_rows_cut_between_threads():
    """Shuffled batches of rows of 32 values or more are cut between threads from ~3,000
    multiply-adds (gathered rows wait on memory): 128 rows of 40 values on two threads."""
    X, y, _ = problem(n=3000, d=40)
    assert_same_trajectory(X, y, np.float64, optimizer="adam", lr=0.01, epochs=3,
                           batch_size=128, n_threads=2)
    assert_same_trajectory(X, y, np.float64, optimizer="sgd", lr=0.01, epochs=3,
                           batch_size=100, n_threads=2, l2=0.01)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [65, 100, 1000])
def test_four_rows_sum_each_dot_product_as_one_row_does(d, dtype):
    """Rows longer than the short-row kernels take (float64 40 values, float32 64) go four at
    a time through one sweep (rows_dot4), one at a time at a block's end and in batch_size=1
    SGD (row_dot): each row's x·w must be the same sum in the same order either way, so a
    row's residual does not depend on where it falls.  Four copies of a row make Σrᵢ = 4r
    exactly, which must equal 4 × the row's residual alone.  (The short-row kernels' four-row
    and one-row sums may differ in the last bits.)"""
    rng = np.random.default_rng(d)
    row = rng.standard_normal(d).astype(dtype)
    theta = rng.standard_normal(d + 1).astype(dtype)
    y = np.array([0.25], dtype=dtype)
    no_weights = np.empty(0, dtype=dtype)
    alone = gdcore._core.block_sums_of(row[None, :], y, no_weights, theta, 1)
    four = gdcore._core.block_sums_of(np.repeat(row[None, :], 4, axis=0), np.repeat(y, 4),
                                      no_weights, theta, 1)
    assert four[d] == 4.0 * alone[d]                           # Σ rᵢ, bit for bit
    assert four[d + 1] == 4.0 * alone[d + 1]                   # Σ rᵢ²
    # and the single row's residual is the one a float64 dot product gives, to rounding
    expected = float(row.astype(np.float64) @ theta[:d].astype(np.float64) + theta[d] - y[0])
    np.testing.assert_allclose(alone[d], expected, rtol=1e-4 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("momentum", [0.0, 0.5])
@pytest.mark.parametrize("batch_size", [None, 1])
def test_centered_rmsprop_whose_mean_square_overflows_diverges_as_the_reference_does(
        momentum, batch_size):
    # g ~ 1e300: v = g² is inf and so is ḡ², so v − ḡ² is NaN in the reference; an FMA
    # (-march=native) formed ḡ² exactly, made v − ḡ² inf and every step 0, and the core
    # returned a fit where the reference raised DivergenceError
    X = np.array([[1e150], [2e150]])
    y = np.array([3e150, 1e150])
    options = dict(optimizer=RMSprop(lr=0.01, centered=True, momentum=momentum), epochs=3,
                   batch_size=batch_size, shuffle=False, tol=None, precompute=False)
    for backend in ("core", "numpy"):
        with pytest.raises(gdcore.DivergenceError, match="parameters stopped being finite"):
            gdcore.fit(X, y, backend=backend, **options)
