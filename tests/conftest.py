"""Shared fixtures: small, well-conditioned problems with known answers."""

import os

import numpy as np
import pytest

import gdcore


@pytest.fixture(autouse=True, scope="session")
def _run_outside_the_checkout(tmp_path_factory):
    """The suite runs in an empty temporary folder.  A child Python (``python -c``, ``python -m
    gdcore``) puts its current folder first on sys.path, before subprocess_env's PYTHONPATH: run
    from a checkout that is not built in place (an unpacked sdist tested against the installed
    gdcore, as packagers test), every child imported that folder's unbuilt gdcore/ and failed."""
    here = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    try:
        yield
    finally:
        os.chdir(here)


def problem(n=120, d=5, dtype=np.float64, seed=0, noise=0.1, intercept=0.7):
    X, y, coef = gdcore.make_regression(n, d, noise=noise, intercept=intercept, seed=seed,
                                        dtype=dtype)
    return X, y, coef


def starting_within_a_line(X, offset):
    """A copy of X whose first value is `offset` bytes into a 64-byte cache line."""
    raw = np.zeros(X.nbytes + 128, dtype=np.uint8)
    start = (-raw.ctypes.data) % 64 + offset
    placed = raw[start:start + X.nbytes].view(X.dtype).reshape(X.shape)
    placed[...] = X
    assert placed.ctypes.data % 64 == offset and placed.flags.c_contiguous
    return placed


@pytest.fixture
def small():
    return problem()


@pytest.fixture
def weights():
    w = np.random.default_rng(11).uniform(0.0, 2.0, 120)
    w[::9] = 0.0  # zero weights are allowed
    return w


def lstsq_solution(X, y, sample_weight=None, fit_intercept=True, l2=0.0):
    """argmin of 1/(2S)·Σ sᵢrᵢ² + (l2/2)‖w‖²: the normal equations, by numpy.linalg.lstsq."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = X.shape
    s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    S = s.sum()
    A = np.hstack([X, np.ones((n, 1))]) if fit_intercept else X
    root = np.sqrt(s / S)[:, None]
    # ridge on w only: stack sqrt(l2)·[I 0] under the weighted rows
    penalty = np.sqrt(l2) * np.eye(A.shape[1])
    if fit_intercept:
        penalty[-1, -1] = 0.0
    A_big = np.vstack([A * root, penalty])
    y_big = np.concatenate([y * root[:, 0], np.zeros(A.shape[1])])
    theta = np.linalg.lstsq(A_big, y_big, rcond=None)[0]
    return (theta[:d], theta[d]) if fit_intercept else (theta, 0.0)


def subprocess_env():
    """The environment for a child Python that must import this gdcore (installed or not)."""
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(gdcore.__file__)))
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=root if not path else root + os.pathsep + path)


def interrupt_child(code, wait):
    """Run ``code`` in a child Python that prints "running" once its fit is under way, send it
    SIGINT ``wait`` seconds later; returns (exit code, what it printed, perf_counter at the
    signal)."""
    import signal
    import subprocess
    import sys
    import time
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=subprocess_env())
    try:
        assert proc.stdout.readline().strip() == "running"
        time.sleep(wait)
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    return proc.returncode, out, sent


def assert_same_fit(a, b):
    """Two FitResults with the same loss history, coefficients and intercept, bit for bit."""
    np.testing.assert_array_equal(a.loss_history, b.loss_history)
    np.testing.assert_array_equal(a.coef, b.coef)
    assert a.intercept == b.intercept


def traced_peak(call, *args):
    """(call(*args), the peak of Python-traced memory while it ran, in bytes)."""
    import tracemalloc
    tracemalloc.start()
    try:
        value = call(*args)
        return value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
