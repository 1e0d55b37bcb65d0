"""Progress bars for long fits, built on the per-epoch callback (tqdm, optional)."""

from __future__ import annotations

import contextlib
import sys


@contextlib.contextmanager
def progress_bar(epochs, desc="gdcore.fit", callback=None):
    """A tqdm bar of epochs, loss and epochs per second, as a callback for :func:`gdcore.fit`,
    :func:`gdcore.fit_chunks` or :func:`gdcore.dask.fit` (needs tqdm)::

        with gdcore.progress_bar(epochs=500) as bar:
            gdcore.fit(X, y, epochs=500, callback=bar)

    ``callback``, if given, is called too and may stop the fit.  The bar closes with the
    block, however the fit ended (tol, an error, Ctrl-C)."""
    bar, close = progress_callback(epochs, enabled=True, desc=desc, user_callback=callback)
    try:
        yield bar
    finally:
        close()


def progress_callback(total_epochs, enabled=None, desc="fit", stream=None, user_callback=None):
    """A (callback, close) pair showing epoch, loss and epochs per second in a tqdm bar.

    ``enabled=None`` shows the bar only when ``stream`` (default stderr) is a terminal, so
    pipes and logs stay quiet; True forces it (an ImportError names the missing package),
    False turns it off.  ``user_callback``, if given, is still called and may stop the fit.
    """
    stream = sys.stderr if stream is None else stream
    asked = enabled is True
    if enabled is None:
        enabled = hasattr(stream, "isatty") and stream.isatty()
    if not enabled:
        return user_callback, None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if not asked:   # the terminal default is a nicety: the base install has no tqdm
            return user_callback, None
        raise ImportError("progress bars need tqdm: pip install 'gdcore[progress]'") from None
    bar = tqdm(total=total_epochs, desc=desc, unit="epoch", file=stream, dynamic_ncols=True)

    def callback(progress):
        # the postfix first: update() redraws, and should show this epoch's loss
        bar.set_postfix(loss=f"{progress.loss:.6g}", refresh=False)
        bar.update(1)
        return bool(user_callback(progress)) if user_callback is not None else False

    return callback, bar.close
