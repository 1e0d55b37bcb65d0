"""Progress bars for long fits, built on the per-epoch callback (tqdm, optional)."""

from __future__ import annotations

import contextlib
import sys

# The attribute of a callback that a fit calls, however it ends, with its FitResult (the
# .result of a DivergenceError or KeyboardInterrupt too): how a bar learns why its fit
# stopped.  Private to gdcore's own bars; a callback without it is not told.
FIT_ENDED = "_gdcore_fit_ended"


@contextlib.contextmanager
def progress_bar(epochs, desc="gdcore.fit", callback=None):
    """A tqdm bar of epochs, loss and epochs per second, as a callback for :func:`gdcore.fit`,
    :func:`gdcore.fit_chunks` or :func:`gdcore.dask.fit` (needs tqdm)::

        with gdcore.progress_bar(epochs=500) as bar:
            gdcore.fit(X, y, epochs=500, callback=bar)

    ``callback``, if given, is called too and may stop the fit.  The bar closes with the
    block, however the fit ended; a fit that ended before its epochs ran out says why in the
    bar's last frame ("stopped: tol at epoch 37", "diverged in epoch 12", "interrupted after
    epoch 3"; epochs numbered as the fit numbers them, a continued fit's after the earlier
    fit's), when the bar itself was the fit's callback."""
    # checked here, before the fit: tqdm took any total and desc, and a callback that is not
    # callable was found only once the first epoch had run
    from ._validation import check_callback, check_int
    epochs = check_int("epochs", epochs, low=1, allow_none=True)
    if not isinstance(desc, str):
        raise TypeError(f"desc must be a string, got {type(desc).__name__} {desc!r}")
    check_callback(callback)
    bar, close = progress_callback(epochs, enabled=True, desc=desc, user_callback=callback)
    try:
        yield bar
    finally:
        close()


def progress_wanted(enabled=None, stream=None):
    """Whether progress_callback(enabled=enabled, stream=stream) shows a bar: None, only on
    a terminal (and quietly not without tqdm); True raises an ImportError naming the package
    when tqdm is missing.  So a caller can check before its work and make the bar after."""
    stream = sys.stderr if stream is None else stream
    asked = enabled is True
    if enabled is None:
        enabled = hasattr(stream, "isatty") and stream.isatty()
    if not enabled:
        return False
    try:
        import tqdm.auto  # noqa: F401
    except ImportError:
        if not asked:   # the terminal default is a nicety: the base install has no tqdm
            return False
        raise ImportError("progress bars need tqdm: pip install 'gdcore[progress]'") from None
    return True


def progress_callback(total_epochs, enabled=None, desc="fit", stream=None, user_callback=None):
    """A (callback, close) pair showing epoch, loss and epochs per second in a tqdm bar.

    ``enabled=None`` shows the bar only when ``stream`` (default stderr) is a terminal, so
    pipes and logs stay quiet; True forces it (an ImportError names the missing package),
    False turns it off.  ``user_callback``, if given, is still called and may stop the fit.
    The fit the callback is given to tells it how it ended, and close() writes the reason
    of an early end into the bar's description before its last frame (see stop_note).
    """
    stream = sys.stderr if stream is None else stream
    if not progress_wanted(enabled, stream):
        return user_callback, None
    from tqdm.auto import tqdm
    from ._validation import callback_says_stop
    bar = tqdm(total=total_epochs, desc=desc, unit="epoch", file=stream, dynamic_ncols=True)
    ended = []      # the FitResult of each fit run with this callback, as it ended
    shown = [None]  # the epoch number of the last FitProgress the bar counted

    def callback(progress):
        # the postfix first: update() redraws, and should show this epoch's loss
        bar.set_postfix(loss=f"{progress.loss:.6g}", refresh=False)
        bar.update(1)
        shown[0] = progress.epoch
        return callback_says_stop(user_callback(progress)) if user_callback is not None else False

    def fit_ended(result, epochs_before):
        # A Ctrl-C can end a fit after an epoch was counted and before this callback saw it
        # (raised as the epoch's bookkeeping ends, or inside the callback): count it, so the
        # bar agrees with the "interrupted after epoch N" its last frame shows.  Before the
        # callback has seen any epoch of this fit, the bar has counted up to the epochs
        # before it (a continued fit's earlier ones, which the bar does not count)
        counted = epochs_before if shown[0] is None else shown[0]
        if result.n_epochs > counted:
            bar.set_postfix(loss=f"{result.final_loss:.6g}", refresh=False)
            bar.update(result.n_epochs - counted)
        shown[0] = None
        ended.append(result)

    def close():
        # numbered as the fit numbers its epochs (a continued fit's count on from the earlier
        # fit's, as its FitProgress, n_epochs and DivergenceError do), not by the bar's count
        note = stop_note(ended[-1].stop_reason, ended[-1].n_epochs) if ended else None
        if note is not None:
            # drawn by close(), whose last frame is the one left on the screen
            bar.set_description(f"{desc} ({note})", refresh=False)
        bar.close()

    setattr(callback, FIT_ENDED, fit_ended)
    return callback, close


def stop_note(stop_reason, n_epochs):
    """What a bar says of a fit that ended with ``stop_reason`` after ``n_epochs`` epochs (its
    FitResult's, an earlier fit's included when it continued one): None when its epochs ran
    out (the bar is full), else why it stopped early, so that a bar short of its total does
    not look like a hung or crashed run."""
    if stop_reason == "epochs":
        return None
    if stop_reason == "diverged":
        # the epoch whose loss or parameters stopped being finite was never counted
        return f"diverged in epoch {n_epochs + 1}"
    if stop_reason == "interrupted":
        return f"interrupted after epoch {n_epochs}" if n_epochs else "interrupted in epoch 1"
    return f"stopped: {stop_reason} at epoch {n_epochs}"     # tol, gtol, callback
