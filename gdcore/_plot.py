"""Loss curves with matplotlib (optional: pip install 'gdcore[plot]')."""

from __future__ import annotations

import numpy as np


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'gdcore[plot]'") from None
    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        import os
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def supported_image_formats():
    """The file extensions (without the dot) matplotlib can save a figure as here: .pgf only
    where a LaTeX it runs is installed (without one, saving fails after the work is done)."""
    _pyplot()
    import shutil

    from matplotlib.backend_bases import FigureCanvasBase
    formats = set(FigureCanvasBase.get_supported_filetypes())
    if not any(shutil.which(tex) for tex in ("xelatex", "lualatex", "pdflatex")):
        formats.discard("pgf")
    return formats


def plot_loss_curves(curves, ax=None, title=None):
    """Plot {label: loss_history} on a log scale (epochs on x); returns the Axes."""
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    for label, history in curves.items():
        history = np.asarray(history, dtype=np.float64)
        ax.plot(np.arange(1, len(history) + 1), history, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss J")
    if title:
        ax.set_title(title)
    if len(curves) > 1 or any(curves):
        ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    return ax


def save_loss_plot(path, curves, title=None):
    """Write the loss curves to an image file (format from the extension, e.g. .png)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot_loss_curves(curves, ax=ax, title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
