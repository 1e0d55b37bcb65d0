"""Predictions of a fitted model, X @ coef + intercept, with X checked and never copied whole."""

from __future__ import annotations

import numpy as np

from ._validation import check_all_finite

# The most one block of rows takes once converted to the model's dtype (bytes): a float32
# memmap and a float64 model, integer X or a standardised model cost this, not a copy of X.
PREDICT_BLOCK_BYTES = 4 << 20


def predict_in_blocks(X, coef, intercept, mean=None, scale=None, column_names=None):
    """X @ coef + intercept in the wider of X's and coef's dtypes, for a 2-D X of coef's
    width, with x standardised first, (x − mean)/scale, when mean is given.  The rows go a
    block at a time, each made C-contiguous in that dtype and checked finite (a NaN would
    come back as a NaN prediction, unremarked): a ValueError names the first bad entry.
    (BLAS's threads split each block's rows: a row's last bit can depend on where it falls,
    as it does in one whole-array product.)  ``column_names`` name X's columns in errors."""
    dtype = np.result_type(X.dtype, coef.dtype)
    rows = max(64, (PREDICT_BLOCK_BYTES // (dtype.itemsize * max(1, X.shape[1]))) // 64 * 64)
    out = np.empty(X.shape[0], dtype=dtype)
    for start in range(0, X.shape[0], rows):
        block = np.ascontiguousarray(X[start:start + rows], dtype=dtype)
        check_all_finite("X", block, row_offset=start, column_names=column_names)
        if mean is not None:
            block = block - mean
            block /= scale
        out[start:start + rows] = block @ coef + intercept
        del block       # before the next is made: one block's memory at a time, not two
    return out
