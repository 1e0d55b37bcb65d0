"""Values derived by hand, independent of both backends."""

import math

import numpy as np
import pytest

import gdcore
from gdcore.optim import SGD, Adagrad, Adam, NormalizedGD, RMSprop
from gdcore.schedules import (CosineAnnealingLR, ExponentialLR, InverseScaling, LinearLR,
                              StepLR)

BACKENDS = ["core", "numpy"]

# Two rows, one feature: X = [[1], [3]], y = [1, 2].  At w = b = 0: r = (−1, −2),
# J = (1 + 4)/(2·2) = 1.25, ∂w = (−1·1 − 2·3)/2 = −3.5, ∂b = (−1 − 2)/2 = −1.5.
X2 = np.array([[1.0], [3.0]])
Y2 = np.array([1.0, 2.0])
GRAD_W, GRAD_B, LOSS0 = -3.5, -1.5, 1.25


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_sgd_step(backend):
    r = gdcore.fit(X2, Y2, optimizer="sgd", lr=0.1, epochs=1, tol=None, backend=backend)
    assert r.loss_history[0] == pytest.approx(LOSS0, rel=1e-15)
    assert r.coef[0] == pytest.approx(0.35, rel=1e-14)
    assert r.intercept == pytest.approx(0.15, rel=1e-14)
    assert r.n_updates == 1 and r.n_epochs == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_sgd_steps_loss(backend):
    # after one step w = 0.35, b = 0.15: r = (−0.5, −0.8), J = (0.25 + 0.64)/4 = 0.2225
    r = gdcore.fit(X2, Y2, optimizer="sgd", lr=0.1, epochs=2, tol=None, backend=backend)
    assert r.loss_history[1] == pytest.approx(0.2225, rel=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_weights_and_l2(backend):
    # weights (1, 3): S = 4, ∂w = (−1 − 3·2·3)/4 = −4.75, ∂b = (−1 − 6)/4 = −1.75;
    # J = (1 + 3·4)/(2·4) = 1.625 (l2 adds nothing at w = 0)
    r = gdcore.fit(X2, Y2, sample_weight=[1.0, 3.0], optimizer="sgd", lr=0.1, l2=0.5,
                   epochs=1, tol=None, backend=backend)
    assert r.loss_history[0] == pytest.approx(1.625, rel=1e-15)
    assert r.coef[0] == pytest.approx(0.475, rel=1e-14)
    assert r.intercept == pytest.approx(0.175, rel=1e-14)
    # second epoch: l2 contributes (0.5/2)·w² to J and 0.5·w to ∂w
    r2 = gdcore.fit(X2, Y2, sample_weight=[1.0, 3.0], optimizer="sgd", lr=0.1, l2=0.5,
                    epochs=2, tol=None, backend=backend)
    w, b = 0.475, 0.175
    res = np.array([w + b - 1, 3 * w + b - 2])
    J = (res[0] ** 2 + 3 * res[1] ** 2) / 8 + 0.25 * w * w
    assert r2.loss_history[1] == pytest.approx(J, rel=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_adam_first_step_moves_by_lr(backend):
    # m̂ = g, v̂ = g², so the first step is lr·g/(|g| + eps) ≈ lr·sign(g)
    r = gdcore.fit(X2, Y2, optimizer=Adam(lr=0.01), epochs=1, tol=None, backend=backend)
    assert r.coef[0] == pytest.approx(0.01 * 3.5 / (3.5 + 1e-8), rel=1e-12)
    assert r.intercept == pytest.approx(0.01 * 1.5 / (1.5 + 1e-8), rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_normalized_step_has_length_lr(backend):
    r = gdcore.fit(X2, Y2, optimizer=NormalizedGD(lr=0.2), epochs=1, tol=None,
                   backend=backend)
    assert math.hypot(r.coef[0], r.intercept) == pytest.approx(0.2, rel=1e-14)
    assert r.coef[0] / r.intercept == pytest.approx(3.5 / 1.5, rel=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_adagrad_and_rmsprop_first_steps(backend):
    r = gdcore.fit(X2, Y2, optimizer=Adagrad(lr=0.1), epochs=1, tol=None, backend=backend)
    # G = g², step = lr·g/(|g| + 1e-10), for w (g = −3.5) and b (g = −1.5) alike
    assert r.coef[0] == pytest.approx(0.1 * 3.5 / (3.5 + 1e-10), rel=1e-13)
    assert r.intercept == pytest.approx(0.1 * 1.5 / (1.5 + 1e-10), rel=1e-13)
    r = gdcore.fit(X2, Y2, optimizer=RMSprop(lr=0.1, alpha=0.9), epochs=1, tol=None,
                   backend=backend)
    # v = 0.1·g², step = lr·g/(√0.1·|g| + 1e-8)
    assert r.coef[0] == pytest.approx(0.1 * 3.5 / (math.sqrt(0.1) * 3.5 + 1e-8), rel=1e-13)
    assert r.intercept == pytest.approx(0.1 * 1.5 / (math.sqrt(0.1) * 1.5 + 1e-8), rel=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_momentum_buffer_starts_at_gradient(backend):
    # step 1: buf = g, θ = −lr·g.  With nesterov the step is lr·(g + μ·g) = lr·1.9·g.
    r = gdcore.fit(X2, Y2, optimizer=SGD(lr=0.1, momentum=0.9, nesterov=True), epochs=1,
                   tol=None, backend=backend)
    assert r.coef[0] == pytest.approx(0.1 * 1.9 * 3.5, rel=1e-14)
    r = gdcore.fit(X2, Y2, optimizer=SGD(lr=0.1, momentum=0.9, dampening=0.5), epochs=1,
                   tol=None, backend=backend)
    assert r.coef[0] == pytest.approx(0.35, rel=1e-14)  # dampening does not touch step 1


def lr_of_epochs(schedule, epochs, backend):
    """The lr used in each epoch, read back from SGD steps on a problem with a constant
    gradient: y = 0, X = 0 except the intercept, so ∂b = b and lrₑ = 1 − b_{e+1}/b_e."""
    X = np.zeros((4, 1))
    y = np.zeros(4)
    bs = []
    gdcore.fit(X, y, optimizer="sgd", lr=0.1, epochs=epochs, tol=None, schedule=schedule,
               init=(np.zeros(1), 1.0), backend=backend,
               callback=lambda p: bs.append(p.intercept))
    b = np.array([1.0] + bs)
    return 1.0 - b[1:] / b[:-1]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("schedule, expected", [
    (StepLR(step_size=2, gamma=0.5), [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]),
    (ExponentialLR(gamma=0.5), [0.1, 0.05, 0.025, 0.0125, 0.00625, 0.003125]),
    (CosineAnnealingLR(T_max=4), [0.1, 0.1 * (1 + math.cos(math.pi / 4)) / 2, 0.05,
                                  0.1 * (1 + math.cos(3 * math.pi / 4)) / 2, 0.0,
                                  0.1 * (1 + math.cos(5 * math.pi / 4)) / 2]),
    # eta_min ≠ 0: lrₑ = 0.02 + (0.1 − 0.02)·(1 + cos(π·e/4))/2, back up after e = T_max
    (CosineAnnealingLR(T_max=4, eta_min=0.02),
     [0.1, 0.02 + 0.04 * (1 + math.cos(math.pi / 4)), 0.06,
      0.02 + 0.04 * (1 + math.cos(3 * math.pi / 4)), 0.02,
      0.02 + 0.04 * (1 + math.cos(5 * math.pi / 4))]),
    (LinearLR(start_factor=0.5, end_factor=1.0, total_iters=2), [0.05, 0.075, 0.1, 0.1, 0.1, 0.1]),
    (InverseScaling(power_t=0.5), [0.1 / math.sqrt(t) for t in range(1, 7)]),
])
def test_schedules(schedule, expected, backend):
    np.testing.assert_allclose(lr_of_epochs(schedule, 6, backend), expected, rtol=1e-12,
                               atol=1e-15)



def test_schedule_factor_past_float_range_is_the_cores_on_both_backends():
    """InverseScaling(400)'s t^400 overflows from t = 7 (the lr is 0 after: the core's lr / inf)
    and ExponentialLR(2)'s 2^e from e = 1024 (lr = inf: the fit diverges).  The NumPy backend's
    float ** raised OverflowError, not the core's result or its DivergenceError."""
    results = [gdcore.fit(X2, Y2, lr=0.1, schedule=InverseScaling(power_t=400.0), epochs=12,
                          tol=None, backend=backend) for backend in BACKENDS]
    assert results[0].n_updates == results[1].n_updates == 12
    for core, reference in zip(results[0].state.theta, results[1].state.theta):
        assert core == reference
    X0 = np.zeros((2, 1))       # g = 0 at w = 0: nothing moves until the lr is inf
    for backend in BACKENDS:
        with pytest.raises(gdcore.DivergenceError, match="epoch 1025"):
            gdcore.fit(X0, Y2, lr=0.01, schedule=ExponentialLR(gamma=2.0), epochs=1100,
                       tol=None, fit_intercept=False, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mini_batch_loss_is_mean_of_batch_losses(backend):
    # shuffle=False, batch 1: epoch 1 = mean of J before each update, by hand:
    # batch 1 (row 0) at θ=0: J = 1/2; update lr=0.1: w = 0.1, b = 0.1
    # batch 2 (row 1) at θ: r = 0.4 − 2 = −1.6, J = 1.28
    r = gdcore.fit(X2, Y2, optimizer="sgd", lr=0.1, epochs=1, batch_size=1, shuffle=False,
                   tol=None, backend=backend)
    assert r.loss_history[0] == pytest.approx((0.5 + 1.28) / 2, rel=1e-14)
    assert r.n_updates == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_weight_batch_is_skipped(backend):
    r = gdcore.fit(X2, Y2, sample_weight=[0.0, 1.0], optimizer="sgd", lr=0.1, epochs=1,
                   batch_size=1, shuffle=False, tol=None, backend=backend)
    assert r.n_updates == 1
    assert r.loss_history[0] == pytest.approx(2.0, rel=1e-15)  # (0 − 2)²/2


@pytest.mark.parametrize("backend", BACKENDS)
def test_first_loss_is_objective_at_init(backend):
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((30, 4)), rng.standard_normal(30)
    s = rng.uniform(0.5, 1.5, 30)
    w, b = rng.standard_normal(4), 0.3
    r = gdcore.fit(X, y, sample_weight=s, init=(w, b), l2=0.2, epochs=1, tol=None,
                   backend=backend)
    resid = X @ w + b - y
    J = (s * resid ** 2).sum() / (2 * s.sum()) + 0.1 * (w @ w)
    assert r.loss_history[0] == pytest.approx(J, rel=1e-13)


# ---------------------------------------------------------------------------------------
# Three full-batch steps of each update rule, written out from SPEC §1 and §3 in plain
# Python floats, one coordinate at a time, independent of both backends' code.
# Three rows, two features:
X3 = [[1.0, 2.0], [0.0, 1.0], [2.0, -1.0]]
Y3 = [1.0, 2.0, 0.5]


def loss_and_gradient(theta):
    """SPEC §1 with sᵢ = 1 (S = 3), no penalty: J = 1/(2S)·Σrᵢ², ∇w = 1/S·Σrᵢxᵢ, ∂b = 1/S·Σrᵢ."""
    w1, w2, b = theta
    r = [x[0] * w1 + x[1] * w2 + b - yi for x, yi in zip(X3, Y3)]
    J = sum(ri * ri for ri in r) / 6.0
    g = [sum(ri * x[0] for ri, x in zip(r, X3)) / 3.0,
         sum(ri * x[1] for ri, x in zip(r, X3)) / 3.0,
         sum(r) / 3.0]
    return J, g


def by_hand(step, n_steps=3):
    """(losses before each step, θ after each step) from θ = 0, with ``step(theta, g, t)``
    returning the next θ (it keeps its own state)."""
    theta, losses, thetas = [0.0, 0.0, 0.0], [], []
    for t in range(1, n_steps + 1):
        J, g = loss_and_gradient(theta)
        losses.append(J)
        theta = step(theta, g, t)
        thetas.append(list(theta))
    return losses, thetas


def adam_by_hand(lr, beta1, beta2, eps, amsgrad, seen):
    m, v, vmax = [0.0] * 3, [0.0] * 3, [0.0] * 3

    def step(theta, g, t):
        new = []
        for j in range(3):
            m[j] = beta1 * m[j] + (1 - beta1) * g[j]
            v[j] = beta2 * v[j] + (1 - beta2) * g[j] ** 2
            second = v[j]
            if amsgrad:
                vmax[j] = max(vmax[j], v[j])
                second = vmax[j]
                seen.append(vmax[j] != v[j])     # the max held an earlier, larger v
            m_hat = m[j] / (1 - beta1 ** t)
            v_hat = second / (1 - beta2 ** t)
            new.append(theta[j] - lr * m_hat / (math.sqrt(v_hat) + eps))
        return new
    return step


def rmsprop_by_hand(lr, alpha, eps, momentum, centered):
    v, buf, g_avg = [0.0] * 3, [0.0] * 3, [0.0] * 3

    def step(theta, g, t):
        new = []
        for j in range(3):
            v[j] = alpha * v[j] + (1 - alpha) * g[j] ** 2
            if centered:
                g_avg[j] = alpha * g_avg[j] + (1 - alpha) * g[j]
                a = math.sqrt(v[j] - g_avg[j] ** 2) + eps
            else:
                a = math.sqrt(v[j]) + eps
            if momentum > 0:
                buf[j] = momentum * buf[j] + g[j] / a
                new.append(theta[j] - lr * buf[j])
            else:
                new.append(theta[j] - lr * g[j] / a)
        return new
    return step


def adagrad_by_hand(lr, lr_decay, eps, initial):
    G = [initial] * 3

    def step(theta, g, t):
        clr = lr / (1 + (t - 1) * lr_decay)
        new = []
        for j in range(3):
            G[j] = G[j] + g[j] ** 2
            new.append(theta[j] - clr * g[j] / (math.sqrt(G[j]) + eps))
        return new
    return step


def sgd_by_hand(lr, momentum, dampening, nesterov):
    buf = [0.0] * 3

    def step(theta, g, t):
        new = []
        for j in range(3):
            if t == 1:
                buf[j] = g[j]
            else:
                buf[j] = momentum * buf[j] + (1 - dampening) * g[j]
            d = g[j] + momentum * buf[j] if nesterov else buf[j]
            new.append(theta[j] - lr * d)
        return new
    return step


def normalized_by_hand(lr, eps):
    def step(theta, g, t):
        norm = math.sqrt(sum(gj * gj for gj in g))
        return [theta[j] - lr * g[j] / max(norm, eps) for j in range(3)]
    return step


THREE_STEPS = {
    # betas (0.8, 0.9): the bias corrections 1 − β₁ᵗ, 1 − β₂ᵗ differ at t = 2 and 3
    "adam": (Adam(lr=0.1, betas=(0.8, 0.9), eps=1e-8),
             lambda: adam_by_hand(0.1, 0.8, 0.9, 1e-8, False, [])),
    # β₂ = 0.5 and a large lr: the gradient shrinks, v falls below its earlier maximum
    "amsgrad": (Adam(lr=0.4, betas=(0.5, 0.5), eps=1e-8, amsgrad=True),
                lambda: adam_by_hand(0.4, 0.5, 0.5, 1e-8, True, [])),
    "rmsprop-centered-momentum": (
        RMSprop(lr=0.05, alpha=0.9, eps=1e-8, momentum=0.5, centered=True),
        lambda: rmsprop_by_hand(0.05, 0.9, 1e-8, 0.5, True)),
    "rmsprop": (RMSprop(lr=0.05, alpha=0.8), lambda: rmsprop_by_hand(0.05, 0.8, 1e-8, 0.0, False)),
    # centred without momentum, and momentum without centring: each branch on its own
    "rmsprop-centered": (RMSprop(lr=0.05, alpha=0.9, eps=1e-8, centered=True),
                         lambda: rmsprop_by_hand(0.05, 0.9, 1e-8, 0.0, True)),
    "rmsprop-momentum": (RMSprop(lr=0.05, alpha=0.8, eps=1e-8, momentum=0.5),
                         lambda: rmsprop_by_hand(0.05, 0.8, 1e-8, 0.5, False)),
    "adagrad-decay-initial": (
        Adagrad(lr=0.3, lr_decay=0.5, eps=1e-10, initial_accumulator_value=0.2),
        lambda: adagrad_by_hand(0.3, 0.5, 1e-10, 0.2)),
    "sgd-momentum-dampening": (SGD(lr=0.1, momentum=0.9, dampening=0.3),
                               lambda: sgd_by_hand(0.1, 0.9, 0.3, False)),
    "sgd-nesterov": (SGD(lr=0.1, momentum=0.9, nesterov=True),
                     lambda: sgd_by_hand(0.1, 0.9, 0.0, True)),
    "normalized": (NormalizedGD(lr=0.3), lambda: normalized_by_hand(0.3, 1e-12)),
}
# the core in both full-batch modes, and the reference
RUNS = {"core-streaming": dict(backend="core", precompute=False),
        "core-gram": dict(backend="core", precompute=True),
        "numpy": dict(backend="numpy")}


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("rule", THREE_STEPS)
def test_three_steps_by_hand(rule, run):
    optimizer, make_step = THREE_STEPS[rule]
    losses, thetas = by_hand(make_step())
    params = []
    result = gdcore.fit(np.array(X3), np.array(Y3), optimizer=optimizer, epochs=3, tol=None,
                        callback=lambda p: params.append(np.append(p.coef, p.intercept)),
                        **RUNS[run])
    assert result.n_updates == result.n_epochs == 3
    # step by step: θ after updates 1, 2 and 3, and J before each
    for t in range(3):
        np.testing.assert_allclose(params[t], thetas[t], rtol=1e-12, atol=1e-14,
                                   err_msg=f"{rule}, after update {t + 1}")
    np.testing.assert_allclose(result.loss_history, losses, rtol=1e-12)
    # the steps moved θ, each by a different amount (the state mattered)
    moves = np.diff(np.vstack([np.zeros(3), thetas]), axis=0)
    assert not np.allclose(moves[1], moves[2]) and not np.allclose(moves[0], moves[1])


def test_amsgrad_case_reaches_the_max():
    """The AMSGrad case above would be plain Adam if v never fell below its maximum."""
    seen = []
    by_hand(adam_by_hand(0.4, 0.5, 0.5, 1e-8, True, seen))
    assert any(seen)


@pytest.mark.parametrize("run", RUNS)
def test_l1_soft_threshold_steps_with_a_scheduled_lr(run):
    """SPEC §2: after each update wⱼ ← sign(wⱼ)·max(|wⱼ| − lr_t·l1, 0), with lr_t the
    scheduled lr (ExponentialLR(0.5): 0.4, 0.2, 0.1), the intercept untouched; the epoch's
    loss J includes l1‖w‖₁.  Three steps on the three-row problem, by hand."""
    lr, l1, gamma = 0.4, 0.8, 0.5
    theta, losses, thetas, clipped = [0.0, 0.0, 0.0], [], [], []
    for t in range(3):
        J, g = loss_and_gradient(theta)
        losses.append(J + l1 * (abs(theta[0]) + abs(theta[1])))
        lr_t = lr * gamma ** t
        moved = [theta[j] - lr_t * g[j] for j in range(3)]
        for j in range(2):                   # the proximal step, on w only
            shrunk = max(abs(moved[j]) - lr_t * l1, 0.0)
            clipped.append(shrunk == 0.0 and moved[j] != 0.0)
            moved[j] = math.copysign(shrunk, moved[j])
        theta = moved
        thetas.append(list(theta))
    assert any(clipped)                      # a coefficient was set to 0 by the threshold
    params = []
    result = gdcore.fit(np.array(X3), np.array(Y3), optimizer="sgd", lr=lr, l1=l1,
                        schedule=ExponentialLR(gamma=gamma), epochs=3, tol=None,
                        callback=lambda p: params.append(np.append(p.coef, p.intercept)),
                        **RUNS[run])
    for t in range(3):
        np.testing.assert_allclose(params[t], thetas[t], rtol=1e-12, atol=1e-15,
                                   err_msg=f"after update {t + 1}")
        np.testing.assert_array_equal(params[t][:2] == 0.0, np.array(thetas[t][:2]) == 0.0)
    np.testing.assert_allclose(result.loss_history, losses, rtol=1e-12)
