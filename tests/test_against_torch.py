"""gdcore against the real torch.optim, along whole trajectories.

Every case fits the same float64 problem with gdcore.fit (backend="core", streaming and Gram
mode, and backend="numpy") and with a hand loop in torch: raw tensors w (d,) and b (1,) started
where gdcore starts, loss = 1/(2S)·Σ sᵢ rᵢ² over the batch (0.5·mean((Xw + b − y)²) without
weights), ``loss.backward()``, ``optimizer.step()`` per batch, and the lr scheduler stepped per
epoch (SPEC §4's epoch-based schedules) or per update (InverseScaling, as a LambdaLR).  SPEC §3
maps l2 to torch's weight_decay on w only (the intercept is never penalised), so w and b are two
parameter groups, the second without weight decay.  Batches are identical: full batch, or
shuffle=False (rows in order, the last batch shorter).

Compared after every epoch (gdcore's callback): coef, intercept and the epoch's loss, which
SPEC §2 defines as J (penalties included) at the parameters *before* the epoch's update (full
batch), or the mean over the epoch's batches of each batch's J before its update (mini-batch).

What torch does not have is written out by hand in the same loop, from SPEC's equations:
the l1 proximal step (SPEC §2: wⱼ ← sign(wⱼ)·max(|wⱼ| − lrₜ·l1, 0) after each update),
NormalizedGD (SPEC §3) and InverseScaling (a LambdaLR of 1/t^power_t).
"""

import json
import math
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is needed to compare gdcore with torch.optim")

import gdcore  # noqa: E402
from gdcore.optim import SGD, Adagrad, Adam, NormalizedGD, RMSprop  # noqa: E402
from gdcore.schedules import (Constant, CosineAnnealingLR, ExponentialLR,  # noqa: E402
                              InverseScaling, LinearLR, StepLR)

EPOCHS = 20
N, D = 200, 5
RTOL = 1e-12          # float64, differences of summation order only
GRAM_LOSS_RTOL = 1e-10  # README (precompute): Gram mode's loss is within 1e-10 of streaming's


# --------------------------------------------------------------------------------------------
# the problem
# --------------------------------------------------------------------------------------------

def _problem():
    X, y, _ = gdcore.make_regression(N, D, noise=0.3, intercept=0.7, seed=3, dtype=np.float64)
    sw = np.random.default_rng(4).uniform(0.0, 2.0, N)
    sw[::11] = 0.0                       # zero weights are allowed (SPEC §1)
    init = (np.random.default_rng(5).normal(size=D), -0.4)
    return X, y, sw, init


X, Y, SW, INIT = _problem()


# the largest deviations found, by test (GDCORE_TORCH_REPORT=path writes them as JSON)
DEVIATIONS = {}
_CURRENT = [None]


@pytest.fixture(autouse=True)
def _float64_torch(request):
    """torch computes in float64 here (the tensors are made float64 anyway)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    _CURRENT[0] = request.node.name
    yield
    torch.set_default_dtype(before)


@pytest.fixture(autouse=True, scope="module")
def _report():
    yield
    path = os.environ.get("GDCORE_TORCH_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(DEVIATIONS, f, indent=0)


# --------------------------------------------------------------------------------------------
# torch side
# --------------------------------------------------------------------------------------------

class _NormalizedGD(torch.optim.Optimizer):
    """SPEC §3's NormalizedGD in torch's form: θ ← θ − lr·g / max(‖g‖₂, eps), with g (weight
    decay included) and its norm taken over all parameters together."""

    def __init__(self, params, lr=0.01, eps=1e-12, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        grads = []
        for group in self.param_groups:
            for p in group["params"]:
                grads.append(p.grad + group["weight_decay"] * p)
        norm = torch.sqrt(sum((g * g).sum() for g in grads))
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                p.sub_(group["lr"] * grads[i] / torch.clamp(norm, min=group["eps"]))
                i += 1


def _torch_optimizer(opt, groups):
    """The torch.optim optimizer with gdcore optimizer ``opt``'s hyper-parameters."""
    if isinstance(opt, SGD):
        return torch.optim.SGD(groups, lr=opt.lr, momentum=opt.momentum,
                               dampening=opt.dampening, nesterov=opt.nesterov)
    if isinstance(opt, Adagrad):
        return torch.optim.Adagrad(groups, lr=opt.lr, lr_decay=opt.lr_decay, eps=opt.eps,
                                   initial_accumulator_value=opt.initial_accumulator_value)
    if isinstance(opt, RMSprop):
        return torch.optim.RMSprop(groups, lr=opt.lr, alpha=opt.alpha, eps=opt.eps,
                                   momentum=opt.momentum, centered=opt.centered)
    if isinstance(opt, Adam):
        return torch.optim.Adam(groups, lr=opt.lr, betas=opt.betas, eps=opt.eps,
                                amsgrad=opt.amsgrad)
    if isinstance(opt, NormalizedGD):
        return _NormalizedGD(groups, lr=opt.lr, eps=opt.eps)
    raise AssertionError(opt)


def _torch_scheduler(sched, optimizer):
    """(torch lr_scheduler, steps per update?) for gdcore schedule ``sched``."""
    S = torch.optim.lr_scheduler
    if isinstance(sched, Constant):
        return None, False
    if isinstance(sched, StepLR):
        return S.StepLR(optimizer, step_size=sched.step_size, gamma=sched.gamma), False
    if isinstance(sched, ExponentialLR):
        return S.ExponentialLR(optimizer, gamma=sched.gamma), False
    if isinstance(sched, CosineAnnealingLR):
        return S.CosineAnnealingLR(optimizer, T_max=sched.T_max, eta_min=sched.eta_min), False
    if isinstance(sched, LinearLR):
        return S.LinearLR(optimizer, start_factor=sched.start_factor,
                          end_factor=sched.end_factor, total_iters=sched.total_iters), False
    if isinstance(sched, InverseScaling):
        # scikit-learn's invscaling, t the 1-based update count: LambdaLR counts from 0
        p = sched.power_t
        return S.LambdaLR(optimizer, lambda k: 1.0 / (k + 1) ** p), True
    raise AssertionError(sched)


def torch_trajectory(opt, sched=None, *, epochs=EPOCHS, batch_size=None, sample_weight=None,
                     l2=0.0, l1=0.0, fit_intercept=True, init=None, X=X, y=Y, seed=None):
    """(loss per epoch, params (epochs, d+1), lr per epoch) of the hand loop in torch.
    ``seed``: mini-batches are slices of SPEC §2's permutations (one
    ``numpy.random.default_rng(seed)`` a fit, ``rng.permutation(n)`` each epoch); else rows
    in order."""
    n, d = X.shape
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    st = None if sample_weight is None else torch.from_numpy(sample_weight)
    coef0, b0 = (np.zeros(d), 0.0) if init is None else init
    w = torch.tensor(np.array(coef0, dtype=np.float64), requires_grad=True)
    b = torch.tensor([float(b0)], dtype=torch.float64, requires_grad=fit_intercept)
    groups = [{"params": [w], "weight_decay": l2}]
    if fit_intercept:
        groups.append({"params": [b], "weight_decay": 0.0})
    optimizer = _torch_optimizer(opt, groups)
    scheduler, per_update = _torch_scheduler(sched or Constant(), optimizer)
    size = n if batch_size is None else min(batch_size, n)
    losses, params, lrs = [], [], []
    rng = None if seed is None else np.random.default_rng(seed)
    for _ in range(epochs):
        if rng is not None and size < n:
            perm = torch.from_numpy(rng.permutation(n))
            Xt, yt = torch.from_numpy(X)[perm], torch.from_numpy(y)[perm]
            st = None if sample_weight is None else torch.from_numpy(sample_weight)[perm]
        batch_losses = []
        lrs.append(optimizer.param_groups[0]["lr"])
        for start in range(0, n, size):
            rows = slice(start, start + size)
            if st is not None and float(torch.sum(st[rows])) == 0.0:
                continue    # README (The data loop): no gradient, the batch is skipped
            optimizer.zero_grad()
            r = Xt[rows] @ w + b - yt[rows]
            if st is None:
                data = 0.5 * torch.mean(r * r)
            else:
                s = st[rows]
                data = 0.5 * torch.sum(s * r * r) / torch.sum(s)
            with torch.no_grad():       # J (SPEC §1) at the parameters before the update
                batch_losses.append(float(data + 0.5 * l2 * torch.sum(w * w)
                                          + l1 * torch.sum(torch.abs(w))))
            data.backward()
            optimizer.step()
            if l1 > 0:                  # SPEC §2's proximal step, at this update's lr
                lr_t = optimizer.param_groups[0]["lr"]
                with torch.no_grad():
                    w.copy_(torch.sign(w) * torch.clamp(torch.abs(w) - lr_t * l1, min=0.0))
            if per_update:
                scheduler.step()
        if scheduler is not None and not per_update:
            scheduler.step()
        losses.append(float(np.mean(batch_losses)))
        params.append(np.append(w.detach().numpy(), b.detach().numpy()))
    return np.array(losses), np.array(params), np.array(lrs)


# --------------------------------------------------------------------------------------------
# gdcore side
# --------------------------------------------------------------------------------------------

MODES = {
    "core-stream": dict(backend="core", precompute=False),
    "core-gram": dict(backend="core", precompute=True),     # full batch only
    "numpy": dict(backend="numpy"),
}


def gdcore_trajectory(opt, sched=None, *, mode="core-stream", epochs=EPOCHS, batch_size=None,
                      sample_weight=None, l2=0.0, l1=0.0, fit_intercept=True, init=None,
                      X=X, y=Y, seed=None):
    params = []
    result = gdcore.fit(X, y, optimizer=opt, schedule=sched, epochs=epochs,
                        batch_size=batch_size, shuffle=seed is not None, seed=seed,
                        sample_weight=sample_weight,
                        l2=l2, l1=l1, fit_intercept=fit_intercept, init=init, tol=None,
                        n_threads=1, callback=lambda p: params.append(
                            np.append(np.array(p.coef, dtype=np.float64), p.intercept)),
                        **MODES[mode])
    assert result.n_epochs == len(params) == len(result.loss_history) == epochs
    n = X.shape[0]
    per_epoch = 1 if batch_size is None or batch_size >= n else math.ceil(n / batch_size)
    assert result.n_updates == epochs * per_epoch
    assert np.array_equal(params[-1][:-1], result.coef) and params[-1][-1] == result.intercept
    return np.array(result.loss_history), np.array(params), result


def relative_deviation(got, want):
    """max |got − want| / |want|, entry by entry, where an entry smaller than 1e-3 of the
    largest of its epoch (a coefficient l1 is pulling to 0, an intercept crossing 0) is
    measured against that: its rounding error comes from sums of the larger ones."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if want.ndim == 1:
        want, got = want[:, None], got[:, None]
        floor = 1e-3 * np.abs(want)         # losses: entry by entry
    else:
        floor = 1e-3 * np.max(np.abs(want), axis=1, keepdims=True)
    scale = np.maximum(np.abs(want), floor)
    scale[scale == 0] = 1.0
    return float(np.max(np.abs(got - want) / scale))


def compare(opt, sched=None, *, mode, loss_rtol=RTOL, rtol=RTOL, **options):
    """Assert that gdcore's whole trajectory (losses and parameters per epoch) is torch's."""
    loss_t, params_t, lr_t = torch_trajectory(opt, sched, **options)
    loss_g, params_g, _ = gdcore_trajectory(opt, sched, mode=mode, **options)
    dev_params = relative_deviation(params_g, params_t)
    dev_loss = relative_deviation(loss_g, loss_t)
    DEVIATIONS[_CURRENT[0]] = (dev_params, dev_loss)
    # the trajectory must move: a case that goes nowhere compares nothing
    init = options.get("init") or (np.zeros(X.shape[1]), 0.0)
    assert np.max(np.abs(params_t[-1] - np.append(init[0], init[1]))) > 1e-2
    assert np.max(np.abs(params_t[-1] - params_t[-2])) > 0 or lr_t[-1] == 0
    assert dev_params <= rtol, (
        f"parameters deviate from torch by {dev_params:.3g} (rtol {rtol:g}); first epoch "
        f"off: {_first_off(params_g, params_t, rtol)}")
    assert dev_loss <= loss_rtol, (
        f"loss_history deviates from torch's J by {dev_loss:.3g} (rtol {loss_rtol:g}); first "
        f"epoch off: {_first_off(loss_g[:, None], loss_t[:, None], loss_rtol)}")
    return dev_params, dev_loss


def _first_off(got, want, rtol):
    for e in range(len(want)):
        if relative_deviation(got[e], want[e]) > rtol:
            return f"epoch {e + 1}: gdcore {got[e]} torch {want[e]}"
    return None


def _modes(batch_size):
    return ["core-stream", "core-gram", "numpy"] if batch_size is None else ["core-stream",
                                                                              "numpy"]


def _cases(first, second):
    """Every (name in first, name in second, batch size, mode), for parametrize."""
    for a in first:
        for b in second:
            for bname, batch_size in BATCHES.items():
                for mode in _modes(batch_size):
                    yield pytest.param(a, b, batch_size, mode, id=f"{a}-{b}-{bname}-{mode}")


def _loss_rtol(mode):
    return GRAM_LOSS_RTOL if mode == "core-gram" else RTOL


# --------------------------------------------------------------------------------------------
# optimizers (constant lr), full batch and mini-batches, with and without l2 and weights
# --------------------------------------------------------------------------------------------

OPTIMIZERS = {
    "sgd": SGD(lr=0.1),
    "sgd-default-lr": SGD(),
    "momentum": SGD(lr=0.05, momentum=0.9),
    "momentum-dampening": SGD(lr=0.05, momentum=0.7, dampening=0.3),
    "momentum-ema": SGD(lr=0.1, momentum=0.8, dampening=0.8),
    "nesterov": SGD(lr=0.05, momentum=0.9, nesterov=True),
    "adagrad": Adagrad(lr=0.3),
    "adagrad-options": Adagrad(lr=0.5, lr_decay=0.05, eps=1e-3, initial_accumulator_value=0.2),
    "rmsprop": RMSprop(lr=0.01),
    "rmsprop-options": RMSprop(lr=0.02, alpha=0.9, eps=1e-4, momentum=0.5),
    "rmsprop-centered": RMSprop(lr=0.01, alpha=0.95, centered=True),
    "rmsprop-centered-momentum": RMSprop(lr=0.005, alpha=0.9, eps=1e-6, momentum=0.7,
                                         centered=True),
    "adam": Adam(lr=0.05),
    "adam-default": Adam(),
    "adam-options": Adam(lr=0.1, betas=(0.8, 0.95), eps=1e-3),
    "amsgrad": Adam(lr=0.05, betas=(0.85, 0.99), amsgrad=True),
    "adam-beta1-0": Adam(lr=0.02, betas=(0.0, 0.9)),
    "normalized": NormalizedGD(lr=0.05),
}
BATCHES = {"full": None, "mini32": 32}
SETTINGS = {
    "plain": dict(),
    "l2-init": dict(l2=0.3, init=INIT),
    "weights": dict(sample_weight=SW, init=INIT),
    "no-intercept-l2": dict(fit_intercept=False, l2=0.1),
}


@pytest.mark.parametrize("oname, sname, batch_size, mode", list(_cases(OPTIMIZERS, SETTINGS)))
def test_optimizer_trajectory(oname, sname, batch_size, mode):
    compare(OPTIMIZERS[oname], mode=mode, batch_size=batch_size, loss_rtol=_loss_rtol(mode),
            **SETTINGS[sname])


def test_string_aliases_are_torch_defaults():
    """SPEC §3's names build torch's defaults (but SGD's lr, a documented deviation)."""
    for name, torch_cls, expected in [
            ("adagrad", torch.optim.Adagrad, Adagrad()),
            ("rmsprop", torch.optim.RMSprop, RMSprop()),
            ("adam", torch.optim.Adam, Adam()),
            ("amsgrad", torch.optim.Adam, Adam(amsgrad=True))]:
        result = gdcore.fit(X, Y, optimizer=name, epochs=1, tol=None)
        assert result.optimizer == expected
        defaults = torch_cls([torch.zeros(1, requires_grad=True)]).defaults
        for key, value in expected.get_params().items():
            want = defaults[key] if name != "amsgrad" or key != "amsgrad" else True
            assert value == (tuple(want) if isinstance(want, (list, tuple)) else want), (
                name, key)
    momentum = gdcore.fit(X, Y, optimizer="momentum", epochs=1, tol=None).optimizer
    nesterov = gdcore.fit(X, Y, optimizer="nesterov", epochs=1, tol=None).optimizer
    assert momentum == SGD(momentum=0.9) and nesterov == SGD(momentum=0.9, nesterov=True)
    sgd_defaults = torch.optim.SGD([torch.zeros(1, requires_grad=True)]).defaults
    assert sgd_defaults["lr"] == 1e-3 and SGD().lr == 0.01      # documented deviation


# --------------------------------------------------------------------------------------------
# schedules, against torch.optim.lr_scheduler (epoch-based: stepped once an epoch)
# --------------------------------------------------------------------------------------------

SCHEDULES = {
    "step": StepLR(step_size=3, gamma=0.5),
    "step-default-gamma": StepLR(step_size=7),
    "exponential": ExponentialLR(gamma=0.85),
    "cosine": CosineAnnealingLR(T_max=EPOCHS),
    "cosine-eta-min-past-T_max": CosineAnnealingLR(T_max=7, eta_min=0.01),
    "linear-warmup": LinearLR(),
    "linear": LinearLR(start_factor=0.1, end_factor=0.5, total_iters=8),
    "linear-decay-to-0": LinearLR(start_factor=1.0, end_factor=0.0, total_iters=6),
    "invscaling": InverseScaling(power_t=0.3),
}
# only for the lr sequence (T_max = 1 alternates between lr and eta_min in both)
LR_ONLY = {"cosine-T_max-1": CosineAnnealingLR(T_max=1, eta_min=0.01),
           "step-1": StepLR(step_size=1, gamma=0.5)}
SCHEDULE_OPTIMIZERS = {
    "sgd": SGD(lr=0.15),
    "nesterov": SGD(lr=0.05, momentum=0.9, nesterov=True),
    "adagrad": Adagrad(lr=0.5, lr_decay=0.02),
    "rmsprop-centered-momentum": RMSprop(lr=0.01, momentum=0.5, centered=True),
    "adam": Adam(lr=0.1),
}


@pytest.mark.parametrize("sname, oname, batch_size, mode",
                         list(_cases(SCHEDULES, SCHEDULE_OPTIMIZERS)))
def test_schedule_trajectory(sname, oname, batch_size, mode):
    compare(SCHEDULE_OPTIMIZERS[oname], SCHEDULES[sname], mode=mode, batch_size=batch_size,
            loss_rtol=_loss_rtol(mode), l2=0.05, init=INIT)


@pytest.mark.parametrize("sname", [s for s in SCHEDULES if s != "invscaling"] + list(LR_ONLY))
def test_schedule_lr_sequence(sname):
    """The lr of each epoch: gdcore's closed form against torch's scheduler, 60 epochs."""
    sched = {**SCHEDULES, **LR_ONLY}[sname]
    p = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([p], lr=0.3)
    scheduler, _ = _torch_scheduler(sched, optimizer)
    for epoch in range(60):
        want = optimizer.param_groups[0]["lr"]
        got = sched.lr_at(0.3, epoch, 1)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15), (epoch, got, want)
        optimizer.step()
        scheduler.step()


# --------------------------------------------------------------------------------------------
# l1: no torch equivalent; the proximal step is written by hand in the torch loop
# --------------------------------------------------------------------------------------------

L1_OPTIMIZERS = {
    "sgd": SGD(lr=0.1),
    "momentum": SGD(lr=0.05, momentum=0.9),
    "momentum-dampening": SGD(lr=0.05, momentum=0.6, dampening=0.4),
    "nesterov": SGD(lr=0.05, momentum=0.9, nesterov=True),
}
L1_SETTINGS = {
    "l1": dict(l1=0.05),
    "l1-l2-weights-init": dict(l1=0.02, l2=0.1, sample_weight=SW, init=INIT),
    "l1-strong-invscaling": dict(l1=0.3, sched=InverseScaling(0.5)),
    "l1-step": dict(l1=0.1, sched=StepLR(3, 0.5), init=INIT),
}


@pytest.mark.parametrize("oname, sname, batch_size, mode",
                         list(_cases(L1_OPTIMIZERS, L1_SETTINGS)))
def test_l1_proximal_trajectory(oname, sname, batch_size, mode):
    options = dict(L1_SETTINGS[sname])
    sched = options.pop("sched", None)
    compare(L1_OPTIMIZERS[oname], sched, mode=mode, batch_size=batch_size,
            loss_rtol=_loss_rtol(mode), **options)


def test_l1_zeroes_coefficients():
    """The strong-l1 case above does reach exact zeros (so the kink is compared)."""
    _, params, _ = gdcore_trajectory(SGD(lr=0.1), l1=0.3, sched=InverseScaling(0.5))
    assert np.any(params[-1][:-1] == 0.0)


@pytest.mark.parametrize("opt", [Adagrad(), RMSprop(), Adam(), NormalizedGD()],
                         ids=lambda o: type(o).__name__)
def test_l1_refused_outside_sgd_family(opt):
    with pytest.raises(ValueError, match="l1"):
        gdcore.fit(X, Y, optimizer=opt, l1=0.1, epochs=1)


# --------------------------------------------------------------------------------------------
# classic SGD (batch_size=1) and a batch size that does not divide n, a few cases
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["core-stream", "numpy"])
@pytest.mark.parametrize("oname, batch_size", [
    ("sgd", 1), ("nesterov", 1), ("adam", 1), ("rmsprop-centered-momentum", 1),
    ("adagrad-options", 7), ("amsgrad", 7), ("normalized", 7)])
def test_small_batches(oname, batch_size, mode):
    opt = OPTIMIZERS[oname]
    if batch_size == 1 and isinstance(opt, SGD):
        opt = opt.with_lr(opt.lr / 5)
    compare(opt, mode=mode, batch_size=batch_size, epochs=4, l2=0.05, init=INIT,
            sample_weight=SW + 0.1)


# --------------------------------------------------------------------------------------------
# continuation: 8 epochs then 12 more (init=result) is the torch run of 20
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["core-stream", "numpy"])
@pytest.mark.parametrize("oname", ["nesterov", "adagrad-options", "rmsprop-centered-momentum",
                                   "amsgrad"])
@pytest.mark.parametrize("batch_size", [None, 32])
def test_continuation_is_torch_run(oname, batch_size, mode):
    opt, sched = OPTIMIZERS[oname], StepLR(4, 0.7)
    loss_t, params_t, _ = torch_trajectory(opt, sched, batch_size=batch_size, l2=0.05)
    kw = dict(optimizer=opt, schedule=sched, batch_size=batch_size, shuffle=False, l2=0.05,
              tol=None, **MODES[mode])
    first = gdcore.fit(X, Y, epochs=8, **kw)
    params = []
    more = gdcore.fit(X, Y, epochs=12, init=first, **kw,
                      callback=lambda p: params.append(np.append(p.coef, p.intercept)))
    assert relative_deviation(more.loss_history, loss_t) <= RTOL
    assert relative_deviation(params, params_t[8:]) <= RTOL


# --------------------------------------------------------------------------------------------
# edge cases of the data loop
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["core-stream", "numpy"])
@pytest.mark.parametrize("oname", ["sgd", "nesterov", "adam", "rmsprop-centered-momentum"])
@pytest.mark.parametrize("sched", [None, InverseScaling(0.5)], ids=["constant", "invscaling"])
def test_zero_weight_batch_is_skipped(oname, sched, mode):
    """README (The data loop): "A batch whose weights sum to 0 has no gradient and is skipped"
    -- no update (t, n_updates and InverseScaling's t do not count it) and no loss (the epoch's
    mean is over the other batches); torch would step on 0/0 = NaN, so the torch loop skips it
    too."""
    sw = SW.copy()
    sw[32:64] = 0.0
    opt = OPTIMIZERS[oname]
    loss_t, params_t, _ = torch_trajectory(opt, sched, batch_size=32, sample_weight=sw,
                                           epochs=6)
    params = []
    result = gdcore.fit(X, Y, optimizer=opt, schedule=sched, epochs=6, batch_size=32,
                        shuffle=False, sample_weight=sw, tol=None, **MODES[mode],
                        callback=lambda p: params.append(np.append(p.coef, p.intercept)))
    assert result.n_updates == 6 * 6            # 7 batches an epoch, one skipped
    assert relative_deviation(result.loss_history, loss_t) <= RTOL
    assert relative_deviation(params, params_t) <= RTOL


@pytest.mark.parametrize("mode", ["core-stream", "core-gram", "numpy"])
@pytest.mark.parametrize("exponent", [70, -70])
def test_huge_and_tiny_weights(exponent, mode):
    """Weights beyond 2^±64 are rescaled by a power of two (README, sample_weight): J and the
    trajectory are those of the weights as given."""
    opt = Adam(lr=0.05)
    sw = SW * 2.0 ** exponent
    compare(opt, mode=mode, sample_weight=sw, init=INIT,
            loss_rtol=_loss_rtol(mode))


@pytest.mark.parametrize("mode", ["core-stream", "numpy"])
@pytest.mark.parametrize("batch_size", [N, 10 * N])
def test_batch_size_at_least_n_is_full_batch(batch_size, mode):
    compare(SGD(lr=0.05, momentum=0.9), mode=mode, batch_size=batch_size, l2=0.1)


@pytest.mark.parametrize("mode", ["core-stream", "numpy"])
@pytest.mark.parametrize("oname, batch_size, options", [
    ("sgd", 16, dict()),
    ("nesterov", 32, dict(l2=0.1, sample_weight=SW, init=INIT)),
    ("adam", 25, dict(sched=InverseScaling(0.3))),
    ("rmsprop-centered-momentum", 7, dict(sched=StepLR(2, 0.8), sample_weight=SW + 0.01)),
    ("momentum", 32, dict(l1=0.05, sched=CosineAnnealingLR(T_max=8))),
], ids=["sgd", "nesterov-l2-weights", "adam-invscaling", "rmsprop-step-weights",
        "momentum-l1-cosine"])
def test_shuffled_batches(oname, batch_size, options, mode):
    """shuffle=True: the torch loop slices SPEC §2's permutations (default_rng(seed) once a
    fit, rng.permutation(n) each epoch)."""
    options = dict(options)
    sched = options.pop("sched", None)
    compare(OPTIMIZERS[oname], sched, mode=mode, batch_size=batch_size, seed=1234,
            epochs=8, **options)


def test_torch_and_gdcore_refuse_nesterov_without_momentum_or_with_dampening():
    for kwargs in [dict(nesterov=True), dict(momentum=0.9, dampening=0.1, nesterov=True)]:
        with pytest.raises(ValueError):
            SGD(lr=0.1, **kwargs)
        with pytest.raises(ValueError):
            torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, **kwargs)
