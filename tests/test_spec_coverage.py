"""SPEC clauses with no test of their own elsewhere: default weights, full batch at
batch_size >= n, the update count, the aliases' defaults, epoch schedules within an epoch."""

import math

import numpy as np
import pytest

import gdcore
from gdcore.optim import SGD, Adagrad, Adam, NormalizedGD, RMSprop, make_optimizer
from gdcore.schedules import (Constant, CosineAnnealingLR, ExponentialLR, InverseScaling,
                              LinearLR, StepLR, make_schedule)

from conftest import problem

MODES = {"full-streaming": dict(batch_size=None, precompute=False),
         "full-gram": dict(batch_size=None, precompute=True),
         "mini-16": dict(batch_size=16),
         "single": dict(batch_size=1)}


def epoch_params(X, y, **options):
    params = []
    result = gdcore.fit(X, y, tol=None, seed=3,
                        callback=lambda p: params.append(np.append(p.coef, p.intercept)),
                        **options)
    return result, np.array(params)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [3, 40, 100])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_no_weights_are_all_ones(optimizer, mode, d, dtype):
    """SPEC §1: sample_weight defaults to all ones.  The core gives the same bits with
    sample_weight=None and with np.ones(n) when it streams X; Gram mode forms the weighted
    and unweighted moments by different formulas (a weighted mean vs a mean), so there the
    two agree to rounding.  The reference with ones is the unweighted one too."""
    X, y, _ = problem(n=203, d=d, dtype=dtype)
    options = dict(optimizer=optimizer, lr=0.002, epochs=3, n_threads=2, **MODES[mode])
    plain, plain_params = epoch_params(X, y, **options)
    ones, ones_params = epoch_params(X, y, sample_weight=np.ones(203, dtype), **options)
    assert plain.n_updates == ones.n_updates
    if mode == "full-gram":
        rtol = 1e-12 if dtype == np.float64 else 1e-6
        np.testing.assert_allclose(ones_params, plain_params, rtol=rtol,
                                   atol=rtol * np.abs(plain_params).max())
        np.testing.assert_allclose(ones.loss_history, plain.loss_history, rtol=rtol)
    else:
        np.testing.assert_array_equal(ones_params, plain_params)
        np.testing.assert_array_equal(ones.loss_history, plain.loss_history)
    ref, ref_params = epoch_params(X, y, backend="numpy", **dict(options, precompute="auto"))
    ref_ones, ref_ones_params = epoch_params(X, y, backend="numpy",
                                             sample_weight=np.ones(203, dtype),
                                             **dict(options, precompute="auto"))
    np.testing.assert_array_equal(ref_ones_params, ref_params)


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_batch_size_of_n_or_more_is_full_batch(optimizer, shuffle, backend):
    """SPEC §2: batch_size >= n is full-batch: one update an epoch over the rows in order
    (no shuffle, whatever shuffle says), the same trajectory as batch_size=None, and gtol is
    allowed (a full-batch option)."""
    X, y, _ = problem(n=50, d=4)
    options = dict(optimizer=optimizer, lr=0.05, epochs=4, shuffle=shuffle, backend=backend,
                   precompute=False)
    full, full_params = epoch_params(X, y, batch_size=None, **options)
    assert full.n_updates == 4
    for batch_size in (50, 51, 1000):
        same, same_params = epoch_params(X, y, batch_size=batch_size, **options)
        assert same.n_updates == 4
        np.testing.assert_array_equal(same_params, full_params)
        np.testing.assert_array_equal(same.loss_history, full.loss_history)
    gdcore.fit(X, y, batch_size=50, gtol=1e-3, epochs=2, backend=backend)


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("n, batch_size, epochs, expected", [
    # ceil(n / b) updates an epoch, worked out by hand
    (50, None, 3, 3),           # full batch: 1 an epoch
    (50, 16, 3, 12),            # 16 + 16 + 16 + 2: 4 an epoch
    (50, 7, 3, 24),             # 7·7 = 49, one row left: 8 an epoch
    (50, 25, 2, 4),             # exactly 2 an epoch
    (50, 49, 2, 4),             # 49 + 1
    (50, 1, 2, 100),            # classic SGD: one a row
])
def test_updates_an_epoch(n, batch_size, epochs, expected, backend):
    X, y, _ = problem(n=n, d=3)
    result = gdcore.fit(X, y, optimizer="sgd", lr=0.01, batch_size=batch_size, epochs=epochs,
                        tol=None, seed=0, backend=backend)
    assert result.n_epochs == epochs and result.n_updates == expected
    assert expected == epochs * (1 if batch_size is None else math.ceil(n / batch_size))


# SPEC §3's table, typed out: each string alias and the class and defaults it stands for
# (torch.optim's names and defaults; SGD's lr is 0.01).
ALIASES = {
    "gd": (SGD, dict(lr=0.01, momentum=0.0, dampening=0.0, nesterov=False)),
    "sgd": (SGD, dict(lr=0.01, momentum=0.0, dampening=0.0, nesterov=False)),
    "momentum": (SGD, dict(lr=0.01, momentum=0.9, dampening=0.0, nesterov=False)),
    "nesterov": (SGD, dict(lr=0.01, momentum=0.9, dampening=0.0, nesterov=True)),
    "adagrad": (Adagrad, dict(lr=0.01, lr_decay=0.0, eps=1e-10, initial_accumulator_value=0.0)),
    "rmsprop": (RMSprop, dict(lr=0.01, alpha=0.99, eps=1e-8, momentum=0.0, centered=False)),
    "adam": (Adam, dict(lr=0.001, betas=(0.9, 0.999), eps=1e-8, amsgrad=False)),
    "amsgrad": (Adam, dict(lr=0.001, betas=(0.9, 0.999), eps=1e-8, amsgrad=True)),
    "normalized": (NormalizedGD, dict(lr=0.01, eps=1e-12)),
}


@pytest.mark.parametrize("name", ALIASES)
def test_alias_defaults_are_specs(name):
    cls, defaults = ALIASES[name]
    made = make_optimizer(name)
    assert type(made) is cls and made.get_params() == defaults
    # the class's own defaults are the same (the table's "class and defaults")
    if name not in ("momentum", "nesterov", "amsgrad"):
        assert cls().get_params() == defaults
    # fit with the alias is fit with the optimizer spelled out, and records it
    X, y, _ = problem(n=30, d=2)
    by_name = gdcore.fit(X, y, optimizer=name, epochs=3, tol=None, batch_size=8, seed=1)
    spelled = gdcore.fit(X, y, optimizer=cls(**defaults), epochs=3, tol=None, batch_size=8,
                         seed=1)
    assert by_name.optimizer == cls(**defaults)
    np.testing.assert_array_equal(by_name.coef, spelled.coef)
    # an lr given with the alias replaces the default lr only
    assert make_optimizer(name, 0.123).get_params() == dict(defaults, lr=0.123)


def intercept_only_problem(n):
    """X = 0 and y = 0: the loss is b²/2 and every batch's gradient is ∂b = b, so an SGD step
    with lr λ multiplies b by (1 − λ): the product of the factors gives the lrs used."""
    return np.zeros((n, 1)), np.zeros(n)


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("schedule, lr_of", [
    (StepLR(step_size=2, gamma=0.5), lambda e, t: 0.1 * 0.5 ** (e // 2)),
    (ExponentialLR(gamma=0.7), lambda e, t: 0.1 * 0.7 ** e),
    (CosineAnnealingLR(T_max=3, eta_min=0.01),
     lambda e, t: 0.01 + (0.1 - 0.01) * (1 + math.cos(math.pi * e / 3)) / 2),
    (LinearLR(start_factor=0.25, end_factor=1.0, total_iters=2),
     lambda e, t: 0.1 * (0.25 + 0.75 * min(e, 2) / 2)),
    (InverseScaling(power_t=0.5), lambda e, t: 0.1 / math.sqrt(t)),
], ids=["step", "exponential", "cosine", "linear", "invscaling"])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_epoch_schedules_hold_lr_across_an_epochs_batches(schedule, lr_of, batch_size,
                                                          backend):
    """SPEC §4: epoch-based schedules change lr between epochs only (e = 0-based epoch), so
    the 4 updates of an epoch of 10 rows in batches of 3 (or 10 of 1) all use lrₑ;
    InverseScaling changes it every update (t = 1-based update count).  b after each epoch
    is the product of (1 − lr) over that epoch's updates, computed here by hand."""
    n, epochs = 10, 4
    X, y = intercept_only_problem(n)
    bs = []
    result = gdcore.fit(X, y, optimizer="sgd", lr=0.1, batch_size=batch_size, epochs=epochs,
                        schedule=schedule, tol=None, init=(np.zeros(1), 1.0), seed=0,
                        backend=backend, callback=lambda p: bs.append(p.intercept))
    per_epoch = math.ceil(n / batch_size)
    assert result.n_updates == epochs * per_epoch
    b, expected, t = 1.0, [], 0
    for e in range(epochs):
        for _ in range(per_epoch):
            t += 1
            b *= 1.0 - lr_of(e, t)
        expected.append(b)
    np.testing.assert_allclose(bs, expected, rtol=1e-13)


# SPEC §4's schedules with their defaults, typed out (torch's lr_scheduler defaults; the
# arguments without a default are given).
SCHEDULE_DEFAULTS = [
    (StepLR, dict(step_size=4), dict(step_size=4, gamma=0.1)),
    (ExponentialLR, dict(gamma=0.5), dict(gamma=0.5)),
    (CosineAnnealingLR, dict(T_max=7), dict(T_max=7, eta_min=0.0)),
    (LinearLR, {}, dict(start_factor=1 / 3, end_factor=1.0, total_iters=5)),
    (InverseScaling, {}, dict(power_t=0.25)),
]


@pytest.mark.parametrize("cls, given, defaults", SCHEDULE_DEFAULTS,
                         ids=[c.__name__ for c, _, _ in SCHEDULE_DEFAULTS])
def test_schedule_defaults_are_specs(cls, given, defaults):
    assert cls(**given).get_params() == defaults


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("name, lr_of", [
    # LinearLR(1/3, 1, 5): lrₑ = 0.1·(1/3 + (2/3)·min(e, 5)/5), from 0.1/3 up to 0.1 at e = 5
    ("linear", lambda e, t: 0.1 * (1 / 3 + (2 / 3) * min(e, 5) / 5)),
    # InverseScaling(0.25): lr / t^0.25 at update t
    ("invscaling", lambda e, t: 0.1 / t ** 0.25),
])
def test_named_schedules_use_specs_defaults(name, lr_of, backend):
    """A schedule given by name without arguments is its class with SPEC §4's defaults: b
    after each epoch is the product of (1 − lrₜ) over the updates so far (two batches an
    epoch), by hand."""
    assert make_schedule(name) == {"linear": LinearLR, "invscaling": InverseScaling}[name]()
    n, epochs = 4, 7
    X, y = intercept_only_problem(n)
    bs = []
    gdcore.fit(X, y, optimizer="sgd", lr=0.1, batch_size=2, epochs=epochs, schedule=name,
               tol=None, init=(np.zeros(1), 1.0), seed=0, backend=backend,
               callback=lambda p: bs.append(p.intercept))
    b, expected, t = 1.0, [], 0
    for e in range(epochs):
        for _ in range(2):
            t += 1
            b *= 1.0 - lr_of(e, t)
        expected.append(b)
    np.testing.assert_allclose(bs, expected, rtol=1e-13)


@pytest.mark.parametrize("schedule", [
    Constant(), StepLR(step_size=3, gamma=0.5), ExponentialLR(gamma=0.9),
    CosineAnnealingLR(T_max=7, eta_min=0.01), LinearLR(), InverseScaling(power_t=0.3)])
def test_schedule_lr_at_is_the_cores_bit_for_bit(schedule):
    """Schedule.lr_at (the reference backend's learning rate) and the core's scheduled lr are
    the same double for every epoch and update count (InverseScaling's lr·(1/t^p) was an ulp
    off the core's lr/t^p)."""
    from gdcore import _core
    for epoch, t in [(0, 1), (1, 7), (4, 13), (6, 250), (20, 10_001)]:
        assert schedule.lr_at(0.1, epoch, t) == _core.scheduled_learning_rate(
            schedule._config(), 0.1, epoch, t), (epoch, t)
