"""Ctrl-C during a fit (SIGINT to a subprocess), the GIL released while the core runs, and
the gdcore command."""

import contextlib
import gc
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import gdcore

from conftest import interrupt_child, subprocess_env

LONG_FIT = textwrap.dedent("""
    import math, sys, time
    import numpy as np
    import gdcore
    X, y, _ = gdcore.make_regression(200_000, 20, seed=0)
    B = BATCH
    options = dict(optimizer="adam", lr=1e-4, batch_size=B, tol=None, backend=BACKEND,
                   precompute=False, seed=1, n_threads=2)
    def report(progress):
        if progress.epoch == 1:
            print("running", flush=True)
    try:
        gdcore.fit(X, y, epochs=100000, callback=report, **options)
    except KeyboardInterrupt as exc:
        r = exc.result
        assert r.n_epochs >= 1 and len(r.loss_history) == r.n_epochs
        # the parameters of the last finished update: those of a fresh fit of the same
        # epochs, then (a mini-batch fit may stop within an epoch) of the same updates of
        # the next epoch's batches, its rows put in that epoch's order by hand
        fresh = gdcore.fit(X, y, epochs=r.n_epochs, **options)
        per_epoch = 1 if B is None else math.ceil(len(y) / B)
        extra = r.n_updates - r.n_epochs * per_epoch
        assert 0 <= extra < per_epoch, (r.n_epochs, r.n_updates)
        assert np.array_equal(r.loss_history, fresh.loss_history)
        if extra == 0:
            # bitwise: the same core, threads and seed
            assert np.array_equal(r.coef, fresh.coef), np.abs(r.coef - fresh.coef).max()
            assert r.intercept == fresh.intercept, (r.intercept, fresh.intercept)
        else:
            rng = np.random.default_rng(1)
            for _ in range(r.n_epochs + 1):
                order = rng.permutation(len(y))
            rows = order[:extra * B]
            rest = gdcore.fit(X[rows], y[rows], epochs=1, init=fresh,
                              **dict(options, shuffle=False, precompute="auto",
                                     batch_size=B if extra > 1 else None))
            assert rest.n_updates == r.n_updates
            # the rebuilt epoch ends where the fit was stopped, and its last batch may be
            # summed in another order (measured: the intercept 1 ulp apart at most)
            assert np.allclose(r.coef, rest.coef, rtol=1e-12, atol=0), (r.coef, rest.coef)
            assert np.isclose(r.intercept, rest.intercept, rtol=1e-12, atol=1e-300)
        print("interrupted", r.n_epochs, r.n_updates, extra, time.perf_counter(), flush=True)
        sys.exit(3)
""")


@pytest.mark.parametrize("batch, backend", [("None", "core"), ("64", "core"), ("1", "core"),
                                            ("None", "numpy")])
def test_ctrl_c_stops_a_fit(batch, backend):
    code = LONG_FIT.replace("BATCH", batch).replace("BACKEND", repr(backend))
    returncode, out, sent = interrupt_child(code, 0.3)
    assert returncode == 3, out
    words = out.split()
    # the fit asked for hours of epochs: it stopped on the signal (how soon is measured, not
    # tested: timings belong in benchmarks), holding exactly what the child compared
    assert words[0] == "interrupted" and 1 <= int(words[1]) < 100000


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("mode", [dict(batch_size=None, precompute=False),
                                  dict(batch_size=None, precompute=True),
                                  dict(batch_size=64), dict(batch_size=1)],
                         ids=["full-streaming", "full-gram", "mini-64", "single"])
@pytest.mark.parametrize("stop_at", [1, 3])
def test_interrupt_at_an_epoch_end_holds_that_epochs_fit(stop_at, mode, backend):
    """A KeyboardInterrupt raised in the callback after epoch ``stop_at`` (a deterministic
    Ctrl-C): exc.result holds, bit for bit, a fresh fit of exactly that many epochs with the
    same seed and threads: parameters, losses, counters, and its state continues as well."""
    X, y, _ = gdcore.make_regression(300, 4, seed=2)
    options = dict(optimizer="adam", lr=0.01, tol=None, seed=4, n_threads=2,
                   backend=backend, **mode)

    def interrupt(progress):
        if progress.epoch == stop_at:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt) as caught:
        gdcore.fit(X, y, epochs=10, callback=interrupt, **options)
    r = caught.value.result
    fresh = gdcore.fit(X, y, epochs=stop_at, **options)
    assert r.stop_reason == "interrupted"
    assert (r.n_epochs, r.n_updates) == (fresh.n_epochs, fresh.n_updates)
    assert r.n_updates == stop_at * (1 if mode["batch_size"] is None
                                     else -(-300 // mode["batch_size"]))
    np.testing.assert_array_equal(r.coef, fresh.coef)
    assert r.intercept == fresh.intercept
    np.testing.assert_array_equal(r.loss_history, fresh.loss_history)
    # and the interrupted fit continues exactly as the uninterrupted one
    whole = gdcore.fit(X, y, epochs=stop_at + 2, **options)
    rest = gdcore.fit(X, y, epochs=2, init=r, **options)
    np.testing.assert_array_equal(rest.coef, whole.coef)
    assert rest.intercept == whole.intercept


def ticks_inside(work):
    """Run ``work()`` while another thread records perf_counter ticks (one a millisecond,
    sleeping in between, without the GIL) with a switch interval far longer than the run,
    so that the interpreter never hands the GIL over on its own; returns (the ticks taken
    inside the windows ``work`` reports, the windows).  ``work(windows)`` appends
    (start, end) pairs of the stretches it wants counted."""
    ticks, windows = [], []
    stop = threading.Event()

    def counter():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    thread = threading.Thread(target=counter)
    thread.start()
    try:
        time.sleep(0.01)        # the counter is running (and sleeping, without the GIL)
        work(windows)
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    return [t for t in ticks if any(start < t < end for start, end in windows)], windows


def test_gil_is_released_during_a_fit(monkeypatch):
    """Only ticks taken while gdcore._core.run_fit itself runs count (numpy's permutation and
    the Python around the core release the GIL too): a streaming full-batch fit in rows
    order, without a callback, so the compiled loop runs its epochs with nothing to call
    back.  The counter can tick inside run_fit only if the core lets go of the GIL."""
    X, y, _ = gdcore.make_regression(100_000, 20, seed=0)
    real_run_fit = gdcore._core.run_fit

    def work(windows):
        def timed_run_fit(*args, **kwargs):
            start = time.perf_counter()
            try:
                return real_run_fit(*args, **kwargs)
            finally:
                windows.append((start, time.perf_counter()))
        monkeypatch.setattr(gdcore._core, "run_fit", timed_run_fit)
        gdcore.fit(X, y, optimizer="sgd", lr=0.01, epochs=60, tol=None, shuffle=False,
                   precompute=False, n_threads=1)
    during, windows = ticks_inside(work)
    assert len(windows) == 1        # one call of the core ran the whole fit
    assert during


def test_gil_tick_counter_sees_a_held_gil():
    """The control of the test above: a stretch that holds the GIL (a pure-Python busy
    loop) gets no tick from the counter, so ticks inside run_fit mean the GIL was free."""
    def work(windows):
        start = time.perf_counter()
        while time.perf_counter() < start + 0.05:
            pass
        windows.append((start, time.perf_counter()))
    during, _ = ticks_inside(work)
    assert during == []


def test_cli_demo_runs(tmp_path):
    out = subprocess.run([sys.executable, "-m", "gdcore", "demo", "--n", "3000", "--d", "5",
                          "--dtype", "float32"], capture_output=True, text=True, check=True,
                         cwd=tmp_path, env=subprocess_env()).stdout
    lines = [line for line in out.splitlines() if line[:1].isalpha()]
    table = {line.split()[0]: line.split() for line in lines
             if line.split()[0] in {"gd", "sgd", "momentum", "nesterov", "adagrad", "rmsprop",
                                    "adam", "amsgrad", "normalized"}}
    assert len(table) == 9, out
    for name, row in table.items():
        mse, distance = float(row[-3]), float(row[-2])
        # noise variance 0.01: MSE ≈ 0.01 + O(‖w − w*‖²); every optimizer gets within 0.012
        # of w* here (measured), so 0.03 catches one that stops short
        assert np.isfinite(mse) and mse < 0.0125, (name, row)
        assert distance < 0.03, (name, row)


def test_cli_rejects_bad_size():
    proc = subprocess.run([sys.executable, "-m", "gdcore", "demo", "--n", "0"],
                          capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode != 0 and "--n" in proc.stderr + proc.stdout


STOPS = {"tol": dict(tol=1e-4), "gtol": dict(gtol=1e-3, tol=None),
         "callback": dict(tol=None), "interrupted": dict(tol=None),
         "diverged": dict(tol=None, lr=1e6), "epochs": dict(tol=None)}


def _stopper(how):
    """The user's callback of each case: stops the fit at epoch 20, or Ctrl-C at epoch 3."""
    def stop(progress):
        if how == "interrupted" and progress.epoch == 3:
            raise KeyboardInterrupt
        return how == "callback" and progress.epoch == 20
    return stop


@pytest.mark.parametrize("how", sorted(STOPS))
def test_a_progress_bar_ends_saying_why_the_fit_stopped(how, capsys):
    """A fit ended early leaves its bar short of its total ("35/1000"): the last frame says
    why, so that it does not look like a hung or crashed run.  The stopping epoch is the
    NumPy reference's, run without a bar."""
    pytest.importorskip("tqdm", reason="progress bars need the optional tqdm")
    X, y, _ = gdcore.make_regression(500, 3, seed=0)
    options = dict(dict(optimizer="gd", lr=0.1, epochs=1000), **STOPS[how])
    try:
        truth = gdcore.fit(X, y, backend="numpy", callback=_stopper(how), **options)
    except (gdcore.DivergenceError, KeyboardInterrupt) as exc:
        truth = exc.result
    assert truth.stop_reason == how
    epochs = truth.n_epochs        # counted: a diverged fit's last finite epoch
    assert (epochs == 1000) == (how == "epochs")
    with pytest.raises((gdcore.DivergenceError, KeyboardInterrupt)) if how in (
            "diverged", "interrupted") else contextlib.nullcontext():
        with gdcore.progress_bar(epochs=1000, callback=_stopper(how)) as bar:
            gdcore.fit(X, y, callback=bar, **options)
    frame = capsys.readouterr().err.rstrip("\n").split("\r")[-1]
    assert f" {epochs}/1000 " in frame, frame
    note = {"tol": f"(stopped: tol at epoch {epochs})",
            "gtol": f"(stopped: gtol at epoch {epochs})",
            "callback": "(stopped: callback at epoch 20)",
            "interrupted": "(interrupted after epoch 3)",
            "diverged": f"(diverged in epoch {epochs + 1})",
            "epochs": "gdcore.fit: 100%"}[how]
    assert frame.startswith("gdcore.fit " + note if how != "epochs" else note), frame


def test_only_gdcores_bars_are_told_how_the_fit_ended():
    """The end-of-fit hook is looked up in the callback's own attributes: a Mock, which makes
    up any attribute asked for, is called once an epoch and for nothing else."""
    from unittest import mock
    X, y, _ = gdcore.make_regression(200, 3, seed=0)
    callback = mock.Mock(return_value=False)
    result = gdcore.fit(X, y, optimizer="gd", lr=0.1, epochs=7, tol=None, callback=callback)
    assert len(callback.mock_calls) == result.n_epochs == 7
    assert [c.args[0].epoch for c in callback.mock_calls] == list(range(1, 8))


@pytest.mark.parametrize("how", ["tol", "callback", "interrupted", "diverged"])
def test_a_continued_fits_bar_numbers_epochs_as_the_fit_does(how, capsys):
    """A fit continued from 30 epochs counts on from them: its FitProgress.epoch, n_epochs,
    DivergenceError.epoch and warnings say epoch 31, 32, ...  The bar's last frame names the
    same epoch (it named its own count, 30 less: "diverged in epoch 27" above "the loss stopped
    being finite in epoch 57").  The epochs are the NumPy reference's, run without a bar."""
    pytest.importorskip("tqdm", reason="progress bars need the optional tqdm")
    X, y, _ = gdcore.make_regression(500, 3, seed=0)
    first = gdcore.fit(X, y, optimizer="gd", lr=0.01, epochs=30, tol=None, backend="numpy")
    stops = {"tol": dict(lr=0.1), "callback": dict(lr=0.1, tol=None),
             "interrupted": dict(lr=0.1, tol=None), "diverged": dict(lr=1e6, tol=None)}

    def stop(progress):        # the user's callback sees the fit's own epoch numbers
        if how == "interrupted" and progress.epoch == 33:
            raise KeyboardInterrupt
        return how == "callback" and progress.epoch == 40
    options = dict(init=first, epochs=1000, callback=stop, **stops[how])
    raises = (pytest.raises((gdcore.DivergenceError, KeyboardInterrupt))
              if how in ("diverged", "interrupted") else contextlib.nullcontext())
    with raises as caught:
        truth = gdcore.fit(X, y, backend="numpy", **options)
    if how in ("diverged", "interrupted"):
        truth = caught.value.result
    assert truth.stop_reason == how and truth.n_epochs > 30
    if how == "diverged":
        assert caught.value.epoch == truth.n_epochs + 1     # what the error's message names
    capsys.readouterr()
    with pytest.raises((gdcore.DivergenceError, KeyboardInterrupt)) if how in (
            "diverged", "interrupted") else contextlib.nullcontext():
        with gdcore.progress_bar(epochs=1000, callback=stop) as bar:
            gdcore.fit(X, y, **dict(options, callback=bar))
    frame = capsys.readouterr().err.rstrip("\n").split("\r")[-1]
    assert f" {truth.n_epochs - 30}/1000 " in frame, frame     # the bar counts this call's
    note = {"tol": f"(stopped: tol at epoch {truth.n_epochs})",
            "callback": "(stopped: callback at epoch 40)",
            "interrupted": "(interrupted after epoch 33)",
            "diverged": f"(diverged in epoch {truth.n_epochs + 1})"}[how]
    assert frame.startswith(f"gdcore.fit {note}"), frame


def test_fit_chunks_and_estimator_bars_say_why_the_fit_stopped(capsys):
    """The same last frame from fit_chunks' bar and GDRegressor's (verbose)."""
    pytest.importorskip("tqdm", reason="progress bars need the optional tqdm")
    X, y, _ = gdcore.make_regression(500, 3, seed=0)
    options = dict(optimizer="gd", lr=0.1, epochs=1000)
    epochs = gdcore.fit(X, y, backend="numpy", **options).n_epochs
    assert epochs < 1000
    with gdcore.progress_bar(epochs=1000) as bar:
        gdcore.fit_chunks([(X[:200], y[:200]), (X[200:], y[200:])], callback=bar, **options)
    frame = capsys.readouterr().err.rstrip("\n").split("\r")[-1]
    assert frame.startswith(f"gdcore.fit (stopped: tol at epoch {epochs}): "), frame
    pytest.importorskip("sklearn", reason="GDRegressor needs scikit-learn (gdcore[sklearn])")
    model = gdcore.GDRegressor(verbose=1, **options).fit(X, y)
    frame = capsys.readouterr().err.rstrip("\n").split("\r")[-1]
    assert model.n_iter_ == epochs
    assert frame.startswith(f"GDRegressor (stopped: tol at epoch {epochs}): "), frame


@pytest.mark.parametrize("earlier, at", [(0, 3), (0, 1), (5, 1)])
def test_a_bar_counts_the_epoch_a_ctrl_c_ended_before_the_callback_saw_it(
        earlier, at, monkeypatch, capsys):
    """fit_chunks holds a Ctrl-C back while an epoch's update and counters move, and raises it
    once they have: after n_epochs counts the epoch, before the callback sees it.  The bar
    counted one epoch less than its "interrupted after epoch 3", and, in a fit's first epoch
    (a fresh fit's, or one continuing 5 epochs), showed 0/10 beside "interrupted after epoch
    1" (or 6)."""
    pytest.importorskip("tqdm", reason="progress bars need the optional tqdm")
    import os
    import signal

    import gdcore._chunked
    X, y, _ = gdcore.make_regression(500, 3, seed=0)
    chunks = [(X[:200], y[:200]), (X[200:], y[200:])]
    init = (gdcore.fit_chunks(chunks, optimizer="gd", lr=0.1, epochs=earlier, tol=None)
            if earlier else None)
    original = gdcore._chunked.stop_after_epoch

    def ctrl_c(state, *args):
        if state.n_epochs == earlier + at:
            os.kill(os.getpid(), signal.SIGINT)     # held back until the epoch is counted
        return original(state, *args)
    monkeypatch.setattr(gdcore._chunked, "stop_after_epoch", ctrl_c)
    seen = []
    with pytest.raises(KeyboardInterrupt) as caught:
        with gdcore.progress_bar(epochs=10, callback=lambda p: seen.append(p.epoch)) as bar:
            gdcore.fit_chunks(chunks, optimizer="gd", lr=0.1, epochs=10, tol=None,
                              callback=bar, init=init)
    result = caught.value.result
    assert seen == list(range(earlier + 1, earlier + at)) and result.n_epochs == earlier + at
    frame = capsys.readouterr().err.rstrip("\n").split("\r")[-1]
    assert frame.startswith(f"gdcore.fit (interrupted after epoch {earlier + at}): ") \
        and f" {at}/10 " in frame, frame
    assert f"loss={result.final_loss:.6g}" in frame, frame


def test_progress_bar_counts_epochs_and_closes_however_the_fit_ends():
    tqdm = pytest.importorskip("tqdm", reason="progress bars need the optional tqdm")
    X, y, _ = gdcore.make_regression(500, 3, seed=0)
    seen = []
    with gdcore.progress_bar(epochs=40, callback=lambda p: seen.append(p.epoch) or False) as bar:
        result = gdcore.fit(X, y, optimizer="gd", lr=0.1, epochs=40, tol=None, callback=bar)
    assert seen == list(range(1, 41)) and result.n_epochs == 40
    # the first bar is in a reference cycle (its fit's result): collected now, its close at
    # collection is not counted below as the second bar's
    del bar
    gc.collect()
    bars = []
    original = tqdm.auto.tqdm.close

    def close(self):
        bars.append(self.n)
        return original(self)
    tqdm.auto.tqdm.close = close
    try:
        with pytest.raises(RuntimeError, match="stop"):
            with gdcore.progress_bar(epochs=40) as bar:
                def failing(progress):
                    bar(progress)
                    if progress.epoch == 3:
                        raise RuntimeError("stop")
                    return False
                gdcore.fit_chunks([(X, y)], optimizer="gd", lr=0.1, epochs=40, tol=None,
                                  callback=failing)
    finally:
        tqdm.auto.tqdm.close = original
    assert bars == [3]      # closed, at the epoch the fit ended


def test_stop_notes_by_hand():
    """The last frame's words for each way a fit ends, numbered as the fit numbers epochs."""
    from gdcore._progress import stop_note
    assert stop_note("epochs", 500) is None
    assert stop_note("tol", 37) == "stopped: tol at epoch 37"
    assert stop_note("diverged", 11) == "diverged in epoch 12"
    assert stop_note("interrupted", 3) == "interrupted after epoch 3"
    assert stop_note("interrupted", 0) == "interrupted in epoch 1"


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="Ctrl-C is handled in the main thread")
@pytest.mark.parametrize("backend", ["numpy", "chunks"])
def test_ctrl_c_reaches_the_main_threads_fit_while_another_thread_fits(backend, monkeypatch):
    """A fit in another thread runs while the main thread's Python-loop fit (NumPy backend or
    fit_chunks) holds Ctrl-C back in its update blocks: the other fit must not share the
    main thread's guard, or a Ctrl-C arriving while it is in one of its blocks is raised in
    that thread when the block ends, and the main thread's fit runs on (it did, to its last
    epoch, and the other thread died of the KeyboardInterrupt)."""
    import os
    import signal

    from gdcore import _reference

    X, y, _ = gdcore.make_regression(200, 3, seed=0)
    inside, go = threading.Event(), threading.Event()
    real_step = _reference._Update.step

    def step(self, *args, **kwargs):
        # the other thread's first update waits, inside its guarded block, for the Ctrl-C
        if threading.current_thread() is not threading.main_thread() and not inside.is_set():
            inside.set()
            go.wait(10)
        return real_step(self, *args, **kwargs)
    monkeypatch.setattr(_reference._Update, "step", step)
    raised_there = []

    def other():
        try:
            gdcore.fit(X, y, epochs=3, tol=None, backend="numpy")
        except BaseException as exc:    # noqa: BLE001 (what reached this thread)
            raised_there.append(type(exc).__name__)
    thread = threading.Thread(target=other)

    def on_epoch(progress):
        if progress.epoch == 1:
            thread.start()
            assert inside.wait(10)
            try:
                os.kill(os.getpid(), signal.SIGINT)
            finally:
                go.set()
                thread.join(10)
    options = dict(epochs=5, tol=None, callback=on_epoch)
    with pytest.raises(KeyboardInterrupt) as caught:
        if backend == "numpy":
            gdcore.fit(X, y, backend="numpy", **options)
        else:
            gdcore.fit_chunks(lambda: iter([(X[:100], y[:100]), (X[100:], y[100:])]),
                              **options)
    assert not thread.is_alive()
    assert raised_there == []
    assert caught.value.result.n_epochs in (1, 2)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


SIGTERM_WHILE_WRITING = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import gdcore
    from gdcore.cli import main, predict
    folder = sys.argv[1]
    X, y, _ = gdcore.make_regression(2000, 3, seed=0)
    np.save(f"{folder}/X.npy", np.column_stack([X, y]))
    assert main(["fit", f"{folder}/X.npy", "--target", "3", "--epochs", "3",
                 "--save", f"{folder}/m.json"]) == 0
    with open(f"{folder}/p.csv", "w") as f:
        f.write("earlier\\n")
    write = predict.write_predictions

    def write_then_terminated(out, model, blocks):
        out.write("half")
        os.kill(os.getpid(), signal.SIGTERM)    # as `kill PID` would, mid-write
        write(out, model, blocks)
    predict.write_predictions = write_then_terminated
    status = main(["predict", f"{folder}/m.json", f"{folder}/X.npy", "--out",
                   f"{folder}/p.csv"])
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL     # put back
    print("status", status, flush=True)
""")


def test_sigterm_while_writing_leaves_no_temporary_file(tmp_path):
    """`kill PID` (SIGTERM) while gdcore predict --out (or fit --save) wrote: Python's default
    ended the process on the spot, leaving the partial temporary file of _atomic beside the
    earlier one. It is now raised where the command is, so the file is removed as on
    Ctrl-C: one line, status 143, the earlier file kept."""
    proc = subprocess.run([sys.executable, "-c", SIGTERM_WHILE_WRITING, str(tmp_path)],
                          capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert proc.stdout.splitlines()[-1:] == ["status 143"], (proc.returncode, proc.stdout,
                                                               proc.stderr)
    assert proc.stderr.splitlines()[-1:] == ["gdcore predict: terminated"], proc.stderr
    assert (tmp_path / "p.csv").read_text() == "earlier\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X.npy", "m.json", "p.csv"]
