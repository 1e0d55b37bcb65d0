"""Same seed and thread count: the same bits.  Different thread counts: the same up to
rounding."""

import numpy as np
import pytest

import gdcore

from conftest import problem


def run(X, y, **options):
    r = gdcore.fit(X, y, tol=None, **options)
    return np.concatenate([r.loss_history, r.coef, [r.intercept]])


@pytest.fixture(scope="module")
def big():
    # large enough that a pass is cut between threads (n·(d+1) ≥ 32768)
    X, y, _ = problem(n=20000, d=10)
    return X, y


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("batch_size", [None, 64, 8192])
def test_bitwise_repeatable(big, n_threads, batch_size):
    X, y = big
    options = dict(optimizer="adam", lr=0.01, epochs=3, batch_size=batch_size, seed=7,
                   n_threads=n_threads)
    assert np.array_equal(run(X, y, **options), run(X, y, **options))


@pytest.mark.parametrize("batch_size", [None, 8192])
def test_one_and_two_threads_agree(big, batch_size):
    X, y = big
    options = dict(optimizer="sgd", lr=0.1, epochs=4, batch_size=batch_size, seed=3)
    np.testing.assert_allclose(run(X, y, n_threads=1, **options),
                               run(X, y, n_threads=2, **options), rtol=1e-12)


def test_seed_controls_the_shuffle(big):
    X, y = big
    a = run(X, y, optimizer="sgd", lr=0.01, epochs=2, batch_size=32, seed=1)
    b = run(X, y, optimizer="sgd", lr=0.01, epochs=2, batch_size=32, seed=2)
    assert not np.array_equal(a, b)
    c = run(X, y, optimizer="sgd", lr=0.01, epochs=2, batch_size=32, seed=1, shuffle=False)
    d = run(X, y, optimizer="sgd", lr=0.01, epochs=2, batch_size=32, seed=2, shuffle=False)
    assert np.array_equal(c, d)


def test_permutation_is_numpys(big):
    """The rows of each epoch follow numpy.random.default_rng(seed).permutation(n)."""
    X, y = big
    X, y = X[:10], y[:10]
    order = np.random.default_rng(4).permutation(10)
    by_hand = gdcore.fit(X[order], y[order], optimizer="sgd", lr=0.05, epochs=1,
                         batch_size=3, shuffle=False, tol=None)
    shuffled = gdcore.fit(X, y, optimizer="sgd", lr=0.05, epochs=1, batch_size=3, seed=4,
                          tol=None)
    np.testing.assert_array_equal(shuffled.coef, by_hand.coef)
