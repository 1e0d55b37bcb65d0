"""Reading tables for the command line: CSV, Parquet, .npy and .npz.

Every problem with a file is a DataError whose message names the file (and the column, and
the row of a bad cell), so the CLI can print one line and exit non-zero.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np


class DataError(ValueError):
    """A data file cannot be used; the message says which file, column and why."""


@dataclass
class Table:
    X: np.ndarray
    y: np.ndarray | None
    feature_names: list
    target: str | None


def _need(module, extra, path):
    try:
        return __import__(module)
    except ImportError:
        raise DataError(f"{path}: reading this format needs {module}: pip install "
                        f"'gdcore[{extra}]'") from None


def _read_frame(path):
    lower = path.lower()
    if lower.endswith((".parquet", ".pq")):
        _need("pyarrow", "io", path)
        import pyarrow.parquet as pq
        try:
            return pq.read_table(path).to_pandas()
        except Exception as exc:
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    pd = _need("pandas", "io", path)
    try:
        return pd.read_csv(path)
    except Exception as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None


def _column_array(frame, column, path):
    import pandas as pd
    values = frame[column]
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        bad = next((v for v in values if not _is_number(v)), values.iloc[0])
        raise DataError(f"{path}: column {column!r} is not numeric (e.g. {bad!r})")
    array = values.to_numpy(dtype=np.float64)
    nonfinite = ~np.isfinite(array)
    if nonfinite.any():
        row = int(np.argmax(nonfinite))
        raise DataError(f"{path}: column {column!r} has a missing or non-finite value in data "
                        f"row {row + 1} ({array[row]})")
    return array


def _is_number(value):
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def _from_frame(frame, path, target, features):
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if target is not None and target not in columns:
        raise DataError(f"{path}: no column {target!r} (columns: {', '.join(columns)})")
    if features:
        missing = [f for f in features if f not in columns]
        if missing:
            raise DataError(f"{path}: no column {missing[0]!r} (columns: {', '.join(columns)})")
    else:
        features = [c for c in columns if c != target]
    if not features:
        raise DataError(f"{path}: no feature columns besides the target {target!r}")
    if len(frame) == 0:
        raise DataError(f"{path}: the table has no rows")
    X = np.column_stack([_column_array(frame, c, path) for c in features])
    y = _column_array(frame, target, path) if target is not None else None
    return Table(np.ascontiguousarray(X), y, list(features), target)


def _from_array(array, path, target, features):
    """A 2-D numeric array: columns are named by their index; the target is a column index."""
    if array.ndim != 2 or array.dtype.kind not in "iuf":
        raise DataError(f"{path}: expected a 2-D numeric array, got {array.ndim}-D {array.dtype}")
    names = [str(i) for i in range(array.shape[1])]
    if target is not None and target not in names:
        raise DataError(f"{path}: no column {target!r}: columns of an array are its indices "
                        f"0..{array.shape[1] - 1}")
    chosen = list(features) if features else [c for c in names if c != target]
    for name in chosen:
        if name not in names:
            raise DataError(f"{path}: no column {name!r} (columns are 0..{array.shape[1] - 1})")
    if target is None and not features:
        # the array is X alone: read it in place (a memmap stays on disk)
        X = array
    else:
        X = np.ascontiguousarray(array[:, [int(c) for c in chosen]])
    y = np.asarray(array[:, int(target)], dtype=np.float64) if target is not None else None
    for name, values in [("target " + str(target), y), ("features", X)]:
        if values is not None and values.dtype.kind == "f" and not np.isfinite(values).all():
            row = int(np.argwhere(~np.isfinite(values))[0][0])
            raise DataError(f"{path}: {name} has a non-finite value in row {row}")
    return Table(X, y, chosen, target)


def read_table(path, target=None, features=None):
    """Read ``path`` into a Table of float features (and the target column, if named).

    CSV (pandas) and Parquet (pyarrow) name columns by header; a .npy 2-D array names them
    by index (opened as a memmap, so a large array is read in place); a .npz holds either
    arrays ``X`` and ``y`` (the target names the y array) or one 2-D array.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    lower = path.lower()
    if lower.endswith(".npy"):
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise DataError(f"{path}: not a readable .npy file ({exc})") from None
        return _from_array(array, path, target, features)
    if lower.endswith(".npz"):
        try:
            archive = np.load(path, allow_pickle=False)
            arrays = {k: archive[k] for k in archive.files}
        except Exception as exc:
            raise DataError(f"{path}: not a readable .npz file ({exc})") from None
        if "X" in arrays:
            key = target if target is not None else ("y" if "y" in arrays else None)
            if key is not None and key not in arrays:
                raise DataError(f"{path}: no array {key!r} (arrays: {', '.join(arrays)})")
            table = _from_array(arrays["X"], path, None, features)
            if key is not None:
                y = np.asarray(arrays[key], dtype=np.float64).reshape(-1)
                if y.shape[0] != table.X.shape[0]:
                    raise DataError(f"{path}: {key!r} has {y.shape[0]} values but X has "
                                    f"{table.X.shape[0]} rows")
                if not np.isfinite(y).all():
                    raise DataError(f"{path}: {key!r} has a non-finite value in row "
                                    f"{int(np.argmax(~np.isfinite(y)))}")
                table.y, table.target = y, key
            return table
        if len(arrays) == 1:
            return _from_array(next(iter(arrays.values())), path, target, features)
        raise DataError(f"{path}: expected arrays 'X' and 'y', got {', '.join(arrays)}")
    return _from_frame(_read_frame(path), path, target, features)


FOLDER_SUFFIXES = (".parquet", ".pq", ".csv")


def folder_files(folder):
    """The Parquet and CSV files of a folder, in name order (each one a chunk of the data)."""
    files = sorted(os.path.join(folder, name) for name in os.listdir(folder)
                   if name.lower().endswith(FOLDER_SUFFIXES))
    if not files:
        raise DataError(f"{folder}: no .parquet or .csv files in this folder")
    return files


def iter_folder_tables(folder, target=None, features=None):
    """Read a folder's files one at a time as Tables with the same columns.

    The feature columns are fixed by the first file (or ``features``), so every later file
    must have them."""
    names = list(features) if features else None
    for path in folder_files(folder):
        table = read_table(path, target, names)
        names = table.feature_names
        yield table
