"""Predictions of a fitted model, X @ coef + intercept, with X checked and never copied whole."""

from __future__ import annotations

import collections

import numpy as np

from ._validation import (_boolean, arrow_column_names, arrow_columns, check_all_finite,
                          is_boolean_arrow_type)

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


def columns_by_name(X, feature_names, dtype=None):
    """A DataFrame's or pyarrow Table's columns named ``feature_names``, in that order (a
    Table's as one 2-D array, in ``dtype`` where given), or None when X has no column names
    (it is taken by position).  A ValueError names a feature X lacks, or names twice."""
    arrow = arrow_column_names(X)
    columns = arrow if arrow is not None else getattr(X, "columns", None)
    if columns is None:
        return None
    by_name = {str(column): column for column in columns}
    missing = [name for name in feature_names if name not in by_name]
    if missing:
        from ._io import _shown
        raise ValueError(f"X has no column {missing[0]!r} (the model's features: "
                         f"{_shown(feature_names)}); its columns are taken by name (an "
                         "array's, such as X.to_numpy(), by position)")
    # a feature's name twice (or 0 and "0") leaves its column ambiguous: one of them
    # was taken, or both and a shape error that named neither
    counts = collections.Counter(str(column) for column in columns)
    repeated = [name for name in feature_names if counts[name] > 1]
    if repeated:
        raise ValueError(f"X has more than one column named {repeated[0]!r}, a "
                         "feature of the model; name each column once")
    chosen = [by_name[name] for name in feature_names]
    if arrow is not None:
        # a feature's boolean column, refused as a fit and an array's predict refuse it:
        # column by column, True and False became 1.0 and 0.0 beside the float columns
        if any(is_boolean_arrow_type(X.schema.field(name).type) for name in chosen):
            raise _boolean("X")
        return arrow_columns(X, chosen, dtype)
    if chosen == list(columns):
        # X is its features in order: before pandas 3, X[chosen] copies the whole frame,
        # where X's own values are read a block of rows at a time (or used as they are)
        return X
    return X[chosen]
