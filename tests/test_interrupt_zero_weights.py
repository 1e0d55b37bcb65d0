"""Ctrl-C inside a mini-batch epoch whose batches (or rows) have weight 0: skipped batches
are read like the others, and count towards the core's signal checks."""

import signal
import threading

import numpy as np
import pytest

import gdcore
from gdcore import _core


def _interrupt(signum, frame):
    raise KeyboardInterrupt


@pytest.mark.skipif(not hasattr(signal, "setitimer")
                    or threading.current_thread() is not threading.main_thread(),
                    reason="needs setitimer, in the main thread")
@pytest.mark.parametrize("batch_size", [64, 1])
def test_ctrl_c_within_an_epoch_of_zero_weights(monkeypatch, batch_size):
    # every row but the last has weight 0: the epoch is a long run of skipped batches
    n = 12_000_000
    X = np.ones((n, 1), np.float32)
    y = np.ones(n, np.float32)
    weights = np.zeros(n, np.float32)
    weights[-1] = 1.0
    real_run_fit = _core.run_fit

    def run_fit(*args, **kwargs):
        # the "Ctrl-C" (SIGALRM, whose handler raises KeyboardInterrupt) comes 2 ms into the
        # core's run: its handler runs at the core's next signal check
        signal.setitimer(signal.ITIMER_REAL, 0.002)
        return real_run_fit(*args, **kwargs)

    monkeypatch.setattr(_core, "run_fit", run_fit)
    previous = signal.signal(signal.SIGALRM, _interrupt)
    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            gdcore.fit(X, y, sample_weight=weights, batch_size=batch_size, optimizer="adam",
                       epochs=1, shuffle=False, tol=None, n_threads=1)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    # stopped inside the epoch, before its one weighted row: not after the whole epoch
    assert caught.value.result.n_epochs == 0
    assert caught.value.result.n_updates == 0
