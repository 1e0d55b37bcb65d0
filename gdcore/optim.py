"""Optimizers: the update rules of ``torch.optim``, for the parameters θ = (w, b).

Each class only holds and validates hyper-parameters; the updates themselves run
inside the compiled core (``src/gd_optimizers.pxd``) or, for ``backend="numpy"``,
in ``gdcore._reference``.  Names and defaults are those of ``torch.optim``; the
l2 penalty of :func:`gdcore.fit` plays the part of torch's ``weight_decay`` and
is applied to the coefficients only.

``g`` below is the gradient of the objective at update count ``t = 1, 2, ...``
and ``lr`` the learning rate after the schedule.
"""

from __future__ import annotations

import collections.abc
import numbers

import numpy as np

from ._validation import finite_float, nearest_name

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "NormalizedGD",
           "OPTIMIZER_NAMES", "make_optimizer"]

# Integer codes shared with the compiled core (src/gd_types.pxd).
KIND_SGD, KIND_ADAGRAD, KIND_RMSPROP, KIND_ADAM, KIND_NORMALIZED = range(5)


def _check_real(name, value, *, low=None, low_open=False, high=None, high_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = finite_float(name, value)
    if low is not None and (value <= low if low_open else value < low):
        bound = f"> {low}" if low_open else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    if high is not None and (value >= high if high_open else value > high):
        bound = f"< {high}" if high_open else f"<= {high}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return value


def _check_lr(lr):
    return _check_real("lr", lr, low=0.0, low_open=True)


def _check_eps(eps):
    return _check_real("eps", eps, low=0.0, low_open=True)


def _check_bool(name, value):
    if not isinstance(value, (bool, int, np.bool_)) or value not in (0, 1):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def check_built_in(name, value, classes):
    """A TypeError unless value's class is one of classes: the compiled core runs its own
    rules by their kind, so a subclass's methods (or a base class, which has none) would be
    silently replaced by another rule."""
    if type(value) not in classes:
        names = ", ".join(cls.__name__ for cls in classes)
        raise TypeError(f"{name} must be a name or one of {names}; got "
                        f"{type(value).__module__}.{type(value).__qualname__}, whose methods "
                        "the compiled core would not call (it runs only its built-in rules)")


def unknown_name(what, given, known, notes=None):
    """The ValueError for a name not in ``known``: the known names, the nearest of them as a
    hint, and ``notes[name]`` where a note says more (e.g. a rule gdcore does not offer)."""
    key = given.strip().lower()
    close = nearest_name(key, known, cutoff=0.5, begun=True)
    hint = (notes or {}).get(key, "")
    if close == key and given != given.strip():
        hint += f"did you mean {close!r} (without the whitespace around it)? "
    elif close:
        hint += f"did you mean {close!r}? "
    return ValueError(f"{what}: unknown name {given!r}; {hint}known names are "
                      + ", ".join(repr(n) for n in known))


def wrong_kind(what, value, expected, names, other=None):
    """The TypeError for a ``what`` that is neither a name nor an ``expected`` instance: a
    class given for its instance, or an ``other`` object given in the wrong argument, is
    said to be that."""
    message = (f"{what} must be a name (one of " + ", ".join(repr(n) for n in names)
               + f") or a {expected.__module__}.{expected.__name__}, got "
               + type(value).__name__)
    if isinstance(value, type) and issubclass(value, expected):
        example = (f"{value.__name__}() or {value.__name__}(lr=0.01)" if expected is Optimizer
                   else f"{value.__name__}(...) with its sizes")
        message = f"{what}={value.__name__} is the class; pass an instance, e.g. {example}"
    elif other is not None and isinstance(value, other[0]):
        message += f": {type(value).__name__} is {other[1]}, pass it as {other[2]}="
    return TypeError(message)


class HyperParameters:
    """A value object: its constructor arguments are its identity (repr, ==, hash)."""

    def get_params(self, deep=True):
        """The constructor arguments, as a dict (``deep`` is scikit-learn's argument; these
        objects hold no nested ones)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def set_params(self, **params):
        """Change constructor arguments in place, checked as the constructor checks them, and
        return self: scikit-learn's ``set_params`` (``GDRegressor(optimizer=Adam())
        .set_params(optimizer__lr=0.01)`` and grid searches over ``optimizer__lr`` use it).
        The object's identity (==, hash) changes with them."""
        known = self.get_params()
        unknown = [name for name in params if name not in known]
        if unknown:
            raise ValueError(f"{type(self).__name__} has no parameter {unknown[0]!r}; its "
                             f"parameters are {', '.join(known)}")
        checked = type(self)(**{**known, **params})
        self.__dict__.update(checked.__dict__)
        return self

    def copy(self):
        """An equal, independent object."""
        return type(self)(**self.get_params())

    def __sklearn_clone__(self):
        # sklearn.base.clone's generic path insists that the constructor store each argument
        # as given (the same object); betas is rebuilt as a tuple of checked floats
        return self.copy()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_params() == other.get_params()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_params().items()))))


class Optimizer(HyperParameters):
    """Base class: a named set of hyper-parameters with a learning rate."""

    kind = -1
    #: number of per-parameter state vectors the rule keeps
    n_state = 0

    def __init__(self, lr):
        self.lr = _check_lr(lr)

    # Hyper-parameters as the compiled core's OptimConfig struct expects them.
    def _config(self):
        cfg = dict(kind=self.kind, lr=self.lr, momentum=0.0, dampening=0.0, nesterov=False,
                   lr_decay=0.0, initial_accumulator_value=0.0, alpha=0.0, eps=1.0,
                   centered=False, beta1=0.0, beta2=0.0, amsgrad=False)
        cfg.update(self._own_config())
        return cfg

    def _own_config(self):
        return {}

    def with_lr(self, lr):
        """A copy with another learning rate."""
        params = self.get_params()
        params["lr"] = lr
        return type(self)(**params)

    def initial_state(self, n_params):
        """State vectors at t = 0 (a list of float64 lists of length n_params)."""
        return [[0.0] * n_params for _ in range(self.n_state)]

    @property
    def allows_l1(self):
        return False



class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    Without momentum: θ ← θ − lr·g.  With momentum μ::

        buf ← g                            at t = 1
        buf ← μ·buf + (1 − dampening)·g    afterwards
        g   ← g + μ·buf   (nesterov)   or   g ← buf
        θ   ← θ − lr·g

    ``dampening=momentum`` gives the moving-average form v ← βv + (1−β)g.

    Parameters: ``lr`` > 0 (default 0.01; torch's is 1e-3 since 2.2); ``momentum`` μ ≥ 0;
    ``dampening`` (any real; 0 is torch's default); ``nesterov`` needs μ > 0 and dampening 0.
    The only family that takes ``l1`` (a proximal step after each update).
    """

    kind = KIND_SGD
    n_state = 1

    def __init__(self, lr=0.01, momentum=0.0, dampening=0.0, nesterov=False):
        super().__init__(lr)
        self.momentum = _check_real("momentum", momentum, low=0.0)
        self.dampening = _check_real("dampening", dampening)
        self.nesterov = _check_bool("nesterov", nesterov)
        if self.nesterov and (self.momentum <= 0.0 or self.dampening != 0.0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening = 0 "
                             f"(got momentum={self.momentum}, dampening={self.dampening})")

    def _own_config(self):
        return dict(momentum=self.momentum, dampening=self.dampening, nesterov=self.nesterov)

    @property
    def allows_l1(self):
        return True


class Adagrad(Optimizer):
    """Adagrad::

        clr = lr / (1 + (t − 1)·lr_decay)
        G   ← G + g²
        θ   ← θ − clr·g / (√G + eps)

    Parameters: ``lr`` > 0; ``lr_decay`` ≥ 0 (the step's decay over updates t);
    ``eps`` > 0; ``initial_accumulator_value`` ≥ 0 (G at t = 0).
    """

    kind = KIND_ADAGRAD
    n_state = 1

    def __init__(self, lr=0.01, lr_decay=0.0, eps=1e-10, initial_accumulator_value=0.0):
        super().__init__(lr)
        self.lr_decay = _check_real("lr_decay", lr_decay, low=0.0)
        self.eps = _check_eps(eps)
        self.initial_accumulator_value = _check_real(
            "initial_accumulator_value", initial_accumulator_value, low=0.0)

    def _own_config(self):
        return dict(lr_decay=self.lr_decay, eps=self.eps,
                    initial_accumulator_value=self.initial_accumulator_value)

    def initial_state(self, n_params):
        return [[self.initial_accumulator_value] * n_params]


class RMSprop(Optimizer):
    """RMSprop::

        v ← α·v + (1 − α)·g²
        centered:  ḡ ← α·ḡ + (1 − α)·g,   a = √max(v − ḡ², 0) + eps   (≥ 0 but for rounding)
        otherwise: a = √v + eps
        momentum μ > 0:  buf ← μ·buf + g/a,  θ ← θ − lr·buf
        otherwise:       θ ← θ − lr·g/a

    Parameters: ``lr`` > 0; ``alpha`` α in [0, 1) (the average's memory); ``eps`` > 0;
    ``momentum`` μ ≥ 0; ``centered`` (divide by the gradient's estimated spread, not its
    root mean square).
    """

    kind = KIND_RMSPROP
    n_state = 3  # v, buf, ḡ

    def __init__(self, lr=0.01, alpha=0.99, eps=1e-8, momentum=0.0, centered=False):
        super().__init__(lr)
        self.alpha = _check_real("alpha", alpha, low=0.0, high=1.0, high_open=True)
        self.eps = _check_eps(eps)
        self.momentum = _check_real("momentum", momentum, low=0.0)
        self.centered = _check_bool("centered", centered)

    def _own_config(self):
        return dict(alpha=self.alpha, eps=self.eps, momentum=self.momentum,
                    centered=self.centered)


class Adam(Optimizer):
    """Adam and AMSGrad::

        m ← β₁·m + (1 − β₁)·g
        v ← β₂·v + (1 − β₂)·g²
        amsgrad: v̂ ← max(v̂, v), and v̂ is used for v below
        θ ← θ − lr·(m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + eps)

    Parameters: ``lr`` > 0 (default 1e-3); ``betas`` (β₁, β₂), each in [0, 1); ``eps`` > 0;
    ``amsgrad`` (the "amsgrad" name).  l2 is an L2 penalty added to g, as torch's Adam's
    weight_decay (not AdamW's decoupled decay).
    """

    kind = KIND_ADAM
    n_state = 3  # m, v, v̂max

    def __init__(self, lr=0.001, betas=(0.9, 0.999), eps=1e-8, amsgrad=False):
        super().__init__(lr)
        if isinstance(betas, (collections.abc.Set, collections.abc.Mapping)):
            # a set has no order: {0.999, 0.9} unpacked as (0.999, 0.9), the betas swapped
            raise TypeError(f"betas must be a pair (beta1, beta2) in order, e.g. a tuple; got "
                            f"{type(betas).__name__} {betas!r}, which has no order of its own")
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise TypeError(f"betas must be a pair of numbers, got {betas!r}") from None
        self.betas = (_check_real("betas[0]", beta1, low=0.0, high=1.0, high_open=True),
                      _check_real("betas[1]", beta2, low=0.0, high=1.0, high_open=True))
        self.eps = _check_eps(eps)
        self.amsgrad = _check_bool("amsgrad", amsgrad)

    def _own_config(self):
        return dict(beta1=self.betas[0], beta2=self.betas[1], eps=self.eps,
                    amsgrad=self.amsgrad)


class NormalizedGD(Optimizer):
    """Normalized gradient descent: θ ← θ − lr·g / max(‖g‖₂, eps).

    Parameters: ``lr`` > 0 (each step's length while ‖g‖₂ ≥ eps); ``eps`` > 0."""

    kind = KIND_NORMALIZED
    n_state = 0

    def __init__(self, lr=0.01, eps=1e-12):
        super().__init__(lr)
        self.eps = _check_eps(eps)

    def _own_config(self):
        return dict(eps=self.eps)


# The string aliases of SPEC section 3, each a factory taking the learning rate.
_ALIASES = {
    "gd": lambda lr: SGD(**_lr(lr)),
    "sgd": lambda lr: SGD(**_lr(lr)),
    "momentum": lambda lr: SGD(momentum=0.9, **_lr(lr)),
    "nesterov": lambda lr: SGD(momentum=0.9, nesterov=True, **_lr(lr)),
    "adagrad": lambda lr: Adagrad(**_lr(lr)),
    "rmsprop": lambda lr: RMSprop(**_lr(lr)),
    "adam": lambda lr: Adam(**_lr(lr)),
    "amsgrad": lambda lr: Adam(amsgrad=True, **_lr(lr)),
    "normalized": lambda lr: NormalizedGD(**_lr(lr)),
}
OPTIMIZER_NAMES = tuple(_ALIASES)


def _lr(lr):
    return {} if lr is None else {"lr": lr}


def make_optimizer(optimizer, lr=None):
    """Resolve ``optimizer`` (a name or an :class:`Optimizer`) with an optional lr override."""
    if isinstance(optimizer, Optimizer):
        check_built_in("optimizer", optimizer, (SGD, Adagrad, RMSprop, Adam, NormalizedGD))
        # a copy: the fit's record of it does not change when the caller's object does
        return optimizer.copy() if lr is None else optimizer.with_lr(lr)
    if isinstance(optimizer, str):
        key = optimizer.lower()
        if key not in _ALIASES:
            raise unknown_name("optimizer", optimizer, OPTIMIZER_NAMES, _NOT_OFFERED)
        return _ALIASES[key](lr)
    from .schedules import Schedule
    raise wrong_kind("optimizer", optimizer, Optimizer, OPTIMIZER_NAMES,
                     (Schedule, "a schedule", "schedule"))


# Optimizers asked for by names gdcore does not offer, and what comes nearest.
_NOT_OFFERED = {
    "adamw": "AdamW's decoupled weight decay is not offered ('adam' with l2= is Adam with an "
             "L2 penalty); ",
}
