"""GDRegressor: gdcore.fit as a scikit-learn estimator (scikit-learn is imported only here)."""

from __future__ import annotations

import numbers
import warnings
from contextlib import contextmanager

import numpy as np
try:
    from sklearn.base import BaseEstimator, RegressorMixin
except ImportError as exc:
    raise ImportError("gdcore.GDRegressor needs scikit-learn: pip install 'gdcore[sklearn]'") \
        from exc
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

import sklearn.exceptions  # noqa: F401  (loaded: fits then warn as its ConvergenceWarning too)

from ._api import fit as _fit
from ._api import prepare_run
from ._progress import progress_callback
from ._result import FitResult, convergence_warning_category
from ._validation import check_bool, check_choice, check_float, check_int, make_rng
from .optim import make_optimizer
from .schedules import CosineAnnealingLR, StepLR, make_schedule

__all__ = ["GDRegressor"]

# What a fit's result sets (result_ carries the state that warm_start and partial_fit continue
# from), and everything fit and partial_fit set.
_FROM_RESULT = ("result_", "coef_", "intercept_", "loss_curve_", "n_iter_")
_FITTED = ("n_features_in_", "feature_names_in_") + _FROM_RESULT


class GDRegressor(RegressorMixin, BaseEstimator):
    """Linear regression by gradient descent; every parameter means what it means in
    :func:`gdcore.fit` (``seed`` seeds the mini-batch shuffle; ``random_state``, scikit-learn's
    name for it, may be given instead, and wins when both are: scikit-learn's ensembles and
    ``check_estimator`` set it on their copies).

    Minimises 1/(2S)·Σ sᵢ(xᵢ·w + b − yᵢ)² + (l2/2)·‖w‖² + l1·‖w‖₁ with the chosen optimizer.

    - ``fit`` runs up to ``epochs`` epochs; with ``warm_start=True`` a second ``fit`` continues
      the previous one exactly (optimizer state, schedule position, shuffle stream), but that
      "step" and "cosine" are sized anew to all the epochs so far (schedule objects are not);
      data of another width, or with other column names, are refused, as scikit-learn's
      SGDRegressor refuses them (names on one side only: a warning, as there).  Where
      ``coef_`` or ``intercept_`` were set by hand since, it starts from them instead, afresh
      (optimizer state, schedule and loss curve from the start), as scikit-learn's warm
      starts start from ``coef_``; ``partial_fit`` too.
    - ``partial_fit`` runs one epoch over the chunk it is given, keeping the optimizer state
      and schedule position between calls, for data that arrives in pieces.  It has no run
      length, so "step" and "cosine" must be given as schedule objects with explicit sizes.
    - A call that fails on bad input, or diverges (``gdcore.DivergenceError``, whose
      ``.result`` holds the last finite parameters), leaves the model as it was.
    - ``verbose=True`` shows a progress bar in ``fit`` (needs tqdm); ``partial_fit``, one
      epoch a call, shows none.
    - On Ctrl-C the estimator keeps the parameters of the last finished epoch before the
      KeyboardInterrupt propagates, so a warm-started fit can be resumed.
    - ``optimizer`` and ``schedule`` may be objects from :mod:`gdcore.optim` and
      :mod:`gdcore.schedules`; ``clone`` copies them and ``set_params(optimizer__lr=...)``
      reaches into them.

    Attributes: ``coef_``, ``intercept_``, ``n_features_in_``, ``feature_names_in_`` (when X
    has column names), ``loss_curve_`` (one loss per epoch since the first fit),
    ``n_iter_`` (epochs run by the last call), ``result_`` (the :class:`gdcore.FitResult`).
    """

    def __init__(self, optimizer="sgd", lr=None, epochs=100, batch_size=None,
                 schedule="constant", l2=0.0, l1=0.0, fit_intercept=True, tol=1e-4,
                 n_iter_no_change=5, gtol=None, shuffle=True, seed=None, n_threads=None,
                 precompute="auto", warm_start=False, verbose=False, random_state=None):
        self.optimizer = optimizer
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.schedule = schedule
        self.l2 = l2
        self.l1 = l1
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.gtol = gtol
        self.shuffle = shuffle
        self.seed = seed
        self.n_threads = n_threads
        self.precompute = precompute
        self.warm_start = warm_start
        self.verbose = verbose
        self.random_state = random_state

    def set_params(self, **params):
        """scikit-learn's set_params; ``optimizer__lr=...`` and the like need ``optimizer``
        (or ``schedule``) to be an object, whose parameters they set."""
        for key in params:
            base, nested, rest = key.partition("__")
            if nested and base in ("optimizer", "schedule"):
                current = params.get(base, getattr(self, base, None))
                if not hasattr(current, "set_params"):
                    example = ("lr=... sets the rate of a named optimizer; "
                               if base == "optimizer" and rest == "lr" else "")
                    module = "optim" if base == "optimizer" else "schedules"
                    kind = "a name, " if isinstance(current, str) else ""   # None is none
                    raise ValueError(
                        f"{key}: {base} is {current!r}, {kind}which has no parameters to "
                        f"set; {example}pass {base}= a gdcore.{module} object to reach its "
                        f"parameters with {base}__...")
        return super().set_params(**params)

    def _seed(self):
        """seed, or random_state when given: an int, a Generator, or (scikit-learn's) a
        RandomState, which gives the fit's seed by a draw, as scikit-learn's estimators draw
        from it."""
        if self.random_state is None:
            return self.seed
        if isinstance(self.random_state, np.random.RandomState):
            return int(self.random_state.randint(np.iinfo(np.int32).max))
        return self.random_state

    def _options(self, epochs, full_data):
        options = dict(optimizer=self.optimizer, lr=self.lr, epochs=epochs,
                       batch_size=self.batch_size, schedule=self.schedule, l2=self.l2,
                       l1=self.l1, fit_intercept=self.fit_intercept, shuffle=self.shuffle,
                       seed=self._seed(), n_threads=self.n_threads)
        if full_data:
            options.update(tol=self.tol, n_iter_no_change=self.n_iter_no_change,
                           gtol=self.gtol, precompute=self.precompute)
        else:
            options.update(tol=None, precompute=False)
        return options

    def _run(self, X, y, sample_weight, init, options, progress=True):
        last_epoch = [None]  # the fit at the end of its last finished epoch
        batch_size = check_int("batch_size", options["batch_size"], low=1, allow_none=True)
        # A full-batch fit is interrupted between epochs, so the interrupt's result is the last
        # finished epoch; a mini-batch epoch can be cut short, so its fits keep a checkpoint
        # at each epoch's end (a callback runs the core one epoch at a time: not for the
        # full batch, whose Gram-mode epochs cost microseconds)
        mini_batch = batch_size is not None and batch_size < X.shape[0]

        def keep_checkpoint(progress):
            # O(d) per epoch: the loss history is filled in from the interrupt's result
            last_epoch[0] = progress.checkpoint(with_history=False)
            return False
        callback, close = (keep_checkpoint if mini_batch else None), None
        if self.verbose and progress:
            callback, close = progress_callback(options["epochs"], enabled=True,
                                                desc=type(self).__name__,
                                                user_callback=callback)
        earlier_epochs = init.n_epochs if isinstance(init, FitResult) else 0
        try:
            result = _fit(X, y, sample_weight=sample_weight, init=init, callback=callback,
                          **options)
        except KeyboardInterrupt as interrupt:
            # Ctrl-C: keep the last finished epoch (a warm start resumes exactly from it)
            partial = getattr(interrupt, "result", None)
            kept = last_epoch[0] if mini_batch else partial
            if (kept is not None and partial is not None and kept.state is not None
                    and kept.n_epochs > earlier_epochs):
                if kept is not partial:
                    history = partial.loss_history[:kept.n_epochs]
                    kept.loss_history = history.copy()
                    kept.state.loss_history = history.tolist()
                self._store(kept, kept.n_epochs - earlier_epochs)
            raise
        finally:
            if close is not None:
                close()
        self._store(result, result.n_epochs - earlier_epochs)
        return self

    def _store(self, result, epochs_run):
        self.result_ = result
        self.coef_ = result.coef
        self.intercept_ = result.intercept
        self.loss_curve_ = list(result.loss_history)
        self.n_iter_ = int(epochs_run)

    def _previous(self):
        result = getattr(self, "result_", None)
        if result is None or result.state is None:
            return None
        return result

    def _start(self, previous):
        """The init of a fit that continues ``previous``: previous itself, or, where coef_ or
        intercept_ no longer hold what it ended with (set by hand since), (coef_, intercept_):
        a fresh start from them, as scikit-learn's warm starts start from coef_."""
        if previous is None:
            return None
        theta, d = previous.state.theta, previous.coef.shape[0]
        coef, intercept = getattr(self, "coef_", None), getattr(self, "intercept_", None)
        if (isinstance(coef, np.ndarray) and coef.shape == (d,)
                and np.array_equal(coef, theta[:d]) and np.array_equal(intercept, theta[d])):
            return previous
        coef, intercept = self._parameters("coef_, set by hand since the last fit, is the start "
                                           "of this one: it")
        if not self.fit_intercept and intercept != 0:
            # gdcore.fit's own message names its init argument, which the caller never gave
            raise ValueError(f"intercept_ is {intercept!r}, but fit_intercept=False fits none: "
                             "this fit starts from coef_ and intercept_ (coef_ or intercept_ "
                             "was set by hand since the last fit), and cannot with an "
                             "intercept; set intercept_ = 0.0, or fit_intercept=True")
        return coef, intercept

    @contextmanager
    def _kept_on_failure(self):
        """Put the fitted attributes back as they were if the call fails.

        validate_data and fit clear them before gdcore.fit has checked its hyper-parameters.
        A DivergenceError restores them too (its .result has the last finite parameters); on
        Ctrl-C the model keeps the last finished epoch (see _run).
        """
        earlier = {name: self.__dict__[name] for name in _FITTED if name in self.__dict__}

        def restore():
            for name in _FITTED:
                self.__dict__.pop(name, None)
            self.__dict__.update(earlier)
        try:
            yield
        except KeyboardInterrupt:
            # _run stored the last epoch this call finished; if none finished, as it was
            kept = self.__dict__.get("result_")
            if kept is None or kept is earlier.get("result_"):
                restore()
            raise
        except Exception:
            restore()
            raise

    def _check_continuable(self, previous, how_to_restart):
        """Refuse to continue ``previous`` with another optimizer or intercept setting, saying
        what to do instead (gdcore.fit's own message is about its ``init`` argument)."""
        if previous is None:
            return
        if self.optimizer is not None:
            was, now = type(previous.optimizer), type(make_optimizer(self.optimizer, self.lr))
            if was is not now:
                raise ValueError(f"optimizer: the previous fit used {was.__name__} and cannot "
                                 f"be continued with {now.__name__}; {how_to_restart}, or keep "
                                 "its optimizer")
        was_intercept = previous.settings.get("fit_intercept", self.fit_intercept)
        if bool(was_intercept) != bool(self.fit_intercept):
            raise ValueError(f"fit_intercept: the previous fit used fit_intercept={was_intercept}"
                             f" and cannot be continued with {self.fit_intercept}; "
                             f"{how_to_restart}, or keep fit_intercept={was_intercept}")

    def _check_same_names(self, before):
        """A warm start continues the earlier fit's columns: names other than its names are
        refused (the coefficients belong to them); names on one side only are warned about,
        as scikit-learn warns about them, and the earlier fit's (or no) names are kept."""
        now = getattr(self, "feature_names_in_", None)
        if before is not None and now is not None:
            if not np.array_equal(before, now):
                raise ValueError(f"X has columns {list(now)}, but the previous fit that "
                                 f"warm_start=True continues had columns {list(before)}: the "
                                 "coefficients belong to those columns, in that order; pass X "
                                 "with them, or set warm_start=False to start afresh")
        elif before is not None:
            warnings.warn(f"X has no column names, but the previous fit that warm_start=True "
                          f"continues had columns {list(before)}", UserWarning, stacklevel=3)
            self.feature_names_in_ = before
        elif now is not None:
            warnings.warn(f"X has columns {list(now)}, but the previous fit that "
                          "warm_start=True continues had none", UserWarning, stacklevel=3)
            del self.feature_names_in_

    def _check_random_state(self):
        """random_state, refused naming it: the seed check's message names seed, which the
        caller did not give, and leaves out the RandomState that random_state takes."""
        state = self.random_state
        if state is None or isinstance(state, np.random.RandomState):
            return
        try:
            make_rng(state)     # a Generator is returned as it is: nothing drawn
        except (TypeError, ValueError) as error:
            got = str(error).partition("; got ")[2]
            raise type(error)(f"random_state must be None, an int >= 0, a numpy RandomState or "
                              f"Generator (or what seed takes: a sequence of ints >= 0, a "
                              f"SeedSequence); got {got}") from None

    def _check_flags(self):
        """The estimator's own parameters, and gdcore.fit's that do not need the data: checked
        before validate_data, which copies X (float16, integers, a DataFrame) and checks it
        for NaN, so that a bad one is refused before that work, as gdcore.fit refuses it
        (gdcore.fit checks them all again with the data).  partial_fit relies on it for the
        settings it does not use (epochs; gtol's type only, with no data: whether gtol may
        stop a fit depends on fit's data)."""
        check_bool("warm_start", self.warm_start)
        self._check_random_state()
        seed = self.random_state if self.random_state is not None else self.seed
        # a RandomState is drawn from at each fit: not here, where it would be drawn twice
        prepare_run(0, 1, np.float64, optimizer=self.optimizer, lr=self.lr, epochs=self.epochs,
                    batch_size=self.batch_size, schedule=self.schedule, l2=self.l2, l1=self.l1,
                    fit_intercept=self.fit_intercept, tol=self.tol,
                    n_iter_no_change=self.n_iter_no_change, gtol=self.gtol,
                    shuffle=self.shuffle,
                    seed=None if isinstance(seed, np.random.RandomState) else seed,
                    n_threads=self.n_threads, init=None, callback=None, backend="core")
        check_choice("precompute", self.precompute, (True, False, "auto"))
        # scikit-learn's verbose is an int (0: quiet); any level above 0 shows the bar
        verbose = self.verbose
        if not (isinstance(verbose, (bool, np.bool_))
                or isinstance(verbose, numbers.Integral) and verbose >= 0):
            raise TypeError(f"verbose must be True, False or an int >= 0 (above 0 shows a "
                            f"progress bar), got {verbose!r}")

    def fit(self, X, y, sample_weight=None):
        """Fit on (X, y); continues the previous fit when ``warm_start=True``.

        X : array-like (n, d), or a DataFrame (its column names are kept in
        ``feature_names_in_``); y : array-like (n,); sample_weight : array-like (n,) of
        weights ≥ 0, or None.  Returns self."""
        self._check_flags()
        with self._kept_on_failure():
            previous = self._previous() if self.warm_start else None
            names_before = getattr(self, "feature_names_in_", None)
            X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], y_numeric=True,
                                 reset=True)
            sample_weight = _weights(sample_weight, X)
            if previous is not None and previous.coef.shape[0] != X.shape[1]:
                # as scikit-learn's SGDRegressor refuses it: continuing a fit on other data
                # widths is almost always a mistake, and starting afresh would hide it
                raise ValueError(f"X has {X.shape[1]} features, but the previous fit that "
                                 f"warm_start=True continues had {previous.coef.shape[0]}; "
                                 "set warm_start=False to start afresh")
            if previous is not None:
                self._check_same_names(names_before)
            init = self._start(previous)
            if init is previous:
                self._check_continuable(previous, "set warm_start=False to start afresh")
            else:   # a fresh fit (from coef_ and intercept_ set by hand, if they were)
                for name in _FROM_RESULT:
                    self.__dict__.pop(name, None)
            self._run(X, y, sample_weight, init, self._options(self.epochs, full_data=True))
        if self.tol is not None and self.result_.stop_reason == "epochs":
            # as scikit-learn's iterative estimators warn when max_iter runs out
            warnings.warn(f"{type(self).__name__}: the {self.epochs} epochs ran out before the "
                          "tol rule stopped the fit; increase epochs (or lr) to converge",
                          convergence_warning_category(), stacklevel=2)
        return self

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over this chunk, continuing the optimizer state of earlier calls.

        X, y, sample_weight as in :meth:`fit` (the same columns every call).  Returns self."""
        self._check_flags()
        if isinstance(self.schedule, str) and isinstance(make_schedule(self.schedule),
                                                         (StepLR, CosineAnnealingLR)):
            # make_schedule sizes these to the run's epochs, which partial_fit does not know
            raise ValueError(f"schedule={self.schedule!r} takes its sizes from the number of "
                             "epochs, which partial_fit does not know; pass a "
                             "gdcore.schedules object with explicit sizes, e.g. "
                             "CosineAnnealingLR(T_max=...) or StepLR(step_size=...)")
        with self._kept_on_failure():
            first = not hasattr(self, "coef_")
            X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], y_numeric=True,
                                 reset=first)
            sample_weight = _weights(sample_weight, X)
            previous = None if first else self._previous()
            init = self._start(previous)
            if init is previous:
                self._check_continuable(previous, "start afresh with sklearn.base.clone(model)")
            else:   # from coef_ and intercept_ set by hand: their loss curve starts here
                for name in _FROM_RESULT:
                    self.__dict__.pop(name, None)
            # (no progress bar: a bar of one epoch a call only scrolls an online loop)
            return self._run(X, y, sample_weight, init,
                             self._options(1, full_data=False), progress=False)

    def predict(self, X):
        """X·coef_ + intercept_."""
        check_is_fitted(self)
        coef, intercept = self._parameters()
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return X @ coef.astype(X.dtype, copy=False) + X.dtype.type(intercept)

    def _parameters(self, what="coef_"):
        """coef_ and intercept_, checked, as predict, save_model and a warm start use them:
        they may have been set by hand (a list was an AttributeError, intercept_=None NaN
        predictions, "1" read as 1.0).  ``what`` begins the message about coef_."""
        d = self.n_features_in_
        coef, intercept = getattr(self, "coef_", None), getattr(self, "intercept_", None)
        try:
            values = np.asarray(coef)
        except (TypeError, ValueError):
            values = np.empty(0, dtype=object)
        if not (values.dtype.kind in "iuf" and values.shape == (d,)
                and np.all(np.isfinite(values))):
            raise ValueError(f"{what} must be {d} finite numbers, one a feature, got {coef!r}")
        return values, check_float("intercept_", intercept, low=-np.inf)


def _weights(sample_weight, X):
    """scikit-learn's checks of sample_weight, in float64 whatever X's dtype: gdcore.fit then
    refuses a positive weight that float32 would make 0, instead of fitting without its row."""
    if sample_weight is None:
        return None
    return _check_sample_weight(sample_weight, X, dtype=np.float64)
