"""pytest-benchmark benchmarks of the kernels (run: python -m pytest benches --benchmark-only).

Each group pits gdcore against a baseline on the same data, so the ratios in a group's
table are what matters, not the absolute times.
"""

import numpy as np
import pytest

import gdcore
from gdcore import _core

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


@pytest.mark.benchmark(group="fused pass")
def test_read_bandwidth_probe(benchmark, problem):
    X = problem[0]
    benchmark(_core.stream_sum, X.reshape(-1), _core.default_n_threads())


@pytest.mark.benchmark(group="fused pass")
def test_fused_loss_gradient_float64(benchmark, problem):
    X, y, _ = problem
    benchmark(_core.objective_gradient, X, y, np.empty(0), _theta(D, np.float64), 0.0, 0.0,
              True, _core.default_n_threads())


@pytest.mark.benchmark(group="fused pass")
def test_fused_loss_gradient_float32(benchmark, problem32):
    X, y = problem32
    benchmark(_core.objective_gradient, X, y, np.empty(0, np.float32),
              _theta(D, np.float32), 0.0, 0.0, True, _core.default_n_threads())


@pytest.mark.benchmark(group="fused pass")
def test_numpy_two_pass_baseline(benchmark, problem):
    X, y, _ = problem
    theta = _theta(D, np.float64)

    def two_passes():
        r = X @ theta[:D] + theta[D] - y
        return 0.5 * np.mean(r * r), X.T @ r / len(y)
    benchmark(two_passes)


@pytest.mark.benchmark(group="epochs")
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("batch_size", [None, 256, 1])
def test_fit_epochs(benchmark, problem, optimizer, batch_size):
    X, y, _ = problem
    benchmark.pedantic(gdcore.fit, args=(X, y),
                       kwargs=dict(optimizer=optimizer, lr=0.01, epochs=3, tol=None,
                                   batch_size=batch_size, seed=0, precompute=False),
                       rounds=3, iterations=1)


@pytest.fixture(scope="module")
def short_rows():
    return gdcore.make_regression(N * 10, 10, seed=0)


@pytest.mark.benchmark(group="short rows (d=10)")
def test_short_rows_fused_pass(benchmark, short_rows):
    X, y, _ = short_rows
    benchmark(_core.objective_gradient, X, y, np.empty(0), _theta(10, np.float64), 0.0, 0.0,
              True, _core.default_n_threads())


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
