"""make_regression: a synthetic linear problem with known coefficients."""

from __future__ import annotations

import numpy as np

from ._validation import check_float, check_int, make_rng


def make_regression(n_samples=1000, n_features=10, *, noise=0.1, intercept=0.0, seed=None,
                    dtype=np.float64, chunk_rows=65536):
    """X (n × d) standard normal, true coefficients w ~ N(0, 1), and
    y = X·w + intercept + noise·ε with ε standard normal.

    Returns (X, y, coef).  Generated in row chunks straight into the output dtype, so a
    1,000,000 × 100 float32 problem needs no float64 copy of X.  A noise or intercept that
    takes a y past the dtype's range is a ValueError (not a y holding infinity).  The data
    are the same for the same seed, dtype and ``chunk_rows`` (the rows of X and the noise are
    drawn chunk by chunk, so another ``chunk_rows`` draws other data past its first chunk).
    """
    n = check_int("n_samples", n_samples, low=1)
    d = check_int("n_features", n_features, low=1)
    chunk_rows = check_int("chunk_rows", chunk_rows, low=1)
    noise = check_float("noise", noise)
    intercept = check_float("intercept", intercept, low=-np.inf)
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if n * d > np.iinfo(np.intp).max // dtype.itemsize:
        # NumPy's "Maximum allowed dimension exceeded" named neither size
        raise ValueError(f"n_samples × n_features = {n} × {d} is more values than an array can "
                         f"hold")
    rng = make_rng(seed)
    coef = rng.standard_normal(d)
    X = np.empty((n, d), dtype=dtype)
    y = np.empty(n, dtype=dtype)
    for start in range(0, n, chunk_rows):
        stop = min(n, start + chunk_rows)
        block = rng.standard_normal((stop - start, d))
        X[start:stop] = block
        with np.errstate(over="ignore"):
            y[start:stop] = block @ coef + intercept + noise * rng.standard_normal(stop - start)
        if not np.isfinite(y[start:stop]).all():
            raise ValueError(f"noise={noise:g} and intercept={intercept:g} take y past "
                             f"{dtype}'s range (largest {np.finfo(dtype).max:.4g}); use smaller "
                             "ones")
    return X, y, coef.astype(dtype)
