"""What a fit returns: FitResult, the state that lets a fit continue, and DivergenceError."""

from __future__ import annotations

import copy
import functools
import sys
from dataclasses import dataclass, field

import numpy as np

__all__ = ["FitResult", "FitState", "FitProgress", "DivergenceError", "ConvergenceWarning"]

STOP_REASONS = ("epochs", "tol", "gtol", "callback")


class LossHistory:
    """One loss per epoch in a float64 buffer that doubles as it fills: a list of Python
    floats takes four times the memory (1.1 GB at 20 million Gram-mode epochs) and copying
    it into a result took 0.4 s, on Ctrl-C too.  Indexing and slicing give float64 values
    and arrays; ``history[k:] = values`` keeps the first k losses and then ``values``."""

    def __init__(self, values=()):
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        self._buffer = np.empty(max(16, len(values)))
        self._size = len(values)
        self._buffer[:self._size] = values

    def _reserve(self, size):
        if size > len(self._buffer):
            grown = np.empty(max(size, 2 * len(self._buffer)))
            grown[:self._size] = self._buffer[:self._size]
            self._buffer = grown

    def append(self, value):
        self._reserve(self._size + 1)
        self._buffer[self._size] = value
        self._size += 1

    def extend(self, values):
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        self._reserve(self._size + len(values))
        self._buffer[self._size:self._size + len(values)] = values
        self._size += len(values)

    def __setitem__(self, index, values):
        if not (isinstance(index, slice) and index.step is None and index.stop is None):
            raise TypeError("LossHistory takes only history[k:] = values")
        self.set_tail(index.start or 0, [values])

    def set_tail(self, start, parts):
        """Keep the first ``start`` losses, then the arrays ``parts`` one after another (one
        copy of each, and no joined temporary: histories run to hundreds of MB)."""
        parts = [np.asarray(part, dtype=np.float64).reshape(-1) for part in parts]
        self._size = min(self._size, max(0, start))
        self._reserve(self._size + sum(len(part) for part in parts))
        for part in parts:
            self._buffer[self._size:self._size + len(part)] = part
            self._size += len(part)

    def frozen_view(self):
        """The losses as a read-only view of the buffer (no copy)."""
        view = self._buffer[:self._size]
        view.flags.writeable = False
        return view

    def __len__(self):
        return self._size

    def __getitem__(self, index):
        return self._buffer[:self._size][index]

    def __iter__(self):
        return iter(self._buffer[:self._size])

    def __array__(self, dtype=None, copy=None):
        return np.array(self._buffer[:self._size], dtype=dtype)

    def __eq__(self, other):
        return np.array_equal(self._buffer[:self._size], np.asarray(other, dtype=np.float64))

    def tolist(self):
        return self._buffer[:self._size].tolist()

    def copy(self):
        return LossHistory(self._buffer[:self._size])

    def __repr__(self):
        values = self._buffer[:self._size]
        if self._size <= 6:
            return f"LossHistory({values.tolist()!r})"
        head = ", ".join(repr(float(v)) for v in values[:3])
        tail = ", ".join(repr(float(v)) for v in values[-2:])
        return f"LossHistory([{head}, ..., {tail}], {self._size} epochs)"


@dataclass(eq=False)      # compared by identity: field-wise == of arrays has no truth value
class FitState:
    """Everything a fit needs to continue exactly where it stopped (``fit(..., init=result)``).

    theta is (w, b) in the data's dtype; optimizer_state is 3 × (d + 1) (rows unused by the
    optimizer stay 0); n_updates and n_epochs count from the very first fit; best_loss and
    n_no_improvement carry the ``tol`` rule; rng_state is the shuffling generator's state
    (None before any fit ran) and rng_drawn whether any fit so far has drawn a permutation
    from it: until one has, a continuation given a ``seed`` shuffles by that seed.
    """

    theta: np.ndarray
    optimizer_state: np.ndarray
    n_updates: int = 0
    n_epochs: int = 0
    best_loss: float = float("inf")
    n_no_improvement: int = 0
    rng_state: dict | None = None
    loss_history: LossHistory = field(default_factory=LossHistory)
    rng_drawn: bool = False

    def __setstate__(self, state):
        # a pickle from before rng_drawn: its stream is taken as drawn from (a given seed
        # ignored), as continuations then did
        self.__dict__.update({"rng_drawn": state.get("rng_state") is not None, **state})

    def __setattr__(self, name, value):
        # the dataclass's __init__ assigns through here too
        if name == "loss_history" and not isinstance(value, LossHistory):
            value = LossHistory(value)
        super().__setattr__(name, value)

    def __repr__(self):
        # a summary: theta and the optimizer's state run to 4·(d + 1) numbers
        return (f"FitState(d={len(self.theta) - 1}, dtype={self.theta.dtype}, "
                f"n_epochs={self.n_epochs}, n_updates={self.n_updates}, "
                f"best_loss={self.best_loss:.6g}, n_no_improvement={self.n_no_improvement})")

    def copy(self):
        return FitState(self.theta.copy(), self.optimizer_state.copy(), self.n_updates,
                        self.n_epochs, self.best_loss, self.n_no_improvement,
                        None if self.rng_state is None else _copy_rng_state(self.rng_state),
                        self.loss_history.copy(), self.rng_drawn)


def _copy_rng_state(state):
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in state.items()}


def rng_states_equal(a, b):
    """Whether two ``bit_generator.state`` dicts are the same state (some bit generators,
    Philox's, hold arrays, whose == has no truth value)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(rng_states_equal(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    return type(a) is type(b) and a == b


def _no_checkpoint():
    raise RuntimeError("this FitProgress was pickled, which leaves its checkpoint out: call "
                       "checkpoint() during the fit's callback (keep the FitResult it "
                       "returns, not the FitProgress)")


# compared by identity: field-wise == of coef arrays has no truth value
@dataclass(frozen=True, eq=False)
class FitProgress:
    """Passed to a fit's ``callback`` after each epoch (epoch is 1-based and counts from the
    first fit when continuing).  ``checkpoint()``, called during the callback, returns a
    FitResult of the fit as it stands at the end of this epoch, from which
    ``fit(..., init=checkpoint)`` continues exactly.  The fit has not ended there, so the
    checkpoint's stop_reason is "interrupted", converged False and elapsed 0, even at the
    epoch where a stopping rule then ends the fit (its counters are that epoch's, so a
    continuation goes on as one from the final result would)."""

    epoch: int
    loss: float
    coef: np.ndarray = field(repr=False)     # d numbers: left out of the repr
    intercept: float
    checkpoint: object = field(default=None, repr=False, compare=False)

    def __reduce__(self):
        # the checkpoint holds the running fit, which does not pickle (a progress sent to
        # another process failed) and is gone once the callback returns
        return (FitProgress, (self.epoch, self.loss, self.coef, self.intercept,
                              _no_checkpoint))

    # copy.copy and copy.deepcopy would go through __reduce__: a copy in this process keeps
    # the checkpoint (as it did before), which itself refuses once its epoch has passed
    def __copy__(self):
        return FitProgress(self.epoch, self.loss, self.coef, self.intercept, self.checkpoint)

    def __deepcopy__(self, memo):
        return FitProgress(self.epoch, self.loss, copy.deepcopy(self.coef, memo),
                           self.intercept, self.checkpoint)


@dataclass(eq=False)      # compared by identity: field-wise == of arrays has no truth value
class FitResult:
    """The outcome of :func:`gdcore.fit` (and of ``gdcore.fit_chunks`` and ``gdcore.dask.fit``).

    Attributes
    ----------
    coef : ndarray (d,)            fitted w, in the input's dtype
    intercept : float              fitted b (0.0 when fit_intercept=False)
    loss_history : ndarray         one J per epoch, from the first fit on (read-only): full
                                   batch, J before the epoch's update; mini-batch, the mean
                                   of each batch's J before its update
    final_loss : float             loss_history[-1]
    n_epochs, n_updates : int      epochs and optimizer updates run, from the first fit on
    stop_reason : str              "epochs", "tol", "gtol" or "callback" ("interrupted" in
                                   the .result of a KeyboardInterrupt, "diverged" in that of
                                   a DivergenceError)
    converged : bool               True when stopped by "gtol", or by "tol" with the loss
                                   settled (see ConvergenceWarning)
    elapsed : float                seconds spent in this call
    optimizer, schedule            the optimizer and schedule objects used
    state : FitState               what ``fit(..., init=result)`` continues from (None in a
                                   DivergenceError's .result, which cannot be continued)
    backend, n_threads, settings   how it ran: "core" or "numpy" ("chunks" from fit_chunks,
                                   "dask" from gdcore.dask.fit), the threads, and the
                                   checked settings (epochs, batch_size, l2, l1, ...)
    feature_names : list or None   X's column names, when X was a DataFrame (pandas, Dask)
                                   or a pyarrow Table with string names, each once, else None

    ``predict(X)`` is X·coef + intercept (a DataFrame's or Table's columns taken by name when
    feature_names are known); ``plot()`` draws the loss curve (matplotlib).
    """

    coef: np.ndarray
    intercept: float
    loss_history: np.ndarray
    n_epochs: int
    n_updates: int
    stop_reason: str
    converged: bool
    elapsed: float
    optimizer: object
    schedule: object
    state: FitState | None
    backend: str = "core"
    n_threads: int = 1
    settings: dict = field(default_factory=dict)
    feature_names: list | None = None

    def predict(self, X):
        """X @ coef + intercept, for X of the fit's width, in coef's dtype or wider, checked as
        a fit checks X: pandas' nullable numbers as float64; booleans, strings, complex
        numbers, NaN and infinity refused (a ValueError naming the entry).  A DataFrame or
        pyarrow Table has its columns taken by name when the fit's X had names (in any
        order; others ignored), as a saved model takes them; an array, by position."""
        from ._predict import columns_by_name, predict_in_blocks
        from ._validation import _as_array, check_all_finite
        names = self.feature_names
        chosen = None if names is None else columns_by_name(X, names)
        if chosen is not None:
            X = chosen
        else:
            names = None    # errors name X's columns by position
        X = _as_array("X", X)
        if X.ndim != 2 or X.shape[1] != self.coef.shape[0]:
            raise ValueError(f"X must be 2-D with {self.coef.shape[0]} columns (the fit's "
                             f"features), got shape {X.shape}")
        if X.dtype == np.result_type(X.dtype, self.coef.dtype) and X.flags.c_contiguous:
            check_all_finite("X", X, column_names=names)
            return X @ self.coef + self.intercept
        # X must be converted (a float32 memmap and a float64 model, integers): NumPy's
        # product would convert the whole of X at once; or X is not C-contiguous (a
        # DataFrame's values, a view of columns), which the finite check would copy whole
        return predict_in_blocks(X, self.coef, self.intercept, column_names=names)

    def plot(self, ax=None, label=None, title=None):
        """The loss curve on a log scale (matplotlib); returns the Axes."""
        from ._plot import plot_loss_curves
        name = label or getattr(type(self.optimizer), "__name__", "fit")
        return plot_loss_curves({name: self.loss_history}, ax=ax, title=title)

    def __setstate__(self, state):
        # pickle and deepcopy rebuild loss_history as a writeable copy: read-only, as a fit
        # returns it (writing to it would change a history the state no longer shares)
        self.__dict__.update(state)
        if isinstance(self.loss_history, np.ndarray):
            # a view: copy.copy shares the array, whose own flags are the original's
            view = self.loss_history.view()
            view.flags.writeable = False
            self.loss_history = view

    @property
    def final_loss(self):
        """The last epoch's loss (NaN before any epoch)."""
        return float(self.loss_history[-1]) if len(self.loss_history) else float("nan")

    def __repr__(self):
        return (f"FitResult(optimizer={self.optimizer!r}, n_epochs={self.n_epochs}, "
                f"n_updates={self.n_updates}, stop_reason={self.stop_reason!r}, "
                f"converged={self.converged}, final_loss={self.final_loss:.6g}, "
                f"elapsed={self.elapsed:.3g}s)")


class DivergenceError(ArithmeticError):
    """The loss or the parameters stopped being finite.

    ``.result`` is a :class:`FitResult` with the last finite parameters and the loss history
    up to them; ``.epoch`` is the 1-based epoch in which it happened.
    """

    def __init__(self, message, result=None, epoch=None):
        super().__init__(message)
        self.result = result
        self.epoch = epoch


class ConvergenceWarning(UserWarning):
    """The ``tol`` rule stopped a fit whose loss had not settled.

    The rule stops when the loss has not gone below best_loss − tol for n_iter_no_change
    epochs: a plateau, but also a loss that grows without overflowing (the step too large)
    or swings around the minimum.  When the last loss is above 2·best_loss + tol, the fit is
    reported with ``converged=False`` and this warning names the losses and suggests a
    smaller lr.
    """


def convergence_warning_category():
    """The category fits warn with: ConvergenceWarning, or, once scikit-learn is loaded (as
    GDRegressor loads it), a subclass that is scikit-learn's ConvergenceWarning as well, so
    that a filter of either class catches every convergence warning of a pipeline."""
    sklearn_exceptions = sys.modules.get("sklearn.exceptions")
    if sklearn_exceptions is None:
        return ConvergenceWarning
    return _with_sklearn_base(sklearn_exceptions.ConvergenceWarning)


# The name pickle finds that class by (warnings show it as ConvergenceWarning).
_SKLEARN_FLAVOURED = "_ConvergenceWarningOfScikitLearn"


@functools.lru_cache(maxsize=None)
def _with_sklearn_base(sklearn_warning):
    category = type("ConvergenceWarning", (ConvergenceWarning, sklearn_warning),
                    {"__module__": __name__, "__doc__": ConvergenceWarning.__doc__})
    category.__qualname__ = _SKLEARN_FLAVOURED
    return category


def __getattr__(name):
    # pickle looks the class up by name, in a process that may not have made it yet
    if name == _SKLEARN_FLAVOURED:
        import sklearn.exceptions
        return _with_sklearn_base(sklearn.exceptions.ConvergenceWarning)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
