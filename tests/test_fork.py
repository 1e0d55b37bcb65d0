"""gdcore in processes made by fork().

GCC's OpenMP runtime keeps, for each thread that has started a team, a pool of parked
workers; a child forked from that thread inherits the pool but not the workers, and its next
team waits for them forever.  gdcore notes which threads have started teams, and a child
forked from one runs every pass on one thread, cut into the same parts: the same bits, a
RuntimeWarning if threads were asked for by number, and never a hang.  Each child here is
killed after a timeout, so a regression fails the test instead of hanging the suite.
"""

import ctypes
import ctypes.util
import multiprocessing
import os
import sys
import threading
import warnings

import numpy as np
import pytest

import gdcore
from gdcore import _core

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or "fork" not in multiprocessing.get_all_start_methods(),
    reason="no fork() on this platform")

CHILD_TIMEOUT = 120


def make_data(n=20_000, d=20, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = X @ np.linspace(-1, 1, d) + 0.1 * rng.standard_normal(n)
    return X, y


# Each kind of fit a child runs, chosen to reach each threaded pass of the core: the
# full-batch team (streaming), a shuffled mini-batch split between threads (block_sums), the
# data's NaN/inf check (400,000 values: several parts), Gram mode (BLAS, then O(d²) epochs)
# and classic SGD.
FITS = {
    "full-batch team": dict(optimizer="adam", lr=0.01, epochs=20, precompute=False),
    "mini-batch split": dict(optimizer="sgd", lr=0.01, epochs=2, batch_size=4096, seed=3),
    "gram mode": dict(optimizer="adam", lr=0.01, epochs=50, precompute=True),
    "sgd batch_size=1": dict(optimizer="sgd", lr=0.001, epochs=1, batch_size=1, seed=5),
}


def run_fits(n_threads):
    X, y = make_data()
    out = {}
    for name, kwargs in FITS.items():
        result = gdcore.fit(X, y, n_threads=n_threads, tol=None, **kwargs)
        out[name] = (result.coef.tobytes(), float(result.intercept),
                     np.asarray(result.loss_history).tobytes())
    return out


def child_fits(n_threads):
    """Runs in the child: its fits, whether it lost its threads, and its warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fits = run_fits(n_threads)
        probe = _core.stream_sum(np.ones(1_000_000), 2)
    return (fits, _core.threads_lost_to_fork(), probe,
            [(w.category.__name__, str(w.message)) for w in caught])


def _send_result(connection, function, args):
    try:
        connection.send(("ok", function(*args)))
    except BaseException as error:
        connection.send(("error", repr(error)))
    finally:
        connection.close()


def in_forked_child(function, *args, timeout=CHILD_TIMEOUT):
    """function(*args) in a child made by fork() from the calling thread, or fail after
    timeout seconds (the child is killed)."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_send_result, args=(sender, function, args))
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a multi-threaded process may deadlock: that is
        # the very case under test
        warnings.simplefilter("ignore", DeprecationWarning)
        child.start()
    sender.close()
    try:
        if not receiver.poll(timeout):
            pytest.fail(f"the forked child did not finish in {timeout} s (OpenMP hang)")
        outcome, value = receiver.recv()
    finally:
        child.kill()
        child.join()
        receiver.close()
    assert outcome == "ok", value
    return value


def forked_from_a_new_thread(before=None, timeout=CHILD_TIMEOUT):
    """child_fits(2) in a child forked from a new thread of this process (which first runs
    before(), if given)."""
    box = {}

    def run():
        try:
            if before is not None:
                before()
            box["out"] = in_forked_child(child_fits, 2, timeout=timeout)
        except BaseException as error:   # pytest.fail included: re-raised below
            box["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["out"]


@pytest.fixture(scope="module")
def parent_fits():
    """The fits on two threads in this (parent) process, which also starts OpenMP's pool on
    this thread: the state that made forked children hang."""
    if _core.default_n_threads() < 1 or not _core.openmp_enabled():
        pytest.skip("gdcore built without OpenMP: nothing to lose in a fork")
    return run_fits(2)


def test_parent_keeps_its_threads(parent_fits):
    assert not _core.threads_lost_to_fork()


def test_child_of_a_thread_that_ran_teams_keeps_its_threads(parent_fits):
    # the thread's pool of OpenMP workers is freed before fork(): the child starts a new one
    # (a build that cannot free it runs such a child on one thread: tested below)
    fits, lost, probe, caught = in_forked_child(child_fits, 2)
    assert lost == (not _core.fork_frees_pools())
    assert probe == 1_000_000.0
    for name in FITS:
        assert fits[name] == parent_fits[name], name
    warned = [m for c, m in caught if "fork" in m]
    assert len(warned) == (0 if _core.fork_frees_pools() else 1), caught


def test_child_of_a_thread_that_ran_another_librarys_teams_does_not_hang(parent_fits):
    # a team gdcore did not start (another library on the same libgomp, a C API caller's own
    # OpenMP) leaves a pool on this thread just the same
    # (on a new thread, which gdcore has not seen start a team)
    gomp = ctypes.CDLL(ctypes.util.find_library("gomp") or "libgomp.so.1")
    callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda data: None)
    fits, lost, probe, _ = forked_from_a_new_thread(
        before=lambda: gomp.GOMP_parallel(callback, None, 2, 0), timeout=30)
    assert probe == 1_000_000.0
    for name in FITS:
        assert fits[name] == parent_fits[name], name


@pytest.fixture
def pool_kept_at_fork():
    """Forks that do not free the forking thread's OpenMP pool (as from inside a team): the
    children of threads that ran teams must fall back to one thread."""
    _core._release_pool_at_fork(False)
    yield
    _core._release_pool_at_fork(True)


def test_child_that_lost_its_threads_runs_on_one_thread_with_the_same_bits(
        parent_fits, pool_kept_at_fork):
    fits, lost, probe, caught = in_forked_child(child_fits, 2)
    assert lost
    assert probe == 1_000_000.0
    for name in FITS:
        assert fits[name] == parent_fits[name], name
    # asked for 2 threads by number: told once, with the way out
    messages = [m for c, m in caught if c == "RuntimeWarning" and "fork" in m]
    assert len(messages) == 1, caught
    assert "n_threads=2" in messages[0] and "'spawn'" in messages[0]


def test_child_that_lost_its_threads_with_default_threads_is_not_warned(
        parent_fits, pool_kept_at_fork):
    fits, lost, _, caught = in_forked_child(child_fits, None)
    assert lost
    assert not [m for c, m in caught if "fork" in m], caught
    if _core.default_n_threads() == 2:
        for name in FITS:
            assert fits[name] == parent_fits[name], name


def test_grandchild_of_a_child_that_lost_its_threads_runs_on_one_thread(
        parent_fits, pool_kept_at_fork):
    fits, lost = in_forked_child(grandchild_fits, 2)
    assert lost
    for name in FITS:
        assert fits[name] == parent_fits[name], name


def test_child_with_default_threads_is_not_warned(parent_fits):
    fits, lost, _, caught = in_forked_child(child_fits, None)
    assert lost == (not _core.fork_frees_pools())
    assert not [m for c, m in caught if "fork" in m], caught
    # None resolves to OpenMP's default here as in the parent: the same parts, the same bits
    if _core.default_n_threads() == 2:
        for name in FITS:
            assert fits[name] == parent_fits[name], name


def grandchild_fits(n_threads):
    # the child gives up on (and kills) its own child first, leaving no orphan behind
    return in_forked_child(child_fits, n_threads, timeout=CHILD_TIMEOUT / 2)[:2]


def test_grandchild_keeps_its_threads(parent_fits):
    fits, lost = in_forked_child(grandchild_fits, 2)
    assert lost == (not _core.fork_frees_pools())
    for name in FITS:
        assert fits[name] == parent_fits[name], name


def test_child_of_a_thread_that_never_ran_teams_keeps_its_threads(parent_fits):
    # a thread that has never started a team has no pool: its child starts a fresh one
    fits, lost, probe, caught = forked_from_a_new_thread()
    assert not lost
    assert probe == 1_000_000.0
    assert not [m for c, m in caught if "fork" in m], caught
    for name in FITS:
        assert fits[name] == parent_fits[name], name


def test_os_fork_child_runs(parent_fits):
    # plain os.fork (no multiprocessing), as a C program embedding the core would fork
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:   # pragma: no cover - the child
        try:
            X, y = make_data()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                result = gdcore.fit(X, y, n_threads=2, tol=None,
                                    **FITS["full-batch team"])
            os.write(write_end, result.coef.tobytes())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        import select
        ready, _, _ = select.select([read_end], [], [], CHILD_TIMEOUT)
        if not ready:
            os.kill(pid, 9)
            pytest.fail("the os.fork child did not finish (OpenMP hang)")
        data = b""
        while chunk := os.read(read_end, 65536):
            data += chunk
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    assert data == parent_fits["full-batch team"][0]
