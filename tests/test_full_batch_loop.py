"""The full-batch epoch loop runs many epochs per call without the GIL and, with several
threads, on one team of threads for all of them (src/gd_full_batch.pxi).  Its trajectories
must be those of one epoch at a time (a callback makes the loop return after every epoch),
of the kernels composed step by step from Python, and of the NumPy reference."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gdcore
from gdcore import _core
from gdcore.optim import SGD, Adam, RMSprop, make_optimizer
from gdcore.schedules import StepLR, make_schedule

from conftest import interrupt_child, problem, subprocess_env

# (n, d): one thread's loop; a team below block_sums' own threading bar; a team whose
# epochs are cut into several runs by the work limit between signal checks (~4M
# multiply-adds); a team on rows of 32+ values.
SHAPES = [(8, 3), (1000, 10), (30_000, 40), (3000, 33)]
OPTIMIZERS = {
    "adam": Adam(lr=0.02),
    "momentum-l1": SGD(lr=0.02, momentum=0.9, nesterov=True),
    "rmsprop-centered": RMSprop(lr=0.005, momentum=0.5, centered=True),
}


def final_state(result):
    return (result.loss_history, result.coef, result.intercept, result.n_updates,
            result.state.optimizer_state)


def assert_identical(first, second):
    for a, b in zip(final_state(first), final_state(second)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_many_epochs_per_call_equal_one_at_a_time(shape, n_threads, name, dtype):
    n, d = shape
    X, y, _ = problem(n=n, d=d, dtype=dtype)
    weights = np.random.default_rng(3).uniform(0.0, 2.0, n).astype(dtype)
    options = dict(optimizer=OPTIMIZERS[name], epochs=9, tol=None, n_threads=n_threads,
                   sample_weight=weights, schedule=StepLR(step_size=3, gamma=0.5),
                   precompute=False, l1=0.01 if name == "momentum-l1" else 0.0, l2=0.01)
    at_once = gdcore.fit(X, y, **options)
    one_by_one = gdcore.fit(X, y, callback=lambda progress: False, **options)
    assert at_once.n_epochs == 9
    assert_identical(at_once, one_by_one)
    reference = gdcore.fit(X, y, backend="numpy", **options)
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(at_once.loss_history, reference.loss_history, rtol=rtol)
    np.testing.assert_allclose(at_once.coef, reference.coef, rtol=rtol,
                               atol=rtol * np.abs(reference.coef).max())


@pytest.mark.parametrize("n_threads", [1, 2])
def test_gram_mode_runs_many_epochs_per_call(n_threads):
    X, y, _ = problem(n=500, d=6)
    options = dict(optimizer="adam", lr=0.05, epochs=40, tol=None, precompute=True,
                   n_threads=n_threads)
    assert_identical(gdcore.fit(X, y, **options),
                     gdcore.fit(X, y, callback=lambda progress: False, **options))


@pytest.mark.parametrize("shape", [(30_000, 40), (2000, 100)])
def test_team_equals_the_kernels_composed_step_by_step(shape):
    """With two threads, an epoch's pass is block_sums' two halves added in order, whether
    the team or block_sums_of does it (both above block_sums' threading bar here): the
    loop's trajectory is, bit for bit, the one the Python-level kernels give."""
    n, d = shape
    X, y, _ = problem(n=n, d=d)
    epochs, schedule = 12, StepLR(step_size=4, gamma=0.5)
    result = gdcore.fit(X, y, optimizer="adam", lr=0.05, epochs=epochs, tol=None,
                        schedule=schedule, n_threads=2, precompute=False, l2=0.01)
    opt = make_optimizer("adam", 0.05)
    sched = make_schedule(schedule, epochs)
    theta = np.zeros(d + 1)
    state = np.zeros((3, d + 1))
    for row, values in zip(state, opt.initial_state(d + 1)):
        row[:] = values
    no_weights = np.empty(0)
    losses = []
    for epoch in range(epochs):
        sums = _core.block_sums_of(X, y, no_weights, theta, 2)
        loss, grad = _core.objective_from_sums(sums, theta, 0.01, 0.0, True)
        losses.append(loss)
        lr = _core.scheduled_learning_rate(sched._config(), opt.lr, epoch, epoch + 1)
        assert _core.optimizer_update(theta, grad, state, opt._config(), epoch + 1, lr, 0.0,
                                      True)
    np.testing.assert_array_equal(result.loss_history, losses)
    np.testing.assert_array_equal(np.append(result.coef, result.intercept), theta)
    np.testing.assert_array_equal(result.state.optimizer_state, state)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_stopping_rules_stop_the_team_where_the_reference_stops(n_threads):
    X, y, _ = problem(n=1000, d=10, noise=0.0)
    for options in (dict(tol=1e-3, n_iter_no_change=3), dict(tol=None, gtol=1e-3)):
        core = gdcore.fit(X, y, optimizer="gd", lr=0.3, epochs=5000, n_threads=n_threads,
                          precompute=False, **options)
        reference = gdcore.fit(X, y, optimizer="gd", lr=0.3, epochs=5000, backend="numpy",
                               **options)
        assert core.stop_reason == reference.stop_reason != "epochs"
        assert core.n_epochs == reference.n_epochs < 5000
        np.testing.assert_allclose(core.loss_history, reference.loss_history, rtol=1e-9)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_divergence_in_the_team_keeps_the_last_finite_parameters(n_threads):
    X, y, _ = problem(n=1000, d=10)
    X = X * 1e3
    options = dict(optimizer="gd", lr=10.0, epochs=200, tol=None, n_threads=n_threads,
                   precompute=False)
    with pytest.raises(gdcore.DivergenceError) as at_once:
        gdcore.fit(X, y, **options)
    with pytest.raises(gdcore.DivergenceError) as one_by_one:
        gdcore.fit(X, y, callback=lambda progress: False, **options)
    first, second = at_once.value.result, one_by_one.value.result
    assert first.n_epochs == second.n_epochs < 200
    np.testing.assert_array_equal(first.loss_history, second.loss_history)
    np.testing.assert_array_equal(first.coef, second.coef)
    assert np.all(np.isfinite(first.coef))


@pytest.mark.parametrize("shape", [(1000, 10), (30_000, 40)])
def test_a_stopped_team_fit_continues_exactly(shape):
    n, d = shape
    X, y, _ = problem(n=n, d=d)
    options = dict(optimizer="adam", lr=0.02, tol=None, n_threads=2, precompute=False)
    whole = gdcore.fit(X, y, epochs=12, **options)
    first = gdcore.fit(X, y, epochs=7, **options)
    rest = gdcore.fit(X, y, epochs=5, init=first, **options)
    assert_identical(whole, rest)


def test_two_threads_are_repeatable_bit_for_bit():
    X, y, _ = problem(n=1000, d=10)
    runs = [gdcore.fit(X, y, optimizer="rmsprop", epochs=50, tol=None, n_threads=2,
                       precompute=False) for _ in range(3)]
    assert_identical(runs[0], runs[1])
    assert_identical(runs[0], runs[2])


NO_CALLBACK_FIT = textwrap.dedent("""
    import sys, time
    import numpy as np
    import gdcore
    X, y, _ = gdcore.make_regression(1000, 10, seed=0)
    print("running", flush=True)
    options = dict(optimizer="adam", lr=1e-4, tol=None, n_threads=THREADS, precompute=False)
    try:
        gdcore.fit(X, y, epochs=100_000_000, **options)
    except KeyboardInterrupt as exc:
        r = exc.result
        assert 1 <= r.n_epochs == len(r.loss_history) == r.n_updates < 100_000_000
        # the last finished update's parameters: a fresh fit of as many epochs, bit for bit
        fresh = gdcore.fit(X, y, epochs=r.n_epochs, **options)
        assert np.array_equal(r.coef, fresh.coef), np.abs(r.coef - fresh.coef).max()
        assert r.intercept == fresh.intercept, (r.intercept, fresh.intercept)
        assert np.array_equal(r.loss_history, fresh.loss_history)
        assert np.array_equal(r.state.optimizer_state, fresh.state.optimizer_state)
        print("interrupted", r.n_epochs, time.perf_counter(), flush=True)
        sys.exit(3)
""")


@pytest.mark.parametrize("n_threads", [1, 2])
def test_ctrl_c_stops_a_fit_without_callback(n_threads):
    """Without a callback the epochs run in calls of ~4M multiply-adds each: Ctrl-C is seen
    between two of them, and the result is consistent (as many losses as epochs)."""
    code = NO_CALLBACK_FIT.replace("THREADS", str(n_threads))
    returncode, out, sent = interrupt_child(code, 0.5)
    assert returncode == 3, out
    words = out.split()
    # the child checked the result; how soon it stopped is measured, not tested
    assert words[0] == "interrupted"


FEWER_THREADS_FIT = textwrap.dedent("""
    import numpy as np
    import gdcore
    X, y, _ = gdcore.make_regression(30_000, 40, seed=0)
    r = gdcore.fit(X, y, optimizer="adam", lr=0.02, epochs=6, tol=None, n_threads=2,
                   precompute=False)
    print(" ".join(repr(float(v)) for v in np.append(r.loss_history, r.coef)))
""")


def test_a_team_openmp_cannot_form_falls_back_to_one_thread():
    """OMP_THREAD_LIMIT=1 gives a parallel region one thread: the team must see that and run
    the epochs on the calling thread (block_sums still cuts each pass in two parts, so the
    result is the team's, bit for bit), not wait forever for a thread that never comes."""
    env = dict(subprocess_env(), OMP_THREAD_LIMIT="1")
    out = subprocess.run([sys.executable, "-c", FEWER_THREADS_FIT], env=env, timeout=120,
                         capture_output=True, text=True, check=True).stdout
    X, y, _ = gdcore.make_regression(30_000, 40, seed=0)
    team = gdcore.fit(X, y, optimizer="adam", lr=0.02, epochs=6, tol=None, n_threads=2,
                      precompute=False)
    expected = np.append(team.loss_history, team.coef)
    np.testing.assert_array_equal(np.array([float(v) for v in out.split()]), expected)


@pytest.fixture
def team_waits():
    """_core._team_waits, with its defaults put back after the test."""
    yield _core._team_waits
    _core._team_waits(50_000, 10_000_000, 1_000_000, 100_000_000, voter=-1)


@pytest.mark.parametrize("n_threads", [2, 3])
def test_team_threads_that_sleep_while_waiting_give_the_same_bits(team_waits, n_threads):
    """A team thread that waits long (its partner descheduled, or reading from disk) sleeps
    on a futex until the slot it waits for is published.  Made to sleep at every wait, the
    team gives the bits it gives spinning, and its sleepers are woken by the publisher, not
    by the sleep's timeout (a lost wake-up would cost the timeout every time)."""
    X, y, _ = problem(n=4000, d=10)
    options = dict(optimizer="adam", lr=0.01, epochs=200, tol=None, n_threads=n_threads,
                   precompute=False)
    team_waits(long_wait_ns=10**15, retry_ns=0)     # a team that never gives up
    spinning = gdcore.fit(X, y, **options)
    sleeps_before, timeouts_before, _ = team_waits(0, 0)
    sleeping = gdcore.fit(X, y, **options)
    sleeps, timeouts, _ = team_waits()
    assert_identical(spinning, sleeping)
    if sys.platform.startswith("linux"):
        sleeps -= sleeps_before
        timeouts -= timeouts_before
        assert sleeps >= 50
        # a wake-up may come late on a loaded machine, but never most of the time
        assert timeouts <= max(2, sleeps // 10), (sleeps, timeouts)


def test_team_threads_that_yield_while_waiting_give_the_same_bits(team_waits):
    """With more team threads than cores a waiting thread yields its core (the thread it
    waits for may need it): the same bits as spinning."""
    X, y, _ = problem(n=4000, d=10)
    options = dict(optimizer="rmsprop", lr=0.01, epochs=100, tol=None, n_threads=4,
                   precompute=False)
    team_waits(long_wait_ns=10**15, retry_ns=0)
    spinning = gdcore.fit(X, y, **options)
    team_waits(0, 10**12)
    yielding = gdcore.fit(X, y, **options)
    assert_identical(spinning, yielding)


@pytest.mark.parametrize("batch_size, n_threads", [(256, 2), (100, 3), (1000, 2)])
def test_mini_batches_that_keep_waiting_give_up_their_team_with_the_same_bits(
        team_waits, batch_size, n_threads):
    """A mini-batch's parallel region waits on busy cores as a full-batch team does, and a
    batch is microseconds of work: after 3 long waits in 16 batches the thread sums its
    batches on one thread, in the same parts (the same bits), until the retry time."""
    X, y, _ = problem(n=6000, d=40)
    options = dict(optimizer="adam", lr=0.01, epochs=3, tol=None, batch_size=batch_size,
                   n_threads=n_threads, seed=4)
    team_waits(long_wait_ns=10**15, retry_ns=0)     # never gives up
    team = gdcore.fit(X, y, **options)
    gave_up = team_waits()[2]
    assert team_waits()[2] == gave_up
    team_waits(long_wait_ns=-1, retry_ns=10**15)    # every batch's wait is long
    given_up = gdcore.fit(X, y, **options)
    assert team_waits()[2] == gave_up + 1           # once: then one thread until the retry
    assert_identical(team, given_up)
    team_waits(long_wait_ns=-1, retry_ns=0)         # retried at once, giving up again
    assert_identical(team, gdcore.fit(X, y, **options))
    assert team_waits()[2] > gave_up + 2


@pytest.mark.parametrize("voter", ["any", "last"])
@pytest.mark.parametrize("n_threads", [2, 3])
def test_a_team_that_keeps_waiting_gives_up_with_the_same_bits(team_waits, n_threads, voter):
    """Team threads that keep waiting on each other (their cores busy with other work) give
    up together, and the calling thread runs the rest of the epochs on one thread, cut into
    the same parts, not trying a team again for a while: the same bits all along."""
    X, y, _ = problem(n=4000, d=10)
    options = dict(optimizer="adam", lr=0.01, epochs=200, tol=None, n_threads=n_threads,
                   precompute=False)
    team_waits(long_wait_ns=10**15, retry_ns=0)     # never gives up
    team = gdcore.fit(X, y, **options)
    gave_up = team_waits()[2]
    # every wait counts as long: the team gives up after its fourth epoch, for good (with
    # voter "last", only the last thread votes: the others must stop on its vote too)
    team_waits(long_wait_ns=-1, retry_ns=10**15, voter=-1 if voter == "any" else n_threads - 1)
    first = gdcore.fit(X, y, **options)
    assert team_waits()[2] == gave_up + 1
    assert first.n_epochs == 200
    second = gdcore.fit(X, y, **options)    # before the retry time: one thread from the start
    assert team_waits()[2] == gave_up + 1
    assert_identical(team, first)
    assert_identical(team, second)
    # a stopping rule still acts where it acts in a team
    team_waits(long_wait_ns=10**15, retry_ns=0)
    stopping = dict(options, optimizer="gd", lr=0.3, epochs=5000, tol=1e-3, n_iter_no_change=3)
    team_stop = gdcore.fit(X, y, **stopping)
    team_waits(long_wait_ns=-1, retry_ns=0)
    given_up_stop = gdcore.fit(X, y, **stopping)
    assert 4 < team_stop.n_epochs < 5000 and team_stop.stop_reason != "epochs"
    assert_identical(team_stop, given_up_stop)


def capi_fit_f64(X, y, epochs, n_threads):
    """gdcore's C API fit (one call for the whole fit), through ctypes: (code, history)."""
    import ctypes as C
    class Opt(C.Structure):
        _fields_ = [("kind", C.c_int), ("lr", C.c_double), ("momentum", C.c_double),
                    ("dampening", C.c_double), ("nesterov", C.c_int), ("lr_decay", C.c_double),
                    ("initial_accumulator_value", C.c_double), ("alpha", C.c_double),
                    ("eps", C.c_double), ("centered", C.c_int), ("beta1", C.c_double),
                    ("beta2", C.c_double), ("amsgrad", C.c_int)]
    class Sched(C.Structure):
        _fields_ = [("kind", C.c_int)] + [(f, C.c_double) for f in (
            "step_size", "gamma", "T_max", "eta_min", "start_factor", "end_factor",
            "total_iters", "power_t")]
    class Options(C.Structure):
        _fields_ = [("optimizer", Opt), ("schedule", Sched), ("epochs", C.c_longlong),
                    ("batch_size", C.c_longlong), ("l2", C.c_double), ("l1", C.c_double),
                    ("fit_intercept", C.c_int), ("tol", C.c_double),
                    ("n_iter_no_change", C.c_longlong), ("gtol", C.c_double),
                    ("n_threads", C.c_int)]
    class Info(C.Structure):
        _fields_ = [("n_updates", C.c_longlong), ("n_epochs", C.c_longlong),
                    ("n_no_improvement", C.c_longlong), ("best_loss", C.c_double),
                    ("epochs_run", C.c_longlong), ("stop_reason", C.c_int)]
    P = C.POINTER(C.c_double)
    fit_type = C.CFUNCTYPE(C.c_int, P, P, P, C.c_ssize_t, C.c_ssize_t, C.POINTER(Options),
                           P, P, P, C.POINTER(Info))
    get = C.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = C.c_void_p, [C.py_object, C.c_char_p]
    table = get(_core._C_API, b"gdcore._core._C_API")
    # gdcore_api: two ints, four function pointers, then fit_f64
    fit = fit_type(C.cast(table + 8 + 4 * C.sizeof(C.c_void_p), C.POINTER(C.c_void_p))[0])
    options = Options(optimizer=Opt(kind=3, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8),
                      schedule=Sched(kind=0), epochs=epochs, fit_intercept=1, tol=-1.0,
                      gtol=-1.0, n_iter_no_change=5, n_threads=n_threads)
    X, y = np.ascontiguousarray(X, np.float64), np.ascontiguousarray(y, np.float64)
    theta, state = np.zeros(X.shape[1] + 1), np.zeros(3 * (X.shape[1] + 1))
    history = np.zeros(epochs)
    info = Info(best_loss=np.inf)
    code = fit(*(a.ctypes.data_as(P) for a in (X, y)), None, X.shape[0], X.shape[1],
               C.byref(options), *(a.ctypes.data_as(P) for a in (theta, state, history)),
               C.byref(info))
    return code, history


def test_one_long_call_tries_a_team_again_after_the_retry_time(team_waits):
    """The C API runs a whole fit in one call: after a give-up, a team is tried again once
    the retry time is over, within that call (here at once: a team every ~96 epochs)."""
    X, y, _ = problem(n=4000, d=10)
    team_waits(long_wait_ns=-1, retry_ns=0)
    before = team_waits()[2]
    code, history = capi_fit_f64(X, y, 1000, 2)
    assert code == 0
    assert team_waits()[2] - before >= 5
    team_waits(long_wait_ns=10**15, retry_ns=0)
    reference = gdcore.fit(X, y, optimizer="adam", lr=0.01, epochs=1000, tol=None,
                           n_threads=2, precompute=False)
    np.testing.assert_array_equal(history, reference.loss_history)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sleeps counted on Linux")
def test_a_give_up_keeps_no_team_of_large_parts_waiting(team_waits):
    """Parts of GD_GIVE_UP_MAX_WORK multiply-adds or more never vote, so a give-up of a
    small team does not keep a large fit off its team for the retry time."""
    X, y, _ = problem(n=4000, d=10)
    X_large = np.random.default_rng(0).standard_normal((400_000, 10))   # parts of 2.2M
    y_large = X_large @ np.arange(10.0)
    team_waits(long_wait_ns=-1, retry_ns=10**15)
    before = team_waits()[2]
    capi_fit_f64(X, y, 10, 2)
    assert team_waits()[2] == before + 1
    team_waits(0, 0, long_wait_ns=10**15)     # a team thread that waits sleeps: counted
    sleeps = team_waits()[0]
    capi_fit_f64(X_large, y_large, 5, 2)
    assert team_waits()[0] > sleeps


def test_long_waits_are_counted_across_calls(team_waits):
    """A fit with a callback calls the core once an epoch: the record of long waits must
    carry from one call to the next, or such a fit could never give up its team."""
    X, y, _ = problem(n=4000, d=10)
    options = dict(optimizer="adam", lr=0.01, epochs=30, tol=None, n_threads=2,
                   precompute=False)
    team_waits(long_wait_ns=10**15, retry_ns=0)
    team = gdcore.fit(X, y, callback=lambda progress: None, **options)
    gave_up = team_waits()[2]
    team_waits(long_wait_ns=-1, retry_ns=10**15)
    one_epoch_a_call = gdcore.fit(X, y, callback=lambda progress: None, **options)
    assert team_waits()[2] == gave_up + 1
    assert_identical(team, one_epoch_a_call)
