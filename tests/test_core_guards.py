"""The compiled entry points trust the values gdcore's Python layer validated, but not the
shapes: arrays that do not fit together raise ValueError (or TypeError) instead of reading
or writing past an array.  A call from Python must never crash the interpreter."""

import subprocess
import sys

import numpy as np
import pytest

from gdcore import _core
from gdcore.optim import SGD
from gdcore.schedules import Constant

N, D = 20, 3
X = np.ones((N, D))
Y = np.ones(N)
THETA = np.zeros(D + 1)
NO_WEIGHTS = np.empty(0)


def run_fit(X=X, y=Y, weights=NO_WEIGHTS, theta=None, state=None, epochs=2, batch_size=0,
            shuffle=False, rng=None, n_threads=1, counters=None, best_loss=None, history=None,
            gram=None):
    theta = THETA.copy() if theta is None else theta
    state = np.zeros((3, len(theta))) if state is None else state
    counters = np.zeros(3, np.int64) if counters is None else counters
    best_loss = np.full(1, np.inf) if best_loss is None else best_loss
    history = np.empty(epochs) if history is None else history
    return _core.run_fit(X, y, weights, theta, state, SGD(lr=0.1)._config(), Constant()._config(),
                         epochs, batch_size, 0.0, 0.0, True, -1.0, 5, -1.0, shuffle, rng, None,
                         n_threads, counters, best_loss, history, gram)


def test_run_fit_runs_with_fitting_shapes():
    # the guards' baseline: the same call with every shape right fits (2 epochs, 2 updates)
    theta = THETA.copy()
    assert run_fit(theta=theta)[:2] == (2, 0)
    assert theta[D] != 0.0      # y = 1, so the intercept moved


BAD_CALLS = {
    "y shorter than X": (lambda: run_fit(y=np.ones(5)), "y has 5 values for X's 20 rows"),
    "weights shorter": (lambda: run_fit(weights=np.ones(5)), "sample_weight has 5 values"),
    "theta short": (lambda: run_fit(theta=np.zeros(2)), r"theta has 2 values, not d \+ 1 = 4"),
    "state rows": (lambda: run_fit(state=np.zeros((2, D + 1))), "optimizer_state must be 3 x 4"),
    "state columns": (lambda: run_fit(state=np.zeros((3, D))), "optimizer_state must be 3 x 4"),
    "no columns": (lambda: run_fit(X=np.ones((N, 0)), theta=np.zeros(1)),
                   r"at least one row and one column, got shape \(20, 0\)"),
    "no rows": (lambda: run_fit(X=np.ones((0, D)), y=np.ones(0)),
                r"at least one row and one column, got shape \(0, 3\)"),
    "history short": (lambda: run_fit(epochs=5, history=np.empty(2)), "history one an epoch"),
    "counters short": (lambda: run_fit(counters=np.zeros(2, np.int64)), "counters needs 3"),
    "zero threads": (lambda: run_fit(n_threads=0), "n_threads must be 1 to 1024, got 0"),
    "too many threads": (lambda: run_fit(n_threads=1025), "n_threads must be 1 to 1024, got 1025"),
    "gram shape": (lambda: run_fit(gram=np.zeros((3, 3))), "gram must be 5 x 5, got 3 x 3"),
    "objective_gradient y": (lambda: _core.objective_gradient(X, np.ones(5), NO_WEIGHTS, THETA,
                                                              0.0, 0.0, True, 1),
                             "y has 5 values"),
    "objective_gradient theta": (lambda: _core.objective_gradient(X, Y, NO_WEIGHTS, np.zeros(9),
                                                                  0.0, 0.0, True, 1),
                                 "theta has 9 values"),
    "objective_gradient threads": (lambda: _core.objective_gradient(X, Y, NO_WEIGHTS, THETA, 0.0,
                                                                    0.0, True, -2),
                                   "n_threads must be 1 to 1024, got -2"),
    "block_sums_of weights": (lambda: _core.block_sums_of(X, Y, np.ones(N + 1), THETA, 1),
                              "sample_weight has 21 values"),
    "objective_from_sums": (lambda: _core.objective_from_sums(np.zeros(3), THETA, 0.0, 0.0, True),
                            r"sums has 3 values, not d \+ 3 = 6"),
    "gradient_stationarity": (lambda: _core.gradient_stationarity(np.zeros(2), THETA, 0.0, True),
                              "grad has 2 values, theta 4"),
    "optimizer_update state": (lambda: _core.optimizer_update(THETA.copy(), np.zeros(D + 1),
                                                              np.zeros((3, 2)), SGD()._config(),
                                                              1, 0.1, 0.0, True),
                               "optimizer_state must be 3 x 4, got 3 x 2"),
    "optimizer_update theta": (lambda: _core.optimizer_update(np.zeros(1), np.zeros(1),
                                                              np.zeros((3, 1)), SGD()._config(),
                                                              1, 0.1, 0.0, True),
                               "theta must hold w and b"),
    "gram_sums": (lambda: _core.gram_sums(np.zeros((D + 1, D + 1)), THETA),
                  "gram must be 5 x 5, got 4 x 4"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_mismatched_shapes_raise(case):
    call, message = BAD_CALLS[case]
    with pytest.raises(ValueError, match=message):
        call()


def test_shuffled_fit_needs_a_generator():
    with pytest.raises(TypeError, match="rng must be a numpy Generator, got object"):
        run_fit(batch_size=4, shuffle=True, rng=object())


def test_empty_block_sums_to_zero():
    # a chunk of no rows is allowed (chunked and Dask fits may meet one): its sums are 0
    assert np.array_equal(_core.block_sums_of(np.ones((0, D)), np.ones(0), NO_WEIGHTS, THETA, 1),
                          np.zeros(D + 3))


def test_a_huge_mismatch_is_an_error_not_a_crash():
    # 20,000,000 rows against a y of one value read 160 MB past y before the shape checks
    # (a segfault); in a child process, so a crash would fail this test and not the suite
    code = ("import numpy as np; from gdcore import _core\n"
            "try:\n"
            "    _core.objective_gradient(np.ones((20_000_000, 1)), np.ones(1), np.empty(0),\n"
            "                             np.zeros(2), 0.0, 0.0, True, 1)\n"
            "except ValueError as e:\n"
            "    print('ValueError:', e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ValueError: gdcore._core: y has 1 values for X's 20000000 rows" in done.stdout
