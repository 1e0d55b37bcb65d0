"""A seed given to a continuation (init=FitResult) whose earlier fit never drew a permutation
(full batch, or shuffle=False) is the seed its shuffles follow: it was silently ignored, and
the stream came from the earlier fit's generator (fresh OS entropy when that fit, needing no
seed, was given none), so two identical runs passing seed=0 differed."""

import numpy as np
import pytest

import gdcore
from gdcore import GDRegressor

from conftest import problem

BACKENDS = ["core", "numpy"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("first", [dict(), dict(batch_size=8, shuffle=False)])
def test_a_seed_given_after_a_fit_that_never_shuffled_is_used(backend, first):
    X, y, _ = problem(n=60, d=3)
    options = dict(tol=None, backend=backend)

    def warm(seed=None):
        return gdcore.fit(X, y, optimizer="adam", lr=0.05, epochs=2, seed=seed, **first,
                          **options)
    runs = [gdcore.fit(X, y, epochs=3, batch_size=8, seed=0, init=warm(), **options)
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0].coef, runs[1].coef)
    np.testing.assert_array_equal(runs[0].loss_history, runs[1].loss_history)
    # its shuffles are default_rng(0)'s: those of a warm-up seeded 0 continued without a seed
    seeded_first = gdcore.fit(X, y, epochs=3, batch_size=8, init=warm(seed=0), **options)
    np.testing.assert_array_equal(runs[0].coef, seeded_first.coef)
    # and a continuation of that continuation goes on with its stream (3 + 2 epochs = 5)
    after = gdcore.fit(X, y, epochs=2, batch_size=8, seed=0, init=runs[0], **options)
    straight = gdcore.fit(X, y, epochs=5, batch_size=8, seed=0, init=warm(), **options)
    np.testing.assert_array_equal(after.coef, straight.coef)
    np.testing.assert_array_equal(after.loss_history, straight.loss_history)


def test_without_a_seed_the_earlier_fits_stream_goes_on():
    # full batch with seed=7, then mini-batches with no seed: the stream of seed 7, as before
    X, y, _ = problem(n=60, d=3)
    a = gdcore.fit(X, y, epochs=2, seed=7, tol=None)
    b = gdcore.fit(X, y, epochs=2, seed=7, tol=None)
    ma = gdcore.fit(X, y, epochs=3, batch_size=8, init=a, tol=None)
    mb = gdcore.fit(X, y, epochs=3, batch_size=8, init=b, tol=None)
    np.testing.assert_array_equal(ma.coef, mb.coef)


def test_a_seed_is_still_ignored_once_the_stream_was_drawn_from():
    # 5 + 5 shuffled epochs equal 10, whatever seed the second call is given
    X, y, _ = problem(n=60, d=3)
    ten = gdcore.fit(X, y, epochs=10, batch_size=8, seed=3, tol=None)
    five = gdcore.fit(X, y, epochs=5, batch_size=8, seed=3, tol=None)
    more = gdcore.fit(X, y, epochs=5, batch_size=8, seed=99, init=five, tol=None)
    np.testing.assert_array_equal(more.coef, ten.coef)


def test_gdregressor_warm_start_from_full_batch_follows_the_new_seed():
    X, y, _ = problem(n=60, d=3)
    coefs = []
    for _ in range(2):
        model = GDRegressor(optimizer="adam", lr=0.05, epochs=2, tol=None, warm_start=True)
        model.fit(X, y)
        model.set_params(batch_size=8, seed=0)
        coefs.append(model.fit(X, y).coef_)
    np.testing.assert_array_equal(coefs[0], coefs[1])
