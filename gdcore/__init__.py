"""gdcore: linear regression by gradient descent, with every classic optimizer, in a fused,
multithreaded Cython core.

    >>> import gdcore
    >>> X, y, true_coef = gdcore.make_regression(10_000, 20, seed=0)
    >>> result = gdcore.fit(X, y, optimizer="adam", lr=0.05, epochs=200)
    >>> result.coef, result.intercept, result.loss_history

See ``gdcore.fit`` for the objective and the options, ``gdcore.optim`` and
``gdcore.schedules`` for the update rules and learning-rate schedules.
"""

from ._cpu_check import UnsuitableCoreError, load_core

try:
    # the core this CPU runs best, checked before it is loaded: see _cpu_check
    _core = load_core(__name__)
except UnsuitableCoreError:
    raise
except ImportError as exc:
    raise ImportError(
        f"gdcore's compiled core gdcore._core cannot be imported from {__path__[0]} ({exc}). "
        "If that folder is a source checkout that is not built in place, it is hiding the "
        "installed gdcore: build it with `pip install -e .`, or run from another folder "
        "(`pytest`, not `python -m pytest`, which puts the current folder first on sys.path)."
    ) from exc

from . import optim, schedules
from ._api import fit
from ._chunked import fit_chunks
from ._data import make_regression
from ._gradcheck import check_grad
from ._model_io import load_model, save_model
from ._progress import progress_bar
from ._result import ConvergenceWarning, DivergenceError, FitProgress, FitResult

__version__ = "0.1.0"


def build_info():
    """How the compiled core in use was built, as a dict: ``core``, the one loaded for this
    CPU ("default": gdcore/_core; a portable x86-64 Linux build also holds "x86-64-v3" and
    "x86-64-v4", chosen at import by the CPU's features or by ``GDCORE_CORE``); ``flags``,
    its compile flags ("" if the build did not record them); ``variants``, the cores this
    build holds besides gdcore/_core; ``openmp``, whether it runs threads."""
    from . import _cpu_check
    return {"core": _cpu_check.loaded["core"], "flags": _cpu_check.loaded["flags"],
            "variants": list(_cpu_check.loaded["variants"]), "openmp": _core.openmp_enabled()}


def get_include():
    """The folder holding gdcore.h (the C API): pass it as include_dirs when building against
    gdcore.  For Cython, see get_cython_include."""
    import os
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "include")


def get_cython_include():
    """The folder to give Cython (cythonize's ``include_path``) so that ``cimport gdcore.capi``
    finds ``gdcore/capi.pxd`` wherever gdcore is installed: an editable install
    (``pip install -e .``) keeps the package off ``sys.path``, where Cython looks by default."""
    import os
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def __getattr__(name):
    # scikit-learn is optional: import the estimator only when it is asked for.
    if name == "GDRegressor":
        from .estimator import GDRegressor
        return GDRegressor
    raise AttributeError(f"module 'gdcore' has no attribute {name!r}")


__all__ = ["fit", "fit_chunks", "GDRegressor", "get_include", "get_cython_include", "load_model",
           "save_model", "FitResult", "FitProgress", "DivergenceError", "ConvergenceWarning",
           "check_grad", "make_regression", "optim", "schedules", "build_info", "progress_bar",
           "__version__"]
