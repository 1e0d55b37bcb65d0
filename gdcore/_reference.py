"""The NumPy reference backend (``backend="numpy"``): SPEC, line for line.

This exists to verify the compiled core, so it is written for clarity, not speed, and
shares nothing with the Cython path but input validation.  It follows the same contract
(data loop, updates, schedules, stopping, divergence) and mutates the same FitState.
"""

from __future__ import annotations

import contextlib
import signal
import threading

import numpy as np

from . import optim as _optim

STATUS_OK, STATUS_LOSS_NOT_FINITE, STATUS_PARAMS_NOT_FINITE = 0, 1, 2
# the update was not finite because its gradient was not: Σ sᵢrᵢxᵢ overflowed (the core's 6)
STATUS_GRAD_NOT_FINITE = 6


def objective_and_gradient(X, y, s, w, b, l2, l1, fit_intercept):
    """J(w, b) and (∇w, ∂b) on the rows given (SPEC §1): rows in the data's dtype, J summed
    in float64 as the core sums it (see finite_in_data_precision)."""
    r = X @ w + b - y
    S = s.sum()
    sr = s * r
    r64, w64 = r.astype(np.float64, copy=False), w.astype(np.float64, copy=False)
    J = np.dot(sr.astype(np.float64, copy=False), r64) / (2 * float(S))
    # each penalty only when its weight is > 0, as the core adds them: 0·‖w‖² is NaN, not 0,
    # once ‖w‖² overflows
    if l2 > 0:
        J += (l2 / 2) * np.dot(w64, w64)
    if l1 > 0:
        J += l1 * np.abs(w64).sum()
    grad_w = X.T @ sr / S + l2 * w
    grad_b = sr.sum() / S if fit_intercept else 0.0
    return float(J), grad_w, grad_b


def finite_in_data_precision(J, dtype):
    """Whether J is finite in the data's precision: a float32 fit whose loss is past
    float32's range has diverged (its float64 sum may still be finite)."""
    return bool(np.isfinite(J)) and abs(J) <= float(np.finfo(dtype).max)


def update_failure(grad, fit_intercept):
    """Why an update left θ non-finite, as the core's update_failure tells it, given the
    update's g = (∇w, ∂b): STATUS_GRAD_NOT_FINITE if g already was (Σ sᵢrᵢxᵢ overflowed, which
    no lr helps), else STATUS_PARAMS_NOT_FINITE (the step was)."""
    moving = grad if fit_intercept else grad[:-1]
    return STATUS_PARAMS_NOT_FINITE if np.all(np.isfinite(moving)) else STATUS_GRAD_NOT_FINITE


def stationarity(grad_w, grad_b, w, l1):
    """‖∇J‖∞, with the minimum-norm subgradient of l1·‖w‖₁."""
    if l1 > 0:
        soft = np.sign(grad_w) * np.maximum(np.abs(grad_w) - l1, 0.0)
        grad_w = np.where(w != 0, grad_w + l1 * np.sign(w), soft)
    # np.maximum keeps a NaN from either side (Python's max would drop one on its right)
    return float(np.maximum(np.max(np.abs(grad_w)), abs(float(grad_b))))


def _as_float64(a):
    return np.asarray(a, dtype=np.float64)


def _norm(g):
    """‖g‖₂ in float64, scaled by max|gⱼ| when Σgⱼ² overflows (‖g‖ itself may not)."""
    g = np.asarray(g, dtype=np.float64)
    with np.errstate(over="ignore"):
        norm = float(np.sqrt(np.dot(g, g)))
    if np.isinf(norm):
        largest = float(np.max(np.abs(g)))
        norm = largest * float(np.sqrt(np.dot(g / largest, g / largest)))
    return norm


class _Update:
    """SPEC §3 on the vector θ = (w, b) (b only when the intercept is fitted)."""

    def __init__(self, opt, state_rows):
        self.opt = opt
        self.state = state_rows  # views into FitState.optimizer_state

    def step(self, theta, g, t, lr):
        """θ after one update, in float64.  As in the core, the arithmetic is float64 and
        each state vector is stored in the data's dtype and read back from it (a float32
        fit's g², or v/(1 − β₂ᵗ), may be past float32's range while θ's step is not)."""
        opt = self.opt
        f = _as_float64
        theta, g = f(theta), f(g)
        if isinstance(opt, _optim.SGD):
            if opt.momentum != 0:
                buf = self.state[0]
                if t == 1:
                    buf[:] = g
                else:
                    buf[:] = opt.momentum * f(buf) + (1 - opt.dampening) * g
                g = g + opt.momentum * f(buf) if opt.nesterov else f(buf)
            return theta - lr * g
        if isinstance(opt, _optim.Adagrad):
            G = self.state[0]
            clr = lr / (1 + (t - 1) * opt.lr_decay)
            G[:] = f(G) + g * g
            return theta - clr * g / (np.sqrt(f(G)) + opt.eps)
        if isinstance(opt, _optim.RMSprop):
            v, buf, g_avg = self.state
            alpha = opt.alpha
            v[:] = alpha * f(v) + (1 - alpha) * g * g
            if opt.centered:
                g_avg[:] = alpha * f(g_avg) + (1 - alpha) * g
                a = np.sqrt(np.maximum(f(v) - f(g_avg) * f(g_avg), 0)) + opt.eps
            else:
                a = np.sqrt(f(v)) + opt.eps
            if opt.momentum > 0:
                buf[:] = opt.momentum * f(buf) + g / a
                return theta - lr * f(buf)
            return theta - lr * g / a
        if isinstance(opt, _optim.Adam):
            m, v, v_max = self.state
            beta1, beta2 = opt.betas
            m[:] = beta1 * f(m) + (1 - beta1) * g
            v[:] = beta2 * f(v) + (1 - beta2) * g * g
            second = v
            if opt.amsgrad:
                v_max[:] = np.maximum(v_max, v)
                second = v_max
            step = f(m) / (1 - beta1 ** t)
            return theta - lr * step / (np.sqrt(f(second) / (1 - beta2 ** t)) + opt.eps)
        if isinstance(opt, _optim.NormalizedGD):
            return theta - lr * g / max(_norm(g), opt.eps)
        raise TypeError(f"unknown optimizer {opt!r}")


class InterruptGuard:
    """Ctrl-C as Python raises it, but held back inside ``with guard:`` blocks until they
    end: a state updated in several Python steps (θ, the optimizer's vectors, counters,
    history) is never left half updated, and an interrupt's .result is the last finished
    update.  ``with guard.installed():`` puts the handler in place for a run (in the main
    thread, where SIGINT is handled, and only over Python's own handler); a block is then
    two attribute updates, not two signal.signal calls."""

    def __init__(self):
        self._depth = 0
        self._pending = False
        self._thread = None     # the thread whose runs it holds Ctrl-C back for, once installed

    @contextlib.contextmanager
    def installed(self):
        """Yields the guard whose blocks to use: this one, or the one a fit further out
        (whose callback runs this fit) installed, so that nested runs share one.  Only in its
        own thread: a fit in another thread at the same time (never sent Ctrl-C) gets a guard
        of its own, whose blocks must not hold back, and then raise in that thread, the
        interrupt meant for this one."""
        current = signal.getsignal(signal.SIGINT)
        outer = getattr(current, "__self__", None)
        if isinstance(outer, InterruptGuard) and outer._thread is threading.current_thread():
            yield outer
            return
        if (threading.current_thread() is not threading.main_thread()
                or current is not signal.default_int_handler):
            yield self      # no handler of ours: blocks hold nothing back
            return
        signal.signal(signal.SIGINT, self._on_sigint)
        self._thread = threading.current_thread()
        try:
            yield self
        finally:
            # (a handler the caller installed meanwhile, in a callback, stays)
            if signal.getsignal(signal.SIGINT) == self._on_sigint:
                signal.signal(signal.SIGINT, signal.default_int_handler)

    def _on_sigint(self, signum, frame):
        if self._depth:
            self._pending = True
        else:
            signal.default_int_handler(signum, frame)

    def __enter__(self):
        self._depth += 1
        return self

    def __exit__(self, kind, value, traceback):
        self._depth -= 1
        if self._depth == 0 and self._pending:
            self._pending = False
            if kind is None:
                raise KeyboardInterrupt
        return False


def run(problem, state, opt, schedule, settings, rng, on_epoch):
    """Run up to settings.epochs epochs from ``state``, in place (see gdcore._api).

    Returns (stop_reason, status)."""
    with InterruptGuard().installed() as guard:
        return _epochs(problem, state, opt, schedule, settings, rng, on_epoch, guard)


def _epochs(problem, state, opt, schedule, settings, rng, on_epoch, guard):
    """run's loop, with Ctrl-C held back by ``guard`` while the state moves."""
    X, y = problem.X, problem.y
    n, d = X.shape
    dtype = X.dtype
    s = problem.sample_weight if problem.sample_weight is not None else np.ones(n, dtype)
    fit_intercept = settings.fit_intercept
    m = d + 1 if fit_intercept else d  # entries of θ that move
    update = _Update(opt, [row[:m] for row in state.optimizer_state])
    l1_prox = settings.l1 > 0 and isinstance(opt, _optim.SGD)

    def evaluate(rows):
        """J and g = (∇w, ∂b) at the current θ on the given rows."""
        theta = state.theta
        w, b = theta[:d], theta[d]
        J, grad_w, grad_b = objective_and_gradient(X[rows], y[rows], s[rows], w, b,
                                                   settings.l2, settings.l1, fit_intercept)
        return J, np.append(grad_w, grad_b).astype(dtype)

    def apply(g, lr):
        t = state.n_updates + 1
        with guard:     # θ, the optimizer's vectors and t move together
            new = state.theta.copy()
            new[:m] = update.step(state.theta[:m], g[:m], t, lr).astype(dtype)
            if l1_prox:
                w = new[:d]
                new[:d] = np.sign(w) * np.maximum(np.abs(w) - lr * settings.l1, 0)
            if not np.all(np.isfinite(new)):
                return update_failure(g, fit_intercept)
            state.theta[:] = new
            state.n_updates = t
        return STATUS_OK

    for _ in range(settings.epochs):
        epoch = state.n_epochs  # 0-based index of this epoch
        gtol_reached = False
        # a full-batch epoch's update and its bookkeeping are one step for Ctrl-C (the core's
        # full-batch fits are interrupted between epochs too)
        hold = contextlib.ExitStack()
        with hold, np.errstate(all="ignore"):
            if settings.full_batch(n):
                J, g = evaluate(slice(None))
                if not finite_in_data_precision(J, dtype):
                    return "diverged", STATUS_LOSS_NOT_FINITE
                epoch_loss = J
                if settings.gtol is not None and stationarity(
                        g[:d], g[d], state.theta[:d], settings.l1) <= settings.gtol:
                    gtol_reached = True
                else:
                    lr = schedule.lr_at(opt.lr, epoch, state.n_updates + 1)
                    hold.enter_context(guard)
                    status = apply(g, lr)
                    if status != STATUS_OK:
                        return "diverged", status
            else:
                perm = rng.permutation(n) if settings.shuffle else np.arange(n)
                losses = []
                for start in range(0, n, settings.batch_size):
                    rows = perm[start:start + settings.batch_size]
                    if s[rows].sum() <= 0:  # no defined gradient: the batch is skipped
                        continue
                    J, g = evaluate(rows)
                    if not finite_in_data_precision(J, dtype):
                        return "diverged", STATUS_LOSS_NOT_FINITE
                    lr = schedule.lr_at(opt.lr, epoch, state.n_updates + 1)
                    status = apply(g, lr)
                    if status != STATUS_OK:
                        return "diverged", status
                    losses.append(J)
                epoch_loss = float(np.mean(losses))
                if not finite_in_data_precision(epoch_loss, dtype):
                    # every batch's J was finite but their sum overflowed (J near the
                    # dtype's largest value): the epoch's loss is not finite (SPEC §5)
                    return "diverged", STATUS_LOSS_NOT_FINITE
            with guard:     # the epoch's loss, count and tol rule together
                state.loss_history.append(epoch_loss)
                state.n_epochs += 1
                stop = stop_after_epoch(state, epoch_loss, settings, gtol_reached)
        if on_epoch is not None and on_epoch(epoch_loss) and stop is None:
            stop = "callback"
        if stop is not None:
            return stop, STATUS_OK
    return "epochs", STATUS_OK


def stop_after_epoch(state, loss, settings, gtol_reached):
    """SPEC §5 after an epoch: "gtol", "tol" (scikit-learn's rule: the loss has not gone below
    best_loss − tol for n_iter_no_change epochs in a row; a loss equal to best_loss − tol has
    not gone below it, where scikit-learn's test counts it as an improvement) or None."""
    if settings.tol is not None:
        if loss >= state.best_loss - settings.tol:
            state.n_no_improvement += 1
        else:
            state.n_no_improvement = 0
        state.best_loss = min(state.best_loss, loss)
    if gtol_reached:
        return "gtol"
    if settings.tol is not None and state.n_no_improvement >= settings.n_iter_no_change:
        return "tol"
    return None


__all__ = ["run", "objective_and_gradient", "stationarity", "stop_after_epoch"]
