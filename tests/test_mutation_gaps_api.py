"""Gaps found by mutation testing of the Python layer (gdcore/_api.py, gdcore/optim.py):
the lr override of an optimizer object, the converged flag's rule and the messages of a
continued fit, each checked against values worked out by hand."""

import warnings

import numpy as np
import pytest

import gdcore
from gdcore._api import _unsettled
from gdcore.optim import SGD, Adam

BACKENDS = ["core", "numpy"]

# X = [[1], [3]], y = [1, 2]: at w = b = 0, g = (∂w, ∂b) = (−3.5, −1.5).
X2 = np.array([[1.0], [3.0]])
Y2 = np.array([1.0, 2.0])


# --- fit(optimizer=<object>, lr=...) ---------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_lr_given_with_an_optimizer_object_overrides_its_lr(backend):
    """fit's lr is 'the learning rate overriding the optimizer's', for an object too: one SGD
    step with lr = 0.5 (not the object's 0.1) from 0 is 0.5·(3.5, 1.5).  The caller's object
    keeps its own lr."""
    mine = SGD(lr=0.1)
    r = gdcore.fit(X2, Y2, optimizer=mine, lr=0.5, epochs=1, tol=None, backend=backend)
    assert r.coef[0] == pytest.approx(1.75, rel=1e-14)
    assert r.intercept == pytest.approx(0.75, rel=1e-14)
    assert r.optimizer == SGD(lr=0.5) and mine.lr == 0.1


@pytest.mark.parametrize("backend", BACKENDS)
def test_lr_override_keeps_the_objects_other_hyper_parameters(backend):
    """Adam(betas=(0.8, 0.9)) with lr = 0.05: the first step is lr·g/(|g| + eps) whatever the
    betas, and the result records the object with only its lr replaced."""
    r = gdcore.fit(X2, Y2, optimizer=Adam(lr=0.3, betas=(0.8, 0.9), eps=1e-6), lr=0.05,
                   epochs=1, tol=None, backend=backend)
    assert r.optimizer == Adam(lr=0.05, betas=(0.8, 0.9), eps=1e-6)
    assert r.coef[0] == pytest.approx(0.05 * 3.5 / (3.5 + 1e-6), rel=1e-12)
    assert r.intercept == pytest.approx(0.05 * 1.5 / (1.5 + 1e-6), rel=1e-12)


# --- converged: a tol stop whose last loss is above 2·best_loss + tol is not convergence ---

@pytest.mark.parametrize("losses, best, unsettled", [
    ([1e-3, 0.0, 5e-5], 0.0, False),    # best 0: a last loss within tol of it has settled
    ([1e-3, 0.0, 1e-4], 0.0, False),    # exactly 2·best + tol: not above it
    ([1e-3, 0.0, 2e-4], 0.0, True),     # above 2·0 + tol
    ([1e-3, 2e-5, 9e-5], 2e-5, False),  # above 2·best, not above 2·best + tol
])
def test_unsettled_counts_tol_above_twice_the_best(losses, best, unsettled):
    assert _unsettled(losses, best, 1e-4) is unsettled


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_loss_that_moves_by_less_than_tol_is_settled(backend):
    """X = 0, y = 0 from b = 1e-3 with lr = 2.1: b ← −1.1·b, so the loss b²/2 goes 5e-7,
    6.05e-7, ... (×1.21 an epoch), never below best − tol for tol = 1e-4: the rule stops the
    fit at epoch 6, whose loss 5e-7·1.21⁵ ≈ 1.3e-6 is above 2·best = 1e-6 but far below
    2·best + tol.  The loss has moved by much less than the tolerance asked for: converged,
    and no ConvergenceWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", gdcore.ConvergenceWarning)
        r = gdcore.fit(np.zeros((4, 1)), np.zeros(4), optimizer="sgd", lr=2.1, epochs=50,
                       tol=1e-4, n_iter_no_change=5, init=(np.zeros(1), 1e-3),
                       backend=backend)
    np.testing.assert_allclose(r.loss_history, [5e-7 * 1.21 ** k for k in range(6)],
                               rtol=1e-12)
    assert r.loss_history[-1] > 2 * r.loss_history.min()
    assert (r.stop_reason, r.n_epochs, r.converged) == ("tol", 6, True)


# --- a continued fit is told about its own epochs --------------------------------------------

def growing_continuation(backend):
    """A fit of 10 epochs (lr = 0.3, its loss from 0.41 down to 0.0074), continued with lr = 3
    (too large: the loss grows): the tol rule stops the continuation after n_iter_no_change =
    4 epochs, with its last loss (0.045) above where the continuation began, though far below
    where the first fit began (at θ = 0)."""
    X, y, _ = gdcore.make_regression(60, 4, noise=0.1, intercept=0.7, seed=0)
    first = gdcore.fit(X, y, optimizer="gd", lr=0.3, epochs=10, tol=None, backend=backend)
    with pytest.warns(gdcore.ConvergenceWarning) as caught:
        more = gdcore.fit(X, y, optimizer="gd", lr=3.0, epochs=50, tol=1e-4,
                          n_iter_no_change=4, init=first, backend=backend)
    return first, more, str(caught[0].message)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_continuations_warning_compares_with_where_it_began(backend):
    first, more, message = growing_continuation(backend)
    own = more.loss_history[first.n_epochs:]
    assert (more.stop_reason, more.converged, len(own)) == ("tol", False, 5)
    # this call's losses rose; they stay below the first fit's starting loss
    assert own[-1] > own[0] and own[-1] < first.loss_history[0]
    assert f"rose to {own[-1]:.6g}, above where this fit began ({own[0]:.6g})" in message
    assert f"stopped the fit at epoch {more.n_epochs}" in message


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_continuation_whose_loss_overflows_before_an_update_says_so(backend):
    """A fit continued (init=result) on data whose squared residuals overflow float64 fails
    in its first epoch before any update of its own: the message says that no lr can help
    (not 'try a smaller lr'), and names the run's epoch."""
    first = gdcore.fit(X2, Y2, optimizer="sgd", lr=0.1, epochs=3, tol=None, backend=backend)
    huge = np.array([1e200, -1e200])
    with pytest.raises(gdcore.DivergenceError) as caught:
        gdcore.fit(X2, huge, optimizer="sgd", lr=0.1, epochs=3, tol=None, init=first,
                   backend=backend)
    message = str(caught.value)
    assert "not finite at the starting parameters (epoch 4, before any update)" in message
    assert "no learning rate can help" in message and "smaller lr" not in message
    assert caught.value.result.n_updates == 3


@pytest.mark.parametrize("batch_size", [None, 16])
def test_a_continuation_in_history_stretches_runs_all_its_epochs(monkeypatch, batch_size):
    """The core runs a long fit in stretches of HISTORY_STRETCH epochs; a continued fit's
    epochs count on from the earlier fit's, and it still runs the epochs it was asked for:
    3 + 10 = 13 epochs, the same (bitwise) as one fit of 13."""
    monkeypatch.setattr(gdcore._api, "HISTORY_STRETCH", 4)
    X, y, _ = gdcore.make_regression(80, 3, noise=0.3, seed=1)
    options = dict(optimizer="adam", lr=0.05, batch_size=batch_size, seed=1, tol=None,
                   n_threads=1, precompute=False)
    first = gdcore.fit(X, y, epochs=3, **options)
    more = gdcore.fit(X, y, epochs=10, init=first, **options)
    whole = gdcore.fit(X, y, epochs=13, **options)
    per_epoch = 1 if batch_size is None else 5
    assert (more.stop_reason, more.n_epochs, more.n_updates) == ("epochs", 13, 13 * per_epoch)
    assert len(more.loss_history) == 13
    np.testing.assert_array_equal(more.loss_history, whole.loss_history)
    np.testing.assert_array_equal(more.coef, whole.coef)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_continuation_of_a_diverging_fit_blames_its_lr_not_the_data(backend):
    """A fit continued (init=result) from a fit whose loss was rising overflows in its first
    epoch at the parameters that fit's updates reached: the same trajectory run in one call
    says 'try a smaller lr', and the continuation said the data overflow and that no
    learning rate can help. It names the divergence of the continued fit instead."""
    X, y, _ = gdcore.make_regression(200, 4, noise=0.0, seed=1)
    options = dict(optimizer="sgd", lr=10.0, tol=None, backend=backend)
    with pytest.raises(gdcore.DivergenceError) as whole:
        gdcore.fit(X, y, epochs=500, **options)
    assert "smaller lr" in str(whole.value)
    stop = whole.value.result.n_epochs          # the last epoch whose loss was finite
    first = gdcore.fit(X, y, epochs=stop, **options)
    with pytest.raises(gdcore.DivergenceError) as caught:
        gdcore.fit(X, y, epochs=5, init=first, **options)
    message = str(caught.value)
    assert "no learning rate can help" not in message
    assert f"epoch {stop + 1}" in message and "that fit was diverging" in message
    assert "smaller lr (e.g. 1)" in message
    assert caught.value.result.n_updates == first.n_updates
