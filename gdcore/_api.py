"""gdcore.fit: validate, pick the optimizer and schedule, run a backend, package the result."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from functools import partial

import numpy as np

from . import _core, _reference
from ._precompute import (augmented_gram, check_gram, check_gram_fits_in_memory, gram_is_cheaper,
                          gram_is_finite)
from ._progress import FIT_ENDED
from ._result import (DivergenceError, FitProgress, FitResult, FitState, LossHistory,
                      convergence_warning_category, rng_states_equal)
from ._validation import (callback_says_stop, check_callback, check_choice, check_data,
                          check_settings, feature_names_of, finite_float, make_rng,
                          resolve_n_threads)
from .optim import make_optimizer
from .schedules import make_schedule

__all__ = ["fit"]

BACKENDS = ("core", "numpy")
_STOP_NAMES = {0: "epochs", 1: "tol", 2: "gtol", 3: "callback"}


def fit(X, y, *, sample_weight=None, optimizer=None, lr=None, epochs=100, batch_size=None,
        schedule=None, l2=0.0, l1=0.0, fit_intercept=True, tol=1e-4, n_iter_no_change=5,
        gtol=None, shuffle=True, seed=None, n_threads=None, backend="core", init=None,
        callback=None, precompute="auto"):
    """Fit linear regression y ≈ X·w + b by gradient-based optimisation.

    Minimises  J(w, b) = 1/(2S)·Σ sᵢ(xᵢ·w + b − yᵢ)² + (l2/2)·‖w‖² + l1·‖w‖₁,  S = Σ sᵢ.

    Parameters
    ----------
    X : array (n, d); y : array (n,) or a column (n, 1); sample_weight : array (n,) of
        sᵢ ≥ 0, or None (all 1).  A DataFrame's (or pyarrow Table's) string column names
        are kept as the result's feature_names, by which its predict takes columns.
    optimizer : name ("sgd"/"gd", "momentum", "nesterov", "adagrad", "rmsprop", "adam",
        "amsgrad", "normalized") or a ``gdcore.optim`` object.  Default "sgd", or the
        optimizer of ``init`` when continuing a FitResult.
    lr : learning rate overriding the optimizer's (otherwise its default: torch.optim's,
         but SGD's is 0.01; torch's SGD has 1e-3 since 2.2).
    epochs : passes over the data.  batch_size : None (or ≥ n) for full batch; else one update
        per batch of a fresh permutation each epoch (``shuffle=False``: rows in order).
    schedule : name or ``gdcore.schedules`` object; default "constant" (or init's schedule).
    l2, l1 : penalties on w (never b); l1 only with SGD-family optimizers (proximal step).
    tol, n_iter_no_change : stop when the epoch loss has not gone below best − tol for
        n_iter_no_change epochs in a row; ``tol=None`` turns this off.
    gtol : full batch only: stop when ‖∇J‖∞ ≤ gtol.
    seed : seed of ``numpy.random.default_rng`` for shuffling.
    n_threads : None (OpenMP default), -1 (all cores) or k ≥ 1.
    backend : "core" (compiled) or "numpy" (the plain reference of the same contract).
    init : a FitResult to continue exactly where it stopped (optimizer state, counters,
        schedule position and random stream included), or initial parameters as ``coef``
        (d,) or a pair ``(coef, intercept)``.
    callback : called after each epoch with a :class:`FitProgress`; returning True stops the
        fit (stop_reason "callback").
    precompute : full batch only. True: one pass forms the means and centred Gram matrix of
        (X, y) (weighted; see gdcore/_precompute.py), after which each epoch costs O(d²)
        whatever n is, with the same loss and gradient up to rounding; False: every epoch
        streams X; "auto": Gram mode when it is cheaper (many epochs relative to d).
        Mini-batch fits always stream.

    Returns
    -------
    FitResult.  Raises DivergenceError (with ``.result``) if the loss or the parameters stop
    being finite; on Ctrl-C raises KeyboardInterrupt with ``.result`` holding the parameters
    of the last finished update.
    """
    checked = {}

    def check_settings_first(n, d, dtype):
        check_choice("backend", backend, BACKENDS)
        checked["run"] = run = prepare_run(
            n, d, dtype, optimizer=optimizer, lr=lr, epochs=epochs, batch_size=batch_size,
            schedule=schedule, l2=l2, l1=l1, fit_intercept=fit_intercept, tol=tol,
            n_iter_no_change=n_iter_no_change, gtol=gtol, shuffle=shuffle, seed=seed,
            n_threads=n_threads, init=init, callback=callback, backend=backend)
        checked["use_gram"] = _check_precompute(precompute, run.settings, n, d, backend)
    # n_threads bounds the core's threads, the data's NaN/inf check included (Gram mode's BLAS
    # products run on BLAS's own threads: README, n_threads)
    problem = check_data(X, y, sample_weight, n_threads=resolve_n_threads(n_threads),
                         shapes_known=check_settings_first)
    run, use_gram = checked["run"], checked["use_gram"]
    name_features(run, feature_names_of(X))

    def execute(run):
        if backend == "numpy":
            return _reference.run(problem, run.state, run.opt, run.sched, run.settings,
                                  run.rng, run.on_epoch)
        gram = (augmented_gram(problem.X, problem.y, problem.sample_weight) if use_gram
                else None)
        if gram is not None and not gram_is_finite(gram):
            if precompute is True:
                check_gram(gram)
            gram = None         # "auto" is a choice of speed: stream instead
        return _run_core(problem, run.state, run.opt, run.sched, run.settings, run.rng,
                         run.on_epoch, run.n_threads, gram)
    return finish_run(run, execute)


@dataclass
class Run:
    """A validated fit about to run: what both backends, fit_chunks and gdcore.dask share."""

    settings: object
    opt: object
    sched: object
    state: FitState
    rng: np.random.Generator
    on_epoch: object
    n_threads: int
    d: int
    backend: str
    dtype: np.dtype
    rng_start: dict = None      # rng's state as the run began: a changed one has been drawn from
    on_end: object = None       # called with the FitResult however the run ends (FIT_ENDED)
    feature_names: list = None  # X's column names (name_features), kept by the result


def name_features(run, names):
    """Give the run X's column names (feature_names_of: None when X has none).  A fit that
    continues a named one must have its columns, in its order: its coefficients belong to
    those names (by position they would be fitted to other columns, unremarked)."""
    before = run.feature_names
    if names is None:
        return      # an array: its columns are the earlier fit's, by position
    if before is not None and names != before:
        from ._io import _shown
        # the first difference: two long lists, each shown as its ends, can look the same
        at = next((k for k, (a, b) in enumerate(zip(before, names)) if a != b), None)
        where = "" if at is None else f" (column {at} is {names[at]!r}, was {before[at]!r})"
        raise ValueError(f"init: the fit continued had X's columns {_shown(before)}, this X "
                         f"has {_shown(names)}{where}: pass X[init.feature_names] (or an "
                         "array of those columns in that order), or start afresh without init")
    run.feature_names = names


def prepare_run(n, d, dtype, *, optimizer, lr, epochs, batch_size, schedule, l2, l1,
                fit_intercept, tol, n_iter_no_change, gtol, shuffle, seed, n_threads, init,
                callback, backend):
    """Validate everything but the data and build the starting state."""
    settings = check_settings(epochs=epochs, batch_size=batch_size, l2=l2, l1=l1,
                              fit_intercept=fit_intercept, tol=tol,
                              n_iter_no_change=n_iter_no_change, gtol=gtol, shuffle=shuffle,
                              n=n)
    previous = init if isinstance(init, FitResult) else None
    if optimizer is None:
        optimizer = previous.optimizer if previous is not None else "sgd"
    opt = make_optimizer(optimizer, lr)
    if schedule is None:
        schedule = previous.schedule if previous is not None else "constant"
    if settings.l1 > 0 and not opt.allows_l1:
        raise ValueError(f"l1 > 0 needs an SGD-family optimizer (sgd, momentum, nesterov); "
                         f"got {type(opt).__name__}. Use l2, or optimizer='sgd'")
    n_threads = resolve_n_threads(n_threads)
    callback = check_callback(callback)
    state = _initial_state(init, opt, d, dtype, settings.fit_intercept)
    # a name sized to a run ("step", "cosine") given to a continuation is sized to the whole
    # run, whose epochs count on from the earlier fit's: "cosine" still ends at 0
    sched = make_schedule(schedule, state.n_epochs + settings.epochs)
    rng = make_rng(seed)
    if state.rng_state is not None and (state.rng_drawn or seed is None):
        # the continued fit's own stream, in a generator of its own: a Generator passed as
        # seed (ignored when continuing a fit that has shuffled) is left as it was.  Until
        # a permutation has been drawn (full-batch or shuffle=False fits), a seed given to
        # the continuation is the one its shuffles follow
        kind = getattr(np.random, str(state.rng_state.get("bit_generator")), None)
        if not (isinstance(kind, type) and issubclass(kind, np.random.BitGenerator)):
            kind = type(rng.bit_generator)      # another package's: its own kind
        rng = np.random.Generator(kind())
        rng.bit_generator.state = state.rng_state
    run = Run(settings, opt, sched, state, rng, None, n_threads, d, backend, np.dtype(dtype),
              rng.bit_generator.state,
              feature_names=None if previous is None else previous.feature_names)
    run.on_epoch = None if callback is None else _epoch_reporter(callback, run)
    # looked up in the callback's own attributes: a Mock would make one up on getattr
    run.on_end = getattr(callback, "__dict__", {}).get(FIT_ENDED)
    return run


def finish_run(run, execute):
    """Call ``execute(run) -> (stop_reason, status)`` and turn its outcome into a FitResult,
    a DivergenceError, or a KeyboardInterrupt carrying the partial result."""
    state, opt = run.state, run.opt
    started = time.perf_counter()
    earlier_epochs, earlier_updates = len(state.loss_history), state.n_updates
    first_epoch = state.n_epochs    # the epochs before this call (a continued fit's)

    def result(stop_reason, keep_state=True):
        made = _result(run, state, stop_reason, time.perf_counter() - started,
                       keep_state=keep_state)
        if run.on_end is not None:
            run.on_end(made, first_epoch)   # a progress bar's record of how the fit ended
        return made
    try:
        stop_reason, status = execute(run)
    except KeyboardInterrupt as interrupt:
        state.rng_state, state.rng_drawn = _rng_record(run, state)
        interrupt.result = result("interrupted")
        raise
    state.rng_state, state.rng_drawn = _rng_record(run, state)
    if stop_reason == "diverged":
        epoch = state.n_epochs + 1
        before_any_update = state.n_updates == earlier_updates
        earlier = state.loss_history[:earlier_epochs]
        if before_any_update and status in (_reference.STATUS_LOSS_NOT_FINITE,
                                            _reference.STATUS_GRAD_NOT_FINITE) \
                and _was_diverging(earlier):
            # a continuation of a fit whose loss was rising: its updates brought θ here (the
            # data may be fine), so a smaller lr for that fit is what helps
            what = ("the loss" if status == _reference.STATUS_LOSS_NOT_FINITE
                    else "the gradient")
            message = (f"{what} is not finite at the parameters the continued fit ended with "
                       f"(epoch {epoch}, before any update of this call): that fit was "
                       f"diverging (its loss rose from {float(np.min(earlier)):.6g} to "
                       f"{float(earlier[-1]):.6g}); fit again with a smaller lr (e.g. "
                       f"{opt.lr / 10:g}) or standardise X")
        elif status == _reference.STATUS_LOSS_NOT_FINITE and before_any_update:
            # no update was made: the data (or init) overflow, whatever the learning rate
            message = (f"the loss is not finite at the starting parameters (epoch {epoch}, "
                       f"before any update): the squared residuals overflow {run.dtype}, so "
                       "no learning rate can help; rescale y (and X)")
        elif status == _reference.STATUS_GRAD_NOT_FINITE and before_any_update:
            # the gradient the first update took overflowed, whatever the learning rate
            message = (f"the gradient is not finite at the starting parameters (epoch "
                       f"{epoch}, before any update): the loss is finite but Σ sᵢrᵢxᵢ "
                       f"overflows {run.dtype}, so no learning rate can help; rescale X and y")
        else:
            what = ("the loss" if status == _reference.STATUS_LOSS_NOT_FINITE
                    else "the parameters")
            message = (f"{what} stopped being finite in epoch {epoch} (lr={opt.lr:g}, "
                       f"{type(opt).__name__}); try a smaller lr (e.g. {opt.lr / 10:g}) or "
                       "standardise X")
        raise DivergenceError(message + ". The last finite parameters are in .result",
                              result=result("diverged", False), epoch=epoch)
    outcome = result(stop_reason)
    losses = state.loss_history[earlier_epochs:]
    if stop_reason == "tol" and _unsettled(losses, state.best_loss, run.settings.tol):
        outcome.converged = False
        how = (f"rose to {losses[-1]:.6g}, above where this fit began ({losses[0]:.6g})"
               if losses[-1] > losses[0] else
               f"ended at {losses[-1]:.6g}, more than twice its best ({state.best_loss:.6g})")
        warnings.warn(
            f"the tol rule stopped the fit at epoch {state.n_epochs}, but its loss {how}: it "
            f"did not converge (lr={opt.lr:g}, {type(opt).__name__}); try a smaller lr "
            f"(e.g. {opt.lr / 10:g}), a decaying schedule, or standardise X",
            convergence_warning_category(), stacklevel=3)
    return outcome


def _rng_record(run, state):
    """(rng_state, rng_drawn) of the run's generator as it stands now."""
    now = run.rng.bit_generator.state
    return now, bool(state.rng_drawn or not rng_states_equal(run.rng_start, now))


def _was_diverging(losses):
    """Whether a continued fit's losses ended above twice their lowest: its updates were
    carrying θ away (the parameters it ended with, not the data, overflow the next epoch)."""
    return bool(len(losses) > 1 and float(losses[-1]) > 2.0 * float(np.min(losses)))


def _unsettled(losses, best_loss, tol):
    """Whether the last of this call's losses is above 2·best_loss + tol: the tol rule stopped
    a loss that grew or swings, not one that settled (see ConvergenceWarning)."""
    return bool(len(losses) > 0 and losses[-1] > 2.0 * best_loss + tol)


def _check_precompute(precompute, settings, n, d, backend="core"):
    """Whether this fit runs in Gram mode (the core's: backend="numpy" streams X whatever
    precompute says, and forms no Gram matrix whose size to check)."""
    precompute = check_choice("precompute", precompute, (True, False, "auto"))
    full_batch = settings.full_batch(n)
    if precompute is True and not full_batch:
        raise ValueError(f"precompute=True needs a full-batch fit (batch_size=None); got "
                         f"batch_size={settings.batch_size} < n_samples={n}")
    if precompute == "auto":
        return full_batch and gram_is_cheaper(n, d, settings.epochs)
    if precompute and backend != "numpy":
        check_gram_fits_in_memory(d)
    return bool(precompute)


def _initial_state(init, opt, d, dtype, fit_intercept):
    """A fresh FitState, or a copy of the one carried by ``init``."""
    theta = np.zeros(d + 1, dtype=dtype)
    if init is None:
        pass
    elif isinstance(init, FitResult):
        if init.state is None:
            raise ValueError("init: this FitResult cannot be continued (it comes from a "
                             "diverged fit); pass init=(result.coef, result.intercept) instead")
        if init.state.theta.shape[0] != d + 1:
            raise ValueError(f"init: the FitResult has {init.state.theta.shape[0] - 1} "
                             f"coefficients but X has {d} features")
        if type(init.optimizer) is not type(opt):
            raise ValueError(f"init: the FitResult was fitted with {type(init.optimizer).__name__}"
                             f" and cannot continue with {type(opt).__name__}; pass "
                             "init=(result.coef, result.intercept) to start afresh from its "
                             "parameters")
        if init.settings.get("fit_intercept", fit_intercept) != fit_intercept:
            raise ValueError("init: the FitResult was fitted with fit_intercept="
                             f"{init.settings['fit_intercept']}, this fit has "
                             f"fit_intercept={fit_intercept}")
        state = init.state.copy()
        if _tol_rule_fired(init):
            # asked to go on after the rule stopped it, the fit gets n_iter_no_change more
            # epochs to improve (as a warm-started scikit-learn estimator does), not one;
            # also from a checkpoint() of the epoch the rule stopped at, whose stop_reason
            # is "interrupted" but whose counter is the one the rule stopped on
            state.n_no_improvement = 0
        state.theta = _cast_finite(state.theta, dtype, "coef and intercept")
        state.optimizer_state = _cast_finite(state.optimizer_state, dtype,
                                             "optimizer state")
        return state
    else:
        _refuse_a_saved_model(init)
        # (coef, intercept) as a tuple, or as a list whose first item is the coef vector
        if (isinstance(init, tuple) and len(init) == 2) or (
                isinstance(init, list) and len(init) == 2 and np.ndim(init[0]) == 1):
            coef, intercept = init
        else:
            coef, intercept = init, 0.0
        if isinstance(coef, np.ma.MaskedArray) and np.ma.getmaskarray(coef).any():
            # np.asarray drops the mask: the values under it would be the start
            raise ValueError("init: coef is a masked array with masked entries; pass every "
                             "coefficient (coef.filled(...))")
        try:
            coef = np.asarray(coef)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"init: coef must be an array of {d} numbers, or init a pair "
                            f"(coef, intercept); could not read it ({exc})") from None
        if coef.dtype.kind not in "iuf":
            raise TypeError(f"init: coef must be real numbers, got dtype {coef.dtype}")
        if coef.shape != (d,):
            raise ValueError(f"init: coef must have shape ({d},) to match X's {d} features, "
                             f"got shape {coef.shape}")
        # float() would read a string (a 0-d string array and a bytearray too) and a bool
        if isinstance(intercept, (str, bytes, bytearray, bool, np.bool_)) or (
                isinstance(intercept, (np.ndarray, np.generic))
                and intercept.dtype.kind not in "iuf"):
            raise TypeError(f"init: intercept must be a number, got {intercept!r}")
        try:
            intercept = finite_float("init: intercept", intercept)
        except TypeError:
            raise TypeError(f"init: intercept must be a number, got {intercept!r}") from None
        if not np.all(np.isfinite(coef)):
            raise ValueError("init: coef must be finite")
        largest = np.finfo(dtype).max
        if np.any(np.abs(coef) > largest) or abs(intercept) > largest:
            raise ValueError(f"init: coef and intercept must fit in {np.dtype(dtype)} (X's "
                             f"dtype, largest {largest:.4g})")
        if not fit_intercept and intercept != 0.0:
            raise ValueError("init: intercept must be 0 when fit_intercept=False")
        theta[:d] = coef
        theta[d] = intercept
    optimizer_state = np.zeros((3, d + 1), dtype=dtype)
    for row, values in zip(optimizer_state, opt.initial_state(d + 1)):
        row[:] = values
    return FitState(theta=theta, optimizer_state=optimizer_state)


def _refuse_a_saved_model(init):
    """A TypeError for a model from load_model, which NumPy would read as an object array."""
    from ._model_io import SavedModel
    if isinstance(init, SavedModel):
        raise TypeError("init: a model from load_model keeps no optimizer state to continue; "
                        "pass init=(model.coef, model.intercept) to start afresh from its "
                        "parameters" + ("" if init.mean is None else
                                        ", fitting X standardised as the model was, "
                                        "(X - model.mean) / model.scale"))


def _tol_rule_fired(result):
    """Whether ``result``'s tol rule had reached its stop: its counter at its fit's
    n_iter_no_change (a result the rule stopped, stop_reason "tol", or a checkpoint() of
    that epoch)."""
    settings = result.settings or {}
    patience = settings.get("n_iter_no_change")
    return (settings.get("tol") is not None and patience is not None
            and result.state.n_no_improvement >= patience)


def _cast_finite(values, dtype, what):
    """values (a FitResult's state) in dtype; a ValueError if a finite value overflows it (a
    float64 fit continued on float32 data)."""
    with np.errstate(over="ignore"):
        cast = values.astype(dtype)
    if not np.array_equal(np.isfinite(cast), np.isfinite(values)):
        largest = np.finfo(dtype).max
        raise ValueError(f"init: the FitResult's {what} must fit in {np.dtype(dtype)} (X's "
                         f"dtype, largest {largest:.4g}); continue it on {values.dtype} data, "
                         "or start afresh from init=(coef, intercept)")
    return cast


def _epoch_reporter(callback, run):
    """The per-epoch hook both backends call: wraps the user's callback."""
    state, d = run.state, run.d

    def on_epoch(loss):
        theta = state.theta
        epoch = _live_state(state, False).n_epochs
        progress = FitProgress(epoch=epoch, loss=float(loss), coef=theta[:d].copy(),
                               intercept=float(theta[d]), checkpoint=partial(_checkpoint, run,
                                                                             epoch))
        return callback_says_stop(callback(progress))
    return on_epoch


def _live_state(state, with_history=True):
    """The fit's state as of now, including what the compiled loop holds in its own arrays
    during a run (counters, best loss, loss history)."""
    live = getattr(state, "_live", None)
    if live is None:
        return state
    counters, best_loss, stretches = live
    snapshot = FitState(state.theta, state.optimizer_state, int(counters[0]), int(counters[1]),
                        float(best_loss[0]), int(counters[2]), state.rng_state,
                        state.loss_history, state.rng_drawn)
    if with_history:
        snapshot.loss_history = state.loss_history.copy()
        snapshot.loss_history.set_tail(len(state.loss_history),
                                       _losses_run(stretches, snapshot.n_epochs))
    return snapshot


def _settle(state, counters, best_loss, stretches, earlier):
    """Set the state from what the compiled loop left in counters, best_loss and the history
    stretches (loss_history keeps its first ``earlier`` entries).  Idempotent, and done again
    if a KeyboardInterrupt (a second Ctrl-C) lands in it, so the state is never left half set;
    that interrupt is raised once it is done."""
    interrupt = None
    while True:
        try:
            state.loss_history.set_tail(earlier, _losses_run(stretches, int(counters[1])))
            state.n_updates, state.n_epochs, state.n_no_improvement = (int(c) for c in counters)
            state.best_loss = float(best_loss[0])
            state.__dict__.pop("_live", None)
            break
        except KeyboardInterrupt as again:
            interrupt = again
    if interrupt is not None:
        raise interrupt


def _losses_run(stretches, n_epochs):
    """The losses the compiled loop has written so far, as views of its buffers in order:
    stretches is a list of (first epoch, history buffer), n_epochs the epoch counter it has
    reached."""
    return [history[:max(0, min(len(history), n_epochs - first_epoch))]
            for first_epoch, history in stretches]


def _checkpoint(run, epoch, with_history=True):
    """A FitResult of the fit as it stands at the end of epoch ``epoch``, the current one (a
    copy), from which ``fit(..., init=checkpoint)`` continues exactly.  with_history=False
    skips copying the loss history (O(epochs)); the caller then fills it in."""
    live = _live_state(run.state, with_history)
    if live.n_epochs != epoch:
        # the fit has moved on: its state is no longer that epoch's
        raise RuntimeError(f"checkpoint() of epoch {epoch} was called at epoch "
                           f"{live.n_epochs}: call it during that epoch's callback (keep the "
                           "FitResult it returns, not the FitProgress)")
    rng_state, rng_drawn = _rng_record(run, live)
    snapshot = FitState(live.theta.copy(), live.optimizer_state.copy(), live.n_updates,
                        live.n_epochs, live.best_loss, live.n_no_improvement, rng_state,
                        live.loss_history.copy() if with_history else LossHistory(), rng_drawn)
    return _result(run, snapshot, "interrupted", 0.0)


# The core writes one loss per epoch into a history buffer of this many epochs at most, and
# a longer fit runs in stretches of it (epochs=10**11 with tol must not allocate 745 GiB).
HISTORY_STRETCH = 1 << 16


def _run_core(problem, state, opt, sched, settings, rng, on_epoch, n_threads, gram=None):
    """Run the compiled loop on ``state`` in place; returns (stop_reason, status)."""
    counters = np.array([state.n_updates, state.n_epochs, state.n_no_improvement],
                        dtype=np.int64)
    best_loss = np.array([state.best_loss], dtype=np.float64)
    empty = np.empty(0, dtype=problem.dtype)
    # Each stretch's buffer is listed before the loop writes to it, and the state is only
    # set from the counters and the buffers in the finally clause: a KeyboardInterrupt that
    # lands between stretches (in this Python code) loses nothing.
    stretches, earlier = [], len(state.loss_history)
    state._live = (counters, best_loss, stretches)  # read by callbacks (_live_state)
    remaining = settings.epochs
    # Python ints of any size fit the core's C integers: a batch of n rows or more is the full
    # batch, and no counter of epochs without improvement reaches 2^62
    batch_size = min(settings.batch_size or 0, problem.n)
    n_iter_no_change = min(settings.n_iter_no_change, 1 << 62)
    try:
        while True:
            history = np.empty(min(remaining, HISTORY_STRETCH), dtype=np.float64)
            stretches.append((int(counters[1]), history))
            _, stop_code, status = _core.run_fit(
                problem.X, problem.y,
                problem.sample_weight if problem.sample_weight is not None else empty,
                state.theta, state.optimizer_state, opt._config(), sched._config(),
                len(history), batch_size, settings.l2, settings.l1,
                settings.fit_intercept, -1.0 if settings.tol is None else settings.tol,
                n_iter_no_change, -1.0 if settings.gtol is None else settings.gtol,
                settings.shuffle, rng, on_epoch, n_threads, counters, best_loss, history, gram)
            remaining = settings.epochs - (int(counters[1]) - state.n_epochs)
            if status != 0 or stop_code != 0 or remaining <= 0:
                break
    finally:
        _settle(state, counters, best_loss, stretches, earlier)
    if status != 0:
        return "diverged", status
    return _STOP_NAMES[stop_code], status


def _result(run, state, stop_reason, elapsed, keep_state=True):
    # ``state`` is the run's own (a fit copies init's state first, a checkpoint is a copy),
    # and nothing changes it once its result is made: the result keeps it, and its loss
    # history as a read-only view, with no copy of a history that may run to hundreds of MB
    # (a continuation copies the state before it runs)
    theta, d = state.theta, run.d
    history = state.loss_history.frozen_view()
    if not keep_state:
        # a copy (a diverged fit's state is not kept), read-only as every result's history
        history = history.copy()
        history.flags.writeable = False
    return FitResult(
        coef=theta[:d].copy(),
        intercept=float(theta[d]),
        loss_history=history,
        n_epochs=state.n_epochs,
        n_updates=state.n_updates,
        stop_reason=stop_reason,
        converged=stop_reason in ("tol", "gtol"),
        elapsed=elapsed,
        optimizer=run.opt,
        schedule=run.sched,
        state=state if keep_state else None,
        backend=run.backend,
        n_threads=run.n_threads,
        settings=dict(vars(run.settings)),
        feature_names=run.feature_names,
    )
