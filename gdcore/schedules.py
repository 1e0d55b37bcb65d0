"""Learning-rate schedules: lrₜ = lr × factor.

Epoch-based schedules are the closed forms of ``torch.optim.lr_scheduler``'s
classes of the same names, with ``e`` the 0-based epoch; :class:`InverseScaling`
is update-based (scikit-learn's ``invscaling``) with ``t`` the 1-based update
count.  The compiled core evaluates the same forms in ``src/gd_schedules.pxd``;
:meth:`Schedule.factor` is the plain-Python statement of each, used by the
NumPy reference backend.
"""

from __future__ import annotations

import math
import operator
import sys

from .optim import (HyperParameters, Optimizer, _check_real, check_built_in, unknown_name,
                    wrong_kind)

__all__ = ["Schedule", "Constant", "StepLR", "ExponentialLR", "CosineAnnealingLR",
           "LinearLR", "InverseScaling", "SCHEDULE_NAMES", "make_schedule"]

# Integer codes shared with the compiled core (src/gd_types.pxd).
KIND_CONSTANT, KIND_STEP, KIND_EXPONENTIAL, KIND_COSINE, KIND_LINEAR, KIND_INVSCALING = range(6)


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) and not (
            hasattr(value, "__index__")):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:       # a 1-element array has __index__ but is no integer
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    if value > sys.float_info.max:      # the core holds the sizes as doubles
        raise ValueError(f"{name} must be at most {sys.float_info.max:.4g}, got an integer of "
                         f"{len(str(value))} digits")
    return value


def _power(base, exponent):
    """base ** exponent (base > 0) as the core's C pow gives it: inf past float's range, where
    Python's float ** raises OverflowError."""
    try:
        return base ** exponent
    except OverflowError:
        return math.inf


class Schedule(HyperParameters):
    kind = -1

    def factor(self, epoch, step):
        """The multiplier of the base lr at 0-based ``epoch`` and 1-based update ``step``
        (CosineAnnealingLR's lr is not a multiple of the base lr when eta_min > 0: it has
        only ``lr_at``)."""
        raise NotImplementedError

    def lr_at(self, lr, epoch, step):
        """The learning rate at 0-based ``epoch`` and 1-based update ``step`` for base ``lr``."""
        return lr * self.factor(epoch, step)

    def _config(self):
        cfg = dict(kind=self.kind, step_size=1.0, gamma=1.0, T_max=1.0, eta_min=0.0,
                   start_factor=1.0, end_factor=1.0, total_iters=1.0, power_t=0.0)
        cfg.update({k: float(v) for k, v in self.get_params().items()})
        return cfg



class Constant(Schedule):
    """factor = 1."""

    kind = KIND_CONSTANT

    def factor(self, epoch, step):
        return 1.0


class StepLR(Schedule):
    """factor = gamma^⌊e / step_size⌋."""

    kind = KIND_STEP

    def __init__(self, step_size, gamma=0.1):
        self.step_size = _check_positive_int("step_size", step_size)
        self.gamma = _check_real("gamma", gamma, low=0.0, low_open=True)

    def factor(self, epoch, step):
        return _power(self.gamma, epoch // self.step_size)


class ExponentialLR(Schedule):
    """factor = gamma^e."""

    kind = KIND_EXPONENTIAL

    def __init__(self, gamma):
        self.gamma = _check_real("gamma", gamma, low=0.0, low_open=True)

    def factor(self, epoch, step):
        return _power(self.gamma, epoch)


class CosineAnnealingLR(Schedule):
    """lrₑ = eta_min + (lr − eta_min)·(1 + cos(π·e / T_max)) / 2, given by ``lr_at`` (not a
    multiple of lr when eta_min > 0, so it has no ``factor``)."""

    kind = KIND_COSINE

    def __init__(self, T_max, eta_min=0.0):
        self.T_max = _check_positive_int("T_max", T_max)
        self.eta_min = _check_real("eta_min", eta_min, low=0.0)

    def factor(self, epoch, step):
        # raised whatever eta_min is: a factor that worked only for eta_min = 0 would fail
        # in a caller's code once eta_min is set
        raise TypeError("CosineAnnealingLR has no factor (its lr is not a multiple of the "
                        "base lr when eta_min > 0): use lr_at(lr, epoch, step)")

    def lr_at(self, lr, epoch, step):
        cosine = math.cos(math.pi * epoch / self.T_max)
        return self.eta_min + (lr - self.eta_min) * (1.0 + cosine) / 2.0


class LinearLR(Schedule):
    """factor = start_factor + (end_factor − start_factor)·min(e, total_iters)/total_iters."""

    kind = KIND_LINEAR

    def __init__(self, start_factor=1.0 / 3, end_factor=1.0, total_iters=5):
        self.start_factor = _check_real("start_factor", start_factor, low=0.0, low_open=True,
                                        high=1.0)
        self.end_factor = _check_real("end_factor", end_factor, low=0.0, high=1.0)
        self.total_iters = _check_positive_int("total_iters", total_iters)

    def factor(self, epoch, step):
        e = min(epoch, self.total_iters)
        return self.start_factor + (self.end_factor - self.start_factor) * e / self.total_iters


class InverseScaling(Schedule):
    """factor = 1 / t^power_t, with t the 1-based update count (scikit-learn's ``invscaling``)."""

    kind = KIND_INVSCALING

    def __init__(self, power_t=0.25):
        self.power_t = _check_real("power_t", power_t, low=0.0)

    def factor(self, epoch, step):
        return 1.0 / _power(step, self.power_t)

    def lr_at(self, lr, epoch, step):
        return lr / _power(step, self.power_t)    # as the core divides (lr·(1/t^p) is an ulp off)


_NAMES = {
    "constant": Constant,
    "step": StepLR,
    "steplr": StepLR,
    "exponential": ExponentialLR,
    "exponentiallr": ExponentialLR,
    "cosine": CosineAnnealingLR,
    "cosineannealinglr": CosineAnnealingLR,
    "linear": LinearLR,
    "linearlr": LinearLR,
    "invscaling": InverseScaling,
    "inversescaling": InverseScaling,
}
SCHEDULE_NAMES = tuple(_NAMES)


def make_schedule(schedule, epochs=None):
    """Resolve ``schedule``: a :class:`Schedule`, or a name.

    Names that need arguments get defaults that fit a run of ``epochs`` epochs:
    ``"step"`` halves the lr every ``max(1, epochs // 3)`` epochs, ``"exponential"``
    uses gamma 0.99, ``"cosine"`` anneals to 0 over ``epochs``.
    """
    if schedule is None:
        return Constant()
    if isinstance(schedule, Schedule):
        check_built_in("schedule", schedule, (Constant, StepLR, ExponentialLR,
                                              CosineAnnealingLR, LinearLR, InverseScaling))
        return schedule.copy()     # the fit's record does not change with the caller's object
    if isinstance(schedule, str):
        key = schedule.lower()
        if key not in _NAMES:
            raise unknown_name("schedule", schedule, SCHEDULE_NAMES)
        cls = _NAMES[key]
        span = max(1, int(epochs or 1))
        if cls in (StepLR, CosineAnnealingLR) and span > sys.float_info.max:
            # StepLR's or CosineAnnealingLR's own error named step_size or T_max, which the
            # caller did not give
            raise ValueError(f"schedule={schedule!r} is sized to the run's epochs, an integer "
                             f"of {len(str(span))} digits, past the {sys.float_info.max:.4g} "
                             "the core holds; pass fewer epochs, or a "
                             f"{cls.__name__} object with its own sizes")
        if cls is StepLR:
            return StepLR(step_size=max(1, span // 3), gamma=0.5)
        if cls is ExponentialLR:
            return ExponentialLR(gamma=0.99)
        if cls is CosineAnnealingLR:
            return CosineAnnealingLR(T_max=span)
        return cls()
    raise wrong_kind("schedule", schedule, Schedule, SCHEDULE_NAMES,
                     (Optimizer, "an optimizer", "optimizer"))
