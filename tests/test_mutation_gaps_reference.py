"""Gaps found by mutation testing of the NumPy reference (gdcore/_reference.py) and of the
schedules (gdcore/schedules.py): each test pins a behaviour against values worked out by hand
(or numpy.linalg.lstsq) from SPEC.md, in both backends, so that a slip made in the reference
and the core alike is caught, not only one that makes them disagree."""

import math

import numpy as np
import pytest

import gdcore
from gdcore import _core, _reference
from gdcore.optim import NormalizedGD
from gdcore.schedules import (Constant, CosineAnnealingLR, ExponentialLR, InverseScaling,
                              LinearLR, StepLR, make_schedule)

BACKENDS = ["core", "numpy"]
# the core in both full-batch modes, and the reference
FULL_BATCH_RUNS = {"core-streaming": dict(backend="core", precompute=False),
                   "core-gram": dict(backend="core", precompute=True),
                   "numpy": dict(backend="numpy")}

# X = [[1], [3]], y = [1, 2]: at w = b = 0, g = (∂w, ∂b) = (−3.5, −1.5), ‖g‖₂ = √14.5.
X2 = np.array([[1.0], [3.0]])
Y2 = np.array([1.0, 2.0])


# --- NormalizedGD: θ ← θ − lr·g / max(‖g‖₂, eps) (SPEC §3) ----------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_normalized_gd_divides_by_eps_when_the_gradient_is_shorter(backend):
    """eps = 10 > ‖g‖₂ = √14.5 ≈ 3.81: the step is lr·g/eps, (0.2/10)·(3.5, 1.5), not a step of
    length lr (the max() of the update, not ‖g‖₂ alone)."""
    r = gdcore.fit(X2, Y2, optimizer=NormalizedGD(lr=0.2, eps=10.0), epochs=1, tol=None,
                   backend=backend)
    assert r.coef[0] == pytest.approx(0.2 * 3.5 / 10.0, rel=1e-14)
    assert r.intercept == pytest.approx(0.2 * 1.5 / 10.0, rel=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_normalized_gd_at_a_zero_gradient_stays_put(backend):
    """w = b = 0.5 fits X2, y2 exactly (r = 0, g = 0 exactly): the step is 0/eps = 0, θ does not
    move and nothing diverges (0/‖g‖₂ would be NaN)."""
    r = gdcore.fit(X2, Y2, optimizer=NormalizedGD(lr=0.2), epochs=3, tol=None,
                   init=(np.array([0.5]), 0.5), backend=backend)
    assert (r.coef[0], r.intercept) == (0.5, 0.5)
    assert list(r.loss_history) == [0.0, 0.0, 0.0]
    assert (r.stop_reason, r.n_updates) == ("epochs", 3)


# --- gtol: ‖∇J‖∞ ≤ gtol, over the parameters that move (SPEC §5) ------------------------------

@pytest.mark.parametrize("run", FULL_BATCH_RUNS)
def test_gtol_without_intercept_ignores_the_residuals_mean(run):
    """fit_intercept=False: b is held at 0 and is no parameter of the fit, so ∂b (the mean
    residual, −0.1 at the solution below) is no part of ‖∇J‖∞.  X2, y2 through the origin:
    w* = Σxy/Σx² = 0.7 (numpy.linalg.lstsq); the fit from w = 0 reaches it and the gtol rule
    stops it there."""
    w_star = np.linalg.lstsq(X2, Y2, rcond=None)[0][0]
    assert w_star == pytest.approx(0.7, rel=1e-14)
    r = gdcore.fit(X2, Y2, optimizer="sgd", lr=0.1, fit_intercept=False, gtol=1e-10,
                   epochs=500, tol=None, **FULL_BATCH_RUNS[run])
    assert r.stop_reason == "gtol" and r.converged and r.n_epochs < 100
    assert r.coef[0] == pytest.approx(w_star, abs=1e-9) and r.intercept == 0.0
    # started at the solution, it stops in epoch 1 without an update
    r = gdcore.fit(X2, Y2, optimizer="sgd", lr=0.1, fit_intercept=False, gtol=1e-10,
                   epochs=5, tol=None, init=np.array([0.7]), **FULL_BATCH_RUNS[run])
    assert (r.stop_reason, r.n_epochs, r.n_updates) == ("gtol", 1, 0)


@pytest.mark.parametrize("run", FULL_BATCH_RUNS)
@pytest.mark.parametrize("tol", [None, 1e-4])
@pytest.mark.parametrize("gtol", [0.0, 1e-12])
def test_gtol_stops_at_an_exact_solution(gtol, tol, run):
    """w = b = 0.5 fits X2, y2 exactly: ∇J = 0 exactly, and ‖∇J‖∞ = 0 ≤ gtol for gtol = 0 too
    (SPEC's ≤, not <).  The gtol rule stops the fit in epoch 1 before any update, whether or
    not the tol rule is on (the default tol = 1e-4 would only stop it 5 epochs later)."""
    r = gdcore.fit(X2, Y2, optimizer="sgd", lr=0.1, gtol=gtol, tol=tol, epochs=20,
                   init=(np.array([0.5]), 0.5), **FULL_BATCH_RUNS[run])
    assert (r.stop_reason, r.converged, r.n_epochs, r.n_updates) == ("gtol", True, 1, 0)
    assert list(r.loss_history) == [0.0]


def test_stationarity_of_a_negative_coefficient_under_l1():
    """wⱼ < 0: l1·|wⱼ| is differentiable there with derivative −l1, so the coordinate's part
    of ‖∇J‖∞ is |∂wⱼ − l1| (0.5 for ∂w = 0, l1 = 0.5), not the soft threshold of ∂wⱼ that
    only applies at wⱼ = 0 (which would be 0)."""
    w, grad = np.array([-1.0, 0.0]), np.array([0.0, 0.2, 0.1])   # ∇w, then ∂b
    expected = 0.5          # |0 − 0.5| for w₀ < 0; w₁ = 0: |0.2| ≤ l1 gives 0; ∂b 0.1
    assert _reference.stationarity(grad[:2], grad[2], w, 0.5) == expected
    assert _core.gradient_stationarity(grad, np.append(w, 0.0), 0.5, True) == expected


@pytest.mark.parametrize("run", FULL_BATCH_RUNS)
def test_gtol_with_l1_at_a_negative_lasso_solution(run):
    """X2, y = (−1, −2), no intercept, l1 = 0.5: J = (10w² + 14w + 5)/4 + 0.5|w|, whose
    minimum is at (10w + 7)/2 − 0.5 = 0, w = −0.6 (by hand).  From w = −0.7, where the smooth
    gradient is 0 but the l1 term's is −0.5, the fit is not stationary: it moves on to −0.6
    and the gtol rule stops it there."""
    y = -Y2
    r = gdcore.fit(X2, y, optimizer="sgd", lr=0.1, l1=0.5, fit_intercept=False, gtol=1e-10,
                   epochs=500, tol=None, init=np.array([-0.7]), **FULL_BATCH_RUNS[run])
    assert r.n_updates > 0
    assert r.stop_reason == "gtol" and r.n_epochs < 100
    assert r.coef[0] == pytest.approx(-0.6, abs=1e-9)


# --- schedules: SPEC §4's closed forms, and the defaults of the names sized to a run --------

@pytest.mark.parametrize("schedule, factor_of", [
    (Constant(), lambda e, t: 1.0),
    (StepLR(step_size=3, gamma=0.5), lambda e, t: 0.5 ** (e // 3)),
    (ExponentialLR(gamma=0.8), lambda e, t: 0.8 ** e),
    (LinearLR(start_factor=0.25, end_factor=0.75, total_iters=4),
     lambda e, t: 0.25 + 0.5 * min(e, 4) / 4),
    (InverseScaling(power_t=0.5), lambda e, t: 1.0 / math.sqrt(t)),
    (InverseScaling(), lambda e, t: 1.0 / t ** 0.25),
], ids=["constant", "step", "exponential", "linear", "invscaling", "invscaling-default"])
def test_schedule_factor_is_specs_closed_form(schedule, factor_of):
    """Schedule.factor(epoch, step) (0-based epoch, 1-based update count) is public: each
    schedule's is SPEC §4's form, and lr_at is lr × factor."""
    for e, t in [(0, 1), (1, 2), (2, 4), (3, 9), (5, 16), (9, 100)]:
        assert schedule.factor(e, t) == pytest.approx(factor_of(e, t), rel=1e-14), (e, t)
        assert schedule.lr_at(0.1, e, t) == pytest.approx(0.1 * factor_of(e, t), rel=1e-14)


@pytest.mark.parametrize("epochs", [1, 2, 6, 10])
def test_names_sized_to_a_run_have_the_documented_defaults(epochs):
    """make_schedule's documented defaults: "step" halves the lr every max(1, epochs // 3)
    epochs, "exponential" has gamma 0.99, "cosine" anneals to 0 over the run's epochs."""
    assert make_schedule("step", epochs) == StepLR(step_size=max(1, epochs // 3), gamma=0.5)
    assert make_schedule("steplr", epochs) == StepLR(step_size=max(1, epochs // 3), gamma=0.5)
    assert make_schedule("exponential", epochs) == ExponentialLR(gamma=0.99)
    assert make_schedule("ExponentialLR", epochs) == ExponentialLR(gamma=0.99)
    assert make_schedule("cosine", epochs) == CosineAnnealingLR(T_max=epochs, eta_min=0.0)


def lrs_used(schedule, epochs, backend):
    """The lr of each epoch, read back from full-batch SGD on X = 0, y = 0 from b = 1: ∂b = b,
    so b_{e+1} = (1 − lrₑ)·bₑ."""
    bs = []
    gdcore.fit(np.zeros((4, 1)), np.zeros(4), optimizer="sgd", lr=0.1, epochs=epochs, tol=None,
               schedule=schedule, init=(np.zeros(1), 1.0), backend=backend,
               callback=lambda p: bs.append(p.intercept))
    b = np.array([1.0] + bs)
    return 1.0 - b[1:] / b[:-1]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, expected", [
    # epochs = 6: StepLR(2, 0.5)
    ("step", [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]),
    ("exponential", [0.1 * 0.99 ** e for e in range(6)]),
    # CosineAnnealingLR(6): 0.1·(1 + cos(π·e/6))/2
    ("cosine", [0.1 * (1 + math.cos(math.pi * e / 6)) / 2 for e in range(6)]),
])
def test_named_run_sized_schedules_by_hand(name, expected, backend):
    np.testing.assert_allclose(lrs_used(name, 6, backend), expected, rtol=1e-12, atol=1e-15)


# --- l1 and l2 together in J and ∇J (SPEC §1, §2), from a point where both act ---------------

@pytest.mark.parametrize("run", FULL_BATCH_RUNS)
def test_l1_and_l2_together_two_steps_by_hand(run):
    """X2, y2 from w = 0.4, b = 0.1 with l2 = 0.5 and l1 = 0.2, SGD lr = 0.1: each epoch's J is
    Σrᵢ²/4 + (l2/2)w² + l1|w| at θ before its update, ∂w = Σrᵢxᵢ/2 + l2·w (l2 on w, not b; l1
    only through the proximal step), then w ← sign(w)·max(|w| − lr·l1, 0)."""
    lr, l1, l2 = 0.1, 0.2, 0.5
    w, b = 0.4, 0.1
    losses, thetas = [], []
    for _ in range(2):
        r = [w * x + b - yi for x, yi in ((1.0, 1.0), (3.0, 2.0))]
        losses.append((r[0] ** 2 + r[1] ** 2) / 4 + (l2 / 2) * w * w + l1 * abs(w))
        gw = (r[0] * 1.0 + r[1] * 3.0) / 2 + l2 * w
        gb = (r[0] + r[1]) / 2
        w, b = w - lr * gw, b - lr * gb
        w = math.copysign(max(abs(w) - lr * l1, 0.0), w)
        thetas.append((w, b))
    params = []
    result = gdcore.fit(X2, Y2, optimizer="sgd", lr=lr, l1=l1, l2=l2, epochs=2, tol=None,
                        init=(np.array([0.4]), 0.1),
                        callback=lambda p: params.append((p.coef[0], p.intercept)),
                        **FULL_BATCH_RUNS[run])
    np.testing.assert_allclose(result.loss_history, losses, rtol=1e-13)
    np.testing.assert_allclose(params, thetas, rtol=1e-13)
