"""Stop reasons, divergence, continuing a fit with init=, callbacks."""

import numpy as np
import pytest

import gdcore
from gdcore.schedules import StepLR

from conftest import problem

BACKENDS = ["core", "numpy"]


def sklearn_tol_rule(losses, tol, patience):
    """The number of epochs SPEC §5's rule runs on this loss sequence: scikit-learn's, with a
    loss equal to best − tol counted as not below it (scikit-learn's ``>`` counts it as an
    improvement; the two differ only at such exact ties)."""
    best, count = np.inf, 0
    for epoch, loss in enumerate(losses, start=1):
        count = count + 1 if loss >= best - tol else 0
        best = min(best, loss)
        if count >= patience:
            return epoch
    return len(losses)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch_size", [None, 10])
def test_tol_rule_is_scikit_learns(backend, batch_size):
    X, y, _ = problem(n=60, d=4, noise=0.5)
    options = dict(optimizer="sgd", lr=0.05, batch_size=batch_size, seed=0, backend=backend)
    free = gdcore.fit(X, y, epochs=300, tol=None, **options)
    stopped = gdcore.fit(X, y, epochs=300, tol=1e-3, n_iter_no_change=4, **options)
    expected = sklearn_tol_rule(free.loss_history, 1e-3, 4)
    assert expected < 300  # the rule does fire on this problem
    assert stopped.n_epochs == expected
    assert stopped.stop_reason == "tol" and stopped.converged
    np.testing.assert_array_equal(stopped.loss_history, free.loss_history[:expected])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("precompute", [False, True])
def test_tol_rule_at_an_exact_tie(backend, precompute):
    """X = 0, y = 4, lr = 0.5: b goes 0, 2, 3, 3.5, ..., so the epoch losses J = (b − 4)²/2 are
    8, 2, 0.5, 0.125, ... exactly.  With tol = 1.5, epoch 3's 0.5 equals best − tol = 2 − 1.5:
    it has not gone below it (SPEC §5), the count reaches 2 at epoch 4 and the fit stops there
    (scikit-learn's strict test would count epoch 3 as an improvement and stop at epoch 5)."""
    X, y = np.zeros((8, 1)), np.full(8, 4.0)
    result = gdcore.fit(X, y, optimizer="sgd", lr=0.5, epochs=20, tol=1.5, n_iter_no_change=2,
                        backend=backend, precompute=precompute)
    assert list(result.loss_history) == [8.0, 2.0, 0.5, 0.125]
    assert result.stop_reason == "tol" and result.n_epochs == 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_fit_the_tol_rule_stopped_continues_for_n_iter_no_change_epochs(backend):
    """The problem above stops at epoch 4 (best 0.5, count 2).  Continued, its counter starts
    afresh (the best loss carries over): 0.03125 and 0.0078125 are not below 0.125 − 1.5, so
    it stops again after n_iter_no_change = 2 epochs, not after one."""
    X, y = np.zeros((8, 1)), np.full(8, 4.0)
    options = dict(optimizer="sgd", lr=0.5, tol=1.5, n_iter_no_change=2, backend=backend)
    first = gdcore.fit(X, y, epochs=20, **options)
    assert first.stop_reason == "tol" and first.n_epochs == 4
    more = gdcore.fit(X, y, epochs=20, init=first, **options)
    assert list(more.loss_history) == [8.0, 2.0, 0.5, 0.125, 0.03125, 0.0078125]
    assert more.stop_reason == "tol" and more.n_epochs == 6


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_checkpoint_of_the_epoch_the_tol_rule_stopped_at_continues_as_the_result(backend):
    """checkpoint() of the last epoch of a fit the tol rule stopped is that fit's state: its
    continuation, like the result's, gets n_iter_no_change epochs to improve (it stopped
    after one: the checkpoint's stop_reason is "interrupted", and its counter was kept)."""
    X, y = np.zeros((8, 1)), np.full(8, 4.0)
    options = dict(optimizer="sgd", lr=0.5, tol=1.5, n_iter_no_change=2, backend=backend)
    kept = {}
    first = gdcore.fit(X, y, epochs=20, **options,
                       callback=lambda p: kept.__setitem__("last", p.checkpoint()))
    assert first.stop_reason == "tol" and kept["last"].n_epochs == first.n_epochs == 4
    from_result = gdcore.fit(X, y, epochs=20, init=first, **options)
    from_checkpoint = gdcore.fit(X, y, epochs=20, init=kept["last"], **options)
    assert from_checkpoint.n_epochs == from_result.n_epochs == 6
    np.testing.assert_array_equal(from_checkpoint.loss_history, from_result.loss_history)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tol_zero_stops_a_flat_loss(backend):
    # a loss that stays exactly where it is has not gone below best − 0
    X, y = np.zeros((8, 1)), np.zeros(8)
    result = gdcore.fit(X, y, epochs=50, tol=0.0, n_iter_no_change=3, backend=backend)
    assert result.stop_reason == "tol" and result.n_epochs == 4
    assert list(result.loss_history) == [0.0] * 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_tol_stop_of_a_growing_loss_is_not_convergence(backend):
    # lr = 3 on this problem multiplies the loss ~9-fold an epoch, finite for many epochs:
    # the tol rule stops it after n_iter_no_change epochs without improvement.
    X, y, _ = problem(n=60, d=4)
    warned = r"rose to .*\(lr=3, SGD\); try a smaller lr"
    with pytest.warns(gdcore.ConvergenceWarning, match=warned):
        r = gdcore.fit(X, y, optimizer="gd", lr=3.0, epochs=100, tol=1e-4, n_iter_no_change=5,
                       backend=backend)
    h = r.loss_history
    assert (r.stop_reason, r.converged, r.n_epochs) == ("tol", False, 6)
    assert np.all(np.isfinite(h)) and np.all(np.diff(h) > 0) and h[-1] > 1e4 * h[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_tol_stop_of_a_swinging_loss_is_not_convergence(backend):
    # Heavy-ball momentum overshoots: the rule stops it with the last loss below the first
    # but above twice the best one, a swing, not a plateau.
    X, y, _ = problem(n=60, d=4, noise=0.1)
    with pytest.warns(gdcore.ConvergenceWarning, match=r"ended at .* more than twice its best"):
        r = gdcore.fit(X, y, optimizer="momentum", lr=0.05, epochs=500, tol=1e-4,
                       backend=backend)
    h = r.loss_history
    assert h[0] > h[-1] > 2 * h.min() + 1e-4
    assert r.stop_reason == "tol" and not r.converged


@pytest.mark.parametrize("backend", BACKENDS)
def test_tol_stop_of_a_plateau_is_convergence(backend, recwarn):
    X, y, _ = problem(n=60, d=4, noise=0.1)
    r = gdcore.fit(X, y, optimizer="sgd", lr=0.05, batch_size=10, epochs=500, tol=1e-4,
                   seed=0, backend=backend)
    assert r.stop_reason == "tol" and r.converged and r.n_epochs < 500
    assert r.loss_history[-1] <= 2 * r.loss_history.min() + 1e-4
    assert not [w for w in recwarn if issubclass(w.category, gdcore.ConvergenceWarning)]


@pytest.mark.parametrize("losses, best, unsettled", [
    ([1.0, 3.0], 1.0, True),             # above 2·best + tol (and above the start)
    ([4.0, 1.0, 3.0], 1.0, True),        # above 2·best + tol, below the start
    ([1.0, 2.0], 1.0, False),            # exactly twice the best: within 2·best + tol
    ([1.0, 1.5], 1.0, False),            # above the start, not twice the best
    ([], 1.0, False),                    # no epoch ran in this call
])
def test_unsettled_by_hand(losses, best, unsettled):
    from gdcore._api import _unsettled
    assert _unsettled(losses, best, 1e-4) is unsettled


def test_init_pair_as_a_list():
    X, y, _ = problem(n=40, d=3)
    start = (np.array([0.5, -1.0, 2.0]), 0.25)
    as_tuple = gdcore.fit(X, y, init=start, epochs=3, tol=None)
    as_list = gdcore.fit(X, y, init=list(start), epochs=3, tol=None)
    np.testing.assert_array_equal(as_list.coef, as_tuple.coef)
    assert as_list.intercept == as_tuple.intercept


@pytest.mark.parametrize("backend", BACKENDS)
def test_epochs_and_gtol(backend):
    X, y, _ = problem(n=60, d=4)
    r = gdcore.fit(X, y, optimizer="gd", lr=0.5, epochs=7, tol=None, backend=backend)
    assert (r.stop_reason, r.converged, r.n_epochs, r.n_updates) == ("epochs", False, 7, 7)
    r = gdcore.fit(X, y, optimizer="gd", lr=0.5, epochs=10000, tol=None, gtol=1e-9,
                   backend=backend)
    assert r.stop_reason == "gtol" and r.converged
    # the last epoch measured the gradient and did not update
    assert r.n_updates == r.n_epochs - 1
    _, grad = gdcore._core.objective_gradient(X, y, np.empty(0), np.append(r.coef, r.intercept),
                                              0.0, 0.0, True, 1)
    assert np.max(np.abs(grad)) <= 1e-9


@pytest.mark.parametrize("backend", BACKENDS)
def test_callback_stops_and_sees_progress(backend):
    X, y, _ = problem(n=40, d=3)
    seen = []

    def callback(progress):
        seen.append(progress)
        return progress.epoch == 3
    r = gdcore.fit(X, y, epochs=50, tol=None, callback=callback, backend=backend)
    assert r.stop_reason == "callback" and not r.converged and r.n_epochs == 3
    assert [p.epoch for p in seen] == [1, 2, 3]
    assert [p.loss for p in seen] == list(r.loss_history)
    np.testing.assert_array_equal(seen[-1].coef, r.coef)
    assert isinstance(seen[0], gdcore.FitProgress)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch_size", [None, 7])
def test_divergence_keeps_last_finite_parameters(backend, batch_size):
    X, y, _ = problem(n=50, d=4)
    with pytest.raises(gdcore.DivergenceError, match=r"epoch \d+.*smaller lr") as info:
        gdcore.fit(X, y, optimizer="sgd", lr=1e3, epochs=500, tol=None,
                   batch_size=batch_size, shuffle=False, backend=backend)
    err = info.value
    res = err.result
    assert np.all(np.isfinite(res.coef)) and np.isfinite(res.intercept)
    assert np.all(np.isfinite(res.loss_history))
    assert res.state is None and res.stop_reason == "diverged"
    assert err.epoch == res.n_epochs + 1
    # Full batch: the kept parameters are those of the same fit stopped after the epochs
    # it recorded (the failing epoch's update, or its loss, was not finite).
    if batch_size is None and res.n_epochs > 0:
        before = gdcore.fit(X, y, optimizer="sgd", lr=1e3, epochs=res.n_epochs, tol=None,
                            shuffle=False, backend=backend)
        assert res.n_updates == res.n_epochs
        np.testing.assert_array_equal(res.loss_history, before.loss_history)
        np.testing.assert_array_equal(res.coef, before.coef)


@pytest.mark.parametrize("backend", BACKENDS)
def test_diverged_result_cannot_be_continued(backend):
    X, y, _ = problem(n=50, d=4)
    with pytest.raises(gdcore.DivergenceError) as info:
        gdcore.fit(X, y, optimizer="sgd", lr=1e3, epochs=500, tol=None, backend=backend)
    res = info.value.result
    with pytest.raises(ValueError, match="init"):
        gdcore.fit(X, y, init=res)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("optimizer", ["sgd", "nesterov", "adagrad", "rmsprop", "adam",
                                       "normalized"])
@pytest.mark.parametrize("batch_size", [None, 9])
def test_init_continues_exactly(backend, optimizer, batch_size):
    X, y, _ = problem(n=50, d=4)
    options = dict(optimizer=optimizer, lr=0.02, batch_size=batch_size, seed=3, tol=None,
                   schedule=StepLR(step_size=3, gamma=0.5), backend=backend)
    ten = gdcore.fit(X, y, epochs=10, **options)
    five = gdcore.fit(X, y, epochs=5, **options)
    more = gdcore.fit(X, y, epochs=5, init=five, **options)
    np.testing.assert_array_equal(more.loss_history, ten.loss_history)
    np.testing.assert_array_equal(more.coef, ten.coef)
    assert more.intercept == ten.intercept
    assert (more.n_epochs, more.n_updates) == (ten.n_epochs, ten.n_updates)
    # continuing takes the optimizer and schedule of the result by default
    implicit = gdcore.fit(X, y, epochs=5, init=five, seed=3, tol=None, batch_size=batch_size,
                          backend=backend)
    np.testing.assert_array_equal(implicit.coef, ten.coef)


def test_init_with_parameters():
    X, y, coef = problem(n=50, d=4)
    r = gdcore.fit(X, y, init=coef, epochs=1, tol=None)
    J = 0.5 * np.mean((X @ coef - y) ** 2)
    assert r.loss_history[0] == pytest.approx(J, rel=1e-13)
    r = gdcore.fit(X, y, init=(coef, 0.7), epochs=1, tol=None)
    assert r.loss_history[0] == pytest.approx(0.5 * np.mean((X @ coef + 0.7 - y) ** 2), rel=1e-13)


def test_init_result_is_not_modified():
    X, y, _ = problem(n=50, d=4)
    first = gdcore.fit(X, y, optimizer="adam", epochs=3, tol=None, batch_size=8, seed=0)
    snapshot = (first.coef.copy(), first.state.theta.copy(), first.state.optimizer_state.copy(),
                list(first.loss_history), first.state.n_updates)
    gdcore.fit(X, y, epochs=3, init=first, tol=None, batch_size=8)
    assert np.array_equal(first.coef, snapshot[0])
    assert np.array_equal(first.state.theta, snapshot[1])
    assert np.array_equal(first.state.optimizer_state, snapshot[2])
    assert list(first.loss_history) == snapshot[3] and first.state.n_updates == snapshot[4]


def test_init_with_another_optimizer_is_refused():
    X, y, _ = problem(n=30, d=3)
    first = gdcore.fit(X, y, optimizer="adam", epochs=2)
    with pytest.raises(ValueError, match="init"):
        gdcore.fit(X, y, optimizer="sgd", init=first)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch_size", [None, 9])
def test_checkpoint_from_callback_continues_exactly(backend, batch_size):
    X, y, _ = problem(n=50, d=4)
    options = dict(optimizer="adam", lr=0.02, batch_size=batch_size, seed=3, tol=None,
                   backend=backend)
    saved = {}

    def keep(progress):
        if progress.epoch == 4:
            saved["checkpoint"] = progress.checkpoint()
        return False
    gdcore.fit(X, y, epochs=7, callback=keep, **options)
    checkpoint = saved["checkpoint"]
    assert checkpoint.n_epochs == 4 and len(checkpoint.loss_history) == 4
    resumed = gdcore.fit(X, y, epochs=3, init=checkpoint, **options)
    seven = gdcore.fit(X, y, epochs=7, **options)
    np.testing.assert_array_equal(resumed.coef, seven.coef)
    np.testing.assert_array_equal(resumed.loss_history, seven.loss_history)


@pytest.mark.parametrize("batch_size", [None, 16])
def test_long_fits_run_in_history_stretches_exactly(monkeypatch, batch_size):
    """The core's loss history is allocated a stretch at a time: a fit in stretches of 3
    epochs equals the fit in one (bitwise: losses, parameters, stop, checkpoints)."""
    X, y, _ = problem(n=80, d=3, noise=0.3)
    options = dict(optimizer="adam", lr=0.05, epochs=40, batch_size=batch_size, seed=1,
                   tol=1e-4, n_iter_no_change=3, precompute=False)

    def run():
        seen = []

        def callback(progress):
            if progress.epoch in (2, 3, 7):
                seen.append(progress.checkpoint())
        return gdcore.fit(X, y, callback=callback, **options), seen
    whole, whole_seen = run()
    monkeypatch.setattr(gdcore._api, "HISTORY_STRETCH", 3)
    stretched, stretched_seen = run()
    assert 3 < stretched.n_epochs < 40      # several stretches, stopped by tol
    assert (stretched.stop_reason, stretched.n_epochs, stretched.n_updates) == \
        (whole.stop_reason, whole.n_epochs, whole.n_updates)
    np.testing.assert_array_equal(stretched.loss_history, whole.loss_history)
    np.testing.assert_array_equal(stretched.coef, whole.coef)
    # (zip's strict= needs Python 3.10; the package supports 3.9)
    assert len(stretched_seen) == len(whole_seen) >= 2
    for a, b in zip(stretched_seen, whole_seen):
        np.testing.assert_array_equal(a.loss_history, b.loss_history)
        np.testing.assert_array_equal(a.coef, b.coef)
        continued = gdcore.fit(X, y, init=a, **dict(options, epochs=4))
        upto = min(len(a.loss_history) + 2, whole.n_epochs)
        np.testing.assert_array_equal(continued.loss_history[:upto], whole.loss_history[:upto])


def test_a_huge_epoch_budget_is_not_allocated():
    X, y, _ = problem(n=60, d=3)
    r = gdcore.fit(X, y, optimizer="gd", lr=0.5, epochs=10**12, tol=1e-4)
    assert r.stop_reason == "tol" and r.n_epochs < 1000


def test_an_interrupt_between_history_stretches_loses_nothing(monkeypatch):
    """A KeyboardInterrupt can land in the Python code between two stretches of the compiled
    loop: the interrupted result still holds every epoch run, and continues exactly."""
    X, y, _ = problem(n=60, d=3)
    options = dict(optimizer="adam", lr=0.05, tol=None, precompute=False)
    whole = gdcore.fit(X, y, epochs=20, **options)
    monkeypatch.setattr(gdcore._api, "HISTORY_STRETCH", 3)
    real_run_fit, calls = gdcore._core.run_fit, []

    def run_fit_then_signal(*args):
        out = real_run_fit(*args)
        calls.append(out)
        if len(calls) == 2:          # as if SIGINT arrived just after the second stretch
            raise KeyboardInterrupt
        return out
    monkeypatch.setattr(gdcore._core, "run_fit", run_fit_then_signal)
    with pytest.raises(KeyboardInterrupt) as interrupt:
        gdcore.fit(X, y, epochs=20, **options)
    partial = interrupt.value.result
    assert partial.n_epochs == len(partial.loss_history) == 6
    np.testing.assert_array_equal(partial.loss_history, whole.loss_history[:6])
    monkeypatch.setattr(gdcore._core, "run_fit", real_run_fit)
    rest = gdcore.fit(X, y, epochs=14, init=partial, **options)
    np.testing.assert_array_equal(rest.loss_history, whole.loss_history)
    np.testing.assert_array_equal(rest.coef, whole.coef)


def test_a_second_interrupt_during_the_bookkeeping_leaves_a_whole_state(monkeypatch):
    """A Ctrl-C can also land while the state is being set from the compiled loop's arrays
    (a second Ctrl-C, or the first one just after a stretch): the state is set whole and the
    KeyboardInterrupt raised after, with every epoch run in the result."""
    X, y, _ = problem(n=60, d=3)
    options = dict(optimizer="adam", lr=0.05, tol=None, precompute=False)
    whole = gdcore.fit(X, y, epochs=9, **options)
    started = gdcore.fit(X, y, epochs=3, **options)
    real_losses_run, calls = gdcore._api._losses_run, []

    def losses_run_interrupted_once(*args):
        calls.append(args)
        losses = real_losses_run(*args)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return losses
    monkeypatch.setattr(gdcore._api, "_losses_run", losses_run_interrupted_once)
    with pytest.raises(KeyboardInterrupt) as interrupt:
        gdcore.fit(X, y, epochs=6, init=started, **options)
    assert len(calls) == 2          # done again after the interrupt
    partial = interrupt.value.result
    assert partial.n_epochs == len(partial.loss_history) == 9
    np.testing.assert_array_equal(partial.loss_history, whole.loss_history)
    np.testing.assert_array_equal(partial.coef, whole.coef)


def test_loss_history_by_hand():
    from gdcore._result import LossHistory
    history = LossHistory([1.0, 2.0])
    history.append(3.0)
    history.extend(np.arange(4.0, 40.0))         # past the first buffer: it grows
    assert len(history) == 39 and history[0] == 1.0 and history[-1] == 39.0
    np.testing.assert_array_equal(np.asarray(history), np.arange(1.0, 40.0))
    copy = history.copy()
    history[2:] = [7.0, 8.0]                     # keeps the first 2, then the values
    assert history.tolist() == [1.0, 2.0, 7.0, 8.0] and len(copy) == 39
    assert history == [1.0, 2.0, 7.0, 8.0]
    with pytest.raises(TypeError):
        history[1] = 5.0


def test_a_long_fits_history_takes_8_bytes_an_epoch():
    """A million Gram-mode epochs: the history is float64 (a list of Python floats took 4x
    the memory and 0.4 s to copy into the result at 20 million epochs)."""
    import tracemalloc
    X, y, _ = problem(n=50, d=3)
    tracemalloc.start()
    try:
        r = gdcore.fit(X, y, optimizer="adam", lr=1e-4, epochs=1_000_000, tol=None,
                       precompute=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(r.loss_history) == r.n_epochs == 1_000_000
    # the result's array, the state's buffer and the loop's stretches: ~3 x 8 MB
    assert peak < 32 * 2**20, peak


@pytest.mark.parametrize("l1", [0.0, 0.5])
def test_gradient_norm_for_gtol_by_hand_and_with_nan(l1):
    """‖∇J‖∞ as the gtol rule reads it, in the core and in the reference, against values
    worked by hand; a NaN anywhere in the gradient makes it NaN (so ‖∇J‖∞ ≤ gtol is false)
    whatever side of the maximum it is on."""
    from gdcore import _core, _reference
    w = np.array([0.0, 2.0, -1.0])
    grad = np.array([0.25, -3.0, 1.0, 0.5])         # ∇w, then ∂b
    # l1 = 0.5: w₀ = 0 soft-thresholds 0.25 to 0; w₁ > 0 gives -3 + 0.5; w₂ < 0 gives 1 - 0.5
    expected = 3.0 if l1 == 0 else 2.5
    theta = np.append(w, 0.0)
    assert _core.gradient_stationarity(grad, theta, l1, True) == expected
    assert _reference.stationarity(grad[:3], grad[3], w, l1) == expected
    for where in range(4):
        bad = grad.copy()
        bad[where] = np.nan
        assert np.isnan(_core.gradient_stationarity(bad, theta, l1, True)), where
        assert np.isnan(_reference.stationarity(bad[:3], bad[3], w, l1)), where


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_run_sized_name_on_a_continuation_is_sized_to_the_whole_run(backend):
    """"cosine" is CosineAnnealingLR(epochs) and "step" StepLR(max(1, epochs // 3), 0.5);
    given again to a continuation, the epochs are those of the whole run (the epoch count goes
    on from the first fit), so "cosine" still anneals to 0 at the run's end.  Without a
    schedule the continuation keeps the first fit's (T_max = 4: past it, the lr rises again,
    as torch's does)."""
    X, y, _ = problem(n=40, d=3)
    options = dict(optimizer="sgd", lr=0.05, tol=None, backend=backend)
    for name, field, whole in (("cosine", "T_max", 10), ("step", "step_size", 3)):
        first = gdcore.fit(X, y, epochs=4, schedule=name, **options)
        assert getattr(first.schedule, field) == {"cosine": 4, "step": 1}[name]
        again = gdcore.fit(X, y, epochs=6, init=first, schedule=name, **options)
        assert getattr(again.schedule, field) == whole
        kept = gdcore.fit(X, y, epochs=6, init=first, **options)
        assert getattr(kept.schedule, field) == getattr(first.schedule, field)
        # the continuation's last epochs are those of a 10-epoch run's schedule
        one_run = gdcore.fit(X, y, epochs=10, schedule=name, **options)
        assert one_run.schedule == again.schedule


@pytest.mark.parametrize("l1, grad, expected", [
    (0.5, [0.4, -0.45, 0.01], 0.05),    # w₀ = 0, |0.4| ≤ l1: 0; w₁ > 0: −0.45 + 0.5; ∂b 0.01
    (0.5, [0.75, -0.45, 0.01], 0.25),   # w₀ = 0, 0.75 > l1: soft-thresholded to 0.25
    (0.5, [-0.9, -0.45, 0.01], 0.4),    # w₀ = 0, −0.9 < −l1: −0.9 + 0.5
    (1.0, [1.0, -1.0, 0.0], 0.0),       # |∂w₀| = l1 exactly: 0; w₁ > 0: −1 + 1
])
def test_gradient_norm_for_gtol_where_a_zero_coefficient_decides(l1, grad, expected):
    """The minimum-norm subgradient of l1·|wⱼ| at wⱼ = 0 soft-thresholds ∂wⱼ by l1 (0 inside
    [−l1, l1]); here that coordinate decides ‖∇J‖∞, worked by hand."""
    from gdcore import _core, _reference
    w, grad = np.array([0.0, 2.0]), np.array(grad)
    assert _core.gradient_stationarity(grad, np.append(w, 0.0), l1, True) == pytest.approx(
        expected, abs=1e-15)
    assert _reference.stationarity(grad[:2], grad[2], w, l1) == pytest.approx(expected,
                                                                               abs=1e-15)


FULL_BATCH_RUNS = {"core-streaming": dict(backend="core", precompute=False),
                   "core-gram": dict(backend="core", precompute=True),
                   "numpy": dict(backend="numpy")}


@pytest.mark.parametrize("run", FULL_BATCH_RUNS)
def test_gtol_with_l1_at_a_lasso_solution_by_hand(run):
    """X = [[1], [3]], y = [1, 2] from w = 0, b = 1.5: r = (0.5, −0.5), ∂b = 0, ∂w = −0.5.
    With l1 = 1 ≥ |∂w| the minimum-norm subgradient is 0: θ is the lasso solution and the
    gtol rule stops in epoch 1, before any update.  With l1 = 0.3 it is −0.5 + 0.3 = −0.2:
    ‖∇J‖∞ = 0.2 stops a gtol of 0.25 but not one of 0.15, whose epoch then takes the step
    w = 0.1·0.5 = 0.05, shrunk by 0.1·0.3 to 0.02 (b stays 1.5)."""
    X, y = np.array([[1.0], [3.0]]), np.array([1.0, 2.0])
    options = dict(optimizer="sgd", lr=0.1, tol=None, init=(np.zeros(1), 1.5),
                   **FULL_BATCH_RUNS[run])
    r = gdcore.fit(X, y, l1=1.0, gtol=1e-12, epochs=5, **options)
    assert (r.stop_reason, r.converged, r.n_epochs, r.n_updates) == ("gtol", True, 1, 0)
    assert r.loss_history[0] == pytest.approx(0.125, rel=1e-15)   # (0.25 + 0.25)/4 + 0
    assert (r.coef[0], r.intercept) == (0.0, 1.5)
    r = gdcore.fit(X, y, l1=0.3, gtol=0.25, epochs=5, **options)
    assert (r.stop_reason, r.n_epochs, r.n_updates) == ("gtol", 1, 0)
    r = gdcore.fit(X, y, l1=0.3, gtol=0.15, epochs=1, **options)
    assert (r.stop_reason, r.n_epochs, r.n_updates) == ("epochs", 1, 1)
    assert r.coef[0] == pytest.approx(0.02, rel=1e-14) and r.intercept == 1.5


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_kept_progress_cannot_checkpoint_a_later_epoch(backend):
    """checkpoint() is the fit at the end of its epoch: called after the fit moved on it
    would have returned a later state under that epoch's name; it says so instead."""
    X, y, _ = problem(n=40, d=3)
    kept = []
    result = gdcore.fit(X, y, optimizer="adam", lr=0.05, epochs=6, tol=None, backend=backend,
                        callback=kept.append)
    with pytest.raises(RuntimeError, match="checkpoint\\(\\) of epoch 3 was called at epoch 6"):
        kept[2].checkpoint()
    last = kept[-1].checkpoint()    # the fit ended at its epoch: still that epoch's state
    np.testing.assert_array_equal(last.coef, result.coef)


def test_fit_progress_and_state_compare_by_identity_and_progress_pickles():
    """Two fits' progress at the same epoch, or a FitState and its copy, raised "truth value
    of an array" on ==; a progress did not pickle (its checkpoint holds the running fit)."""
    import pickle
    X, y, _ = gdcore.make_regression(50, 3, seed=0)
    first, second = [], []
    gdcore.fit(X, y, epochs=2, tol=None, callback=first.append)
    gdcore.fit(X, y, epochs=2, tol=None, callback=second.append)
    assert first[0] == first[0] and first[0] != second[0] and first[0] not in second
    result = gdcore.fit(X, y, epochs=2, tol=None)
    assert result.state != result.state.copy() and result.state == result.state
    again = pickle.loads(pickle.dumps(first[1]))
    assert (again.epoch, again.loss, again.intercept) == (2, first[1].loss, first[1].intercept)
    np.testing.assert_array_equal(again.coef, first[1].coef)
    with pytest.raises(RuntimeError, match="pickled, which leaves its checkpoint"):
        again.checkpoint()


def test_a_copied_progress_checkpoints_during_the_callback():
    """copy.copy and copy.deepcopy of a FitProgress kept a working checkpoint() until it
    pickled without one: a copy's checkpoint() then raised, even during the callback."""
    import copy
    X, y, _ = gdcore.make_regression(50, 3, seed=0)
    made, copies = [], []

    def callback(progress):
        for again in (copy.copy(progress), copy.deepcopy(progress)):
            assert again is not progress and again.epoch == progress.epoch
            np.testing.assert_array_equal(again.coef, progress.coef)
            made.append(again.checkpoint())
        copies.append(again)
    result = gdcore.fit(X, y, epochs=2, tol=None, callback=callback)
    assert [r.n_epochs for r in made] == [1, 1, 2, 2]
    np.testing.assert_array_equal(made[-1].coef, result.coef)
    with pytest.raises(RuntimeError, match="checkpoint\\(\\) of epoch 1 was called at epoch 2"):
        copies[0].checkpoint()      # stale as the progress it was copied from is
