"""pytest-benchmark benchmarks of the kernels (run: python -m pytest benches --benchmark-only).

Each group pits gdcore against a baseline on the same data, so the ratios in a group's
table are what matters, not the absolute times.
"""

import numpy as np
import pytest

import gdcore
from gdcore import _core
from gdcore.bench import PROBE_PREFETCH_BYTES

N, D = 200_000, 100


@pytest.fixture(scope="module")
def problem():
    return gdcore.make_regression(N, D, seed=0)


@pytest.fixture(scope="module")
def problem32(problem):
    X, y, _ = problem
    return X.astype(np.float32), y.astype(np.float32)


def _theta(d, dtype):
    return np.full(d + 1, 0.1, dtype=dtype)


def _check_loss_gradient(timed, X, y):
    """What a timed fused pass returned against two NumPy passes in float64 (a benchmark of
    a wrong kernel would time nothing useful)."""
    theta = _theta(X.shape[1], np.float64)
    X64, y64 = X.astype(np.float64), y.astype(np.float64)
    r = X64 @ theta[:-1] + theta[-1] - y64
    loss, grad = timed
    rtol = 1e-10 if X.dtype == np.float64 else 1e-4
    np.testing.assert_allclose(loss, 0.5 * np.mean(r * r), rtol=rtol)
    np.testing.assert_allclose(grad, np.append(X64.T @ r, r.sum()) / len(y), rtol=rtol,
                               atol=rtol * np.abs(r).mean())


# The probe as gdcore bench reads: plain, and prefetching with the kernels' locality hint and
# with the non-temporal one (gdcore bench takes the fastest as its yardstick).
PROBE_READS = {"plain": (0, False), "prefetch": (PROBE_PREFETCH_BYTES, False),
               "prefetch-nt": (PROBE_PREFETCH_BYTES, True)}


@pytest.mark.benchmark(group="fused pass")
@pytest.mark.parametrize("read", list(PROBE_READS))
def test_read_bandwidth_probe(benchmark, problem, read):
    X = problem[0]
    total = benchmark(_core.stream_sum, X.reshape(-1), _core.default_n_threads(),
                      *PROBE_READS[read])
    np.testing.assert_allclose(total, X.sum(), rtol=1e-9, atol=1e-9 * np.abs(X).sum())


@pytest.mark.benchmark(group="fused pass")
def test_fused_loss_gradient_float64(benchmark, problem):
    X, y, _ = problem
    _check_loss_gradient(benchmark(_core.objective_gradient, X, y, np.empty(0),
                                   _theta(D, np.float64), 0.0, 0.0, True,
                                   _core.default_n_threads()), X, y)


@pytest.mark.benchmark(group="fused pass")
def test_fused_loss_gradient_float32(benchmark, problem32):
    X, y = problem32
    _check_loss_gradient(benchmark(_core.objective_gradient, X, y, np.empty(0, np.float32),
                                   _theta(D, np.float32), 0.0, 0.0, True,
                                   _core.default_n_threads()), X, y)


@pytest.mark.benchmark(group="fused pass")
def test_numpy_two_pass_baseline(benchmark, problem):
    X, y, _ = problem
    theta = _theta(D, np.float64)

    def two_passes():
        r = X @ theta[:D] + theta[D] - y
        return 0.5 * np.mean(r * r), np.append(X.T @ r, r.sum()) / len(y)
    _check_loss_gradient(benchmark(two_passes), X, y)


@pytest.mark.benchmark(group="epochs")
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("batch_size", [None, 256, 1])
def test_fit_epochs(benchmark, problem, optimizer, batch_size):
    X, y, _ = problem
    options = dict(optimizer=optimizer, lr=0.01, epochs=3, tol=None, batch_size=batch_size,
                   seed=0, precompute=False)
    result = benchmark.pedantic(gdcore.fit, args=(X, y), kwargs=options, rounds=3,
                                iterations=1)
    if batch_size != 1:     # the reference's per-row Python loop would take minutes
        reference = gdcore.fit(X, y, backend="numpy", **options)
        np.testing.assert_allclose(result.loss_history, reference.loss_history, rtol=1e-9)


@pytest.fixture(scope="module")
def short_rows():
    return gdcore.make_regression(N * 10, 10, seed=0)


@pytest.mark.benchmark(group="short rows (d=10)")
def test_short_rows_fused_pass(benchmark, short_rows):
    X, y, _ = short_rows
    _check_loss_gradient(benchmark(_core.objective_gradient, X, y, np.empty(0),
                                   _theta(10, np.float64), 0.0, 0.0, True,
                                   _core.default_n_threads()), X, y)


@pytest.mark.benchmark(group="short rows (d=10)")
def test_short_rows_read_bandwidth_probe(benchmark, short_rows):
    benchmark(_core.stream_sum, short_rows[0].reshape(-1), _core.default_n_threads())


@pytest.fixture(scope="module")
def small_problem():
    return gdcore.make_regression(1000, 10, seed=0)


@pytest.mark.benchmark(group="1000 epochs at 1000x10")
@pytest.mark.parametrize("n_threads", [1, 2])
def test_small_full_batch_streaming(benchmark, small_problem, n_threads):
    """The full-batch loop: 1000 epochs in one call, on one thread or one team of two."""
    X, y, _ = small_problem
    benchmark(gdcore.fit, X, y, optimizer="gd", lr=0.1, epochs=1000, tol=None,
              n_threads=n_threads, precompute=False)


@pytest.mark.benchmark(group="1000 epochs at 1000x10")
def test_small_full_batch_numpy_reference(benchmark, small_problem):
    X, y, _ = small_problem
    benchmark.pedantic(gdcore.fit, args=(X, y),
                       kwargs=dict(optimizer="gd", lr=0.1, epochs=1000, tol=None,
                                   backend="numpy"),
                       rounds=5, iterations=1)


@pytest.fixture(scope="module")
def per_sample_problem():
    return gdcore.make_regression(20_000, 100, seed=0)


@pytest.mark.benchmark(group="batch_size=1 updates (20,000 x 100)")
@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
@pytest.mark.parametrize("loop", ["single-row", "general"])
def test_single_row_loop(benchmark, per_sample_problem, optimizer, loop):
    """The other rules' batch_size=1 loop against the general mini-batch loop (four-row
    groups and their sums), which it replaced for batches of one row."""
    X, y, _ = per_sample_problem
    _core._set_single_row_path(loop == "single-row")
    try:
        benchmark.pedantic(gdcore.fit, args=(X, y),
                           kwargs=dict(optimizer=optimizer, lr=0.001, epochs=3, tol=None,
                                       batch_size=1, seed=0, n_threads=1),
                           rounds=5, iterations=1)
    finally:
        _core._set_single_row_path(True)
