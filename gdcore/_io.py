"""Reading tables for the command line: CSV, Parquet, .npy and .npz.

Every problem with a file is a DataError whose message names the file (and the column, and
the row of a bad cell), so the CLI can print one line and exit non-zero.
"""

from __future__ import annotations

import contextlib
import decimal
import io
import os
import stat
import sys
import warnings
from dataclasses import dataclass

import numpy as np

from . import _core


class DataError(ValueError):
    """A data file cannot be used; the message says which file, column and why."""


def one_line(text):
    """An exception's text (or any message) as one line, to be embedded in a one-line error:
    its lines joined by a space (pandas' tokenizer errors end in a newline, and others span
    several lines); spaces within a line are kept (a column name's own)."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


@dataclass
class Table:
    X: np.ndarray
    y: np.ndarray | None
    feature_names: list
    target: str | None
    columns: list | None = None     # every column of a CSV or Parquet file, in its order


def _need(module, extra, path):
    try:
        return __import__(module)
    except ImportError:
        raise DataError(f"{path}: reading this format needs {module}: pip install "
                        f"'gdcore[{extra}]'") from None


# DATA "-": the table comes from stdin (CSV, or Parquet by its first bytes; compressed too,
# by its first bytes, as pandas reads a file named .gz, .bz2, .xz, .zip or .zst by its name).
STDIN = "-"
PARQUET_MAGIC = b"PAR1"
_BZ2_BLOCK_MAGICS = (b"\x31\x41\x59\x26\x53\x59", b"\x17\x72\x45\x38\x50\x90")


def _compression(contents):
    """The compression a stream's first bytes show, or None.  bz2's "BZh" could begin a CSV
    header: its level digit and the first block's magic must follow."""
    if contents.startswith(b"\x1f\x8b"):
        return "gzip"
    if contents.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if contents.startswith((b"PK\x03\x04", b"PK\x05\x06")):    # (the second: an empty zip)
        return "zip"
    if contents.startswith(b"\x28\xb5\x2f\xfd") or (
            contents[:1] and contents[0] & 0xF0 == 0x50 and contents[1:4] == b"\x2a\x4d\x18"):
        return "zstd"   # a frame, or a skippable frame first (as pzstd writes)
    if (contents.startswith(b"BZh") and b"1" <= contents[3:4] <= b"9"
            and contents[4:10] in _BZ2_BLOCK_MAGICS):
        return "bz2"
    return None


def _decompressed(contents, name):
    """A stream's bytes, decompressed if its first bytes show a compression."""
    kind = _compression(contents)
    if kind is None:
        return contents
    try:
        if kind == "gzip":
            import gzip
            return gzip.decompress(contents)
        if kind == "xz":
            import lzma
            return lzma.decompress(contents)
        if kind == "bz2":
            import bz2
            return bz2.decompress(contents)
        if kind == "zip":
            import zipfile
            with zipfile.ZipFile(io.BytesIO(contents)) as archive:
                members = [member for member in archive.infolist() if not member.is_dir()]
                if len(members) != 1:
                    raise DataError(f"{name}: a zip archive of {len(members)} files; it must "
                                    "hold one, the table")
                return archive.read(members[0])
        try:
            import zstandard
        except ImportError:
            raise DataError(f"{name}: zstd-compressed, which needs zstandard to read (pip "
                            "install zstandard), or decompress it first (zstd -dc)") from None
        parts, rest = [], contents
        while rest:     # frame by frame: a decompressobj ends with its frame
            frame = zstandard.ZstdDecompressor().decompressobj()
            parts.append(frame.decompress(rest))
            if not frame.eof:
                raise DataError(f"{name}: not a readable zstd stream (it ends inside a frame)")
            rest = frame.unused_data
        return b"".join(parts)
    except (DataError, MemoryError):
        raise
    except Exception as exc:    # each module's own (OSError, EOFError, LZMAError, ZstdError...)
        raise DataError(f"{name}: not a readable {kind} stream ({one_line(exc)})") from None


def data_name(path):
    """DATA as messages name it: "stdin" for "-"."""
    path = os.fspath(path)
    return "stdin" if path == STDIN else path


def _stream_contents(path):
    """The bytes of what is not a regular file (a pipe, a FIFO, a device such as /dev/stdin;
    "-" is stdin), read once: a pipe cannot be read again, and a CSV is read twice (its
    header as written, then the table).  None for a regular file, read from its path."""
    if path == STDIN:
        return sys.stdin.buffer.read()
    try:
        if stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror})") from None


def _is_row_label_name(name):
    """Whether an index's name is a writer's name for row labels (Dask's
    "__null_dask_index__", pyarrow's "__index_level_0__"), not a column's."""
    return isinstance(name, str) and name.startswith("__") and name.endswith("__")


def _read_frame(path, name):
    """The table of a CSV or Parquet file at ``path`` (``name`` in messages).  A regular
    file's format is its extension's; a stream, which has none to go by, is Parquet if it
    begins as Parquet does, else CSV."""
    contents = _stream_contents(path)
    if contents is not None:
        # a stream has no .gz to go by, as pandas goes by a file's name: its first bytes
        contents = _decompressed(contents, name)
    if (os.path.getsize(path) if contents is None else len(contents)) == 0:
        # (pandas says "No columns to parse from file"; pyarrow, that it is too small)
        raise DataError(f"{name}: empty (not even a header)")

    def source():   # a fresh reader of the one copy of a stream for each read
        return path if contents is None else io.BytesIO(contents)

    if (path.lower().endswith((".parquet", ".pq")) if contents is None
            else contents.startswith(PARQUET_MAGIC)):
        _need("pyarrow", "io", name)
        _need("pandas", "io", name)     # to_pandas() below
        import pyarrow.parquet as pq
        try:
            frame = pq.read_table(source()).to_pandas()
            # a DataFrame's named index (to_parquet after set_index): a column of the file;
            # not the row labels Dask writes as "__null_dask_index__" (pyarrow's own unnamed
            # ones, "__index_level_0__", come back without a name)
            named = [level for level in frame.index.names
                     if level is not None and not _is_row_label_name(level)]
            if named:
                frame = frame.reset_index(level=named)
            return frame
        except Exception as exc:
            raise DataError(f"{name}: not a readable Parquet file ({one_line(exc)})") from None
    pd = _need("pandas", "io", name)
    try:
        with warnings.catch_warnings():
            # pandas' "columns have mixed types" (a non-number among numbers in a large file):
            # _column_array names the column, the row and the value instead
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            frame = pd.read_csv(source(), **_exact_floats(pd))
        header = _header(pd, source())
    except Exception as exc:
        hint, first = "", contents
        if contents is None:    # (a stream beginning as Parquet was read as Parquet above)
            with contextlib.suppress(OSError), open(path, "rb") as f:
                first = f.read(len(NPY_MAGIC))
                if first.startswith(PARQUET_MAGIC):
                    hint = "; it is a Parquet file: name it .parquet"
        if first is not None and first.startswith(NPY_MAGIC):
            # a .npy is opened by its path, as a memmap: a stream cannot be
            hint = ("; it is a .npy array: " + ("name it .npy" if contents is None else
                    "give its path, not a stream (a .npy is opened as a memmap)"))
        raise DataError(f"{name}: not a readable CSV file ({one_line(exc)}){hint}") from None
    _check_unique(name, "column", header)
    if len(frame) and not isinstance(frame.index, pd.RangeIndex):
        # pandas reads a first data row with more fields than the header as the row's index
        # followed by the named columns: every name would be on the field after its own
        # (a header alone has no rows, and pandas 1.5 gives it an empty Index of objects)
        named = len(frame.columns)
        raise DataError(f"{name}: data row 1 has {named + frame.index.nlevels} fields but the "
                        f"header names {named} columns (a header cell missing, or a comma at "
                        "the end of each row?)")
    return frame


def _exact_floats(pd):
    """read_csv's options that read every float as written: pandas before 3 parses floats
    with a fast parser that is off in the last bit for some (a fit's last bits then depended
    on the pandas version); from 3 on, that is the default and the option deprecated."""
    major = int(pd.__version__.split(".")[0])
    return {} if major >= 3 else {"float_precision": "round_trip"}


def _header(pd, source):
    """A CSV's column names as written, to refuse a repeated one: pandas renames a repeated
    column ("y", "y.1"), whose copy would become a feature (a repeated target, the target
    itself).  The header is read by pandas too (compressed files alike); names left empty,
    which pandas names "Unnamed: k" (a spreadsheet's trailing commas), are not repeats."""
    header = pd.read_csv(source, header=None, nrows=1, dtype=str, keep_default_na=False)
    return [name for name in header.iloc[0] if name != ""]


def first_repeat(names):
    """The first name that appeared before in names, or None."""
    seen = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


def _check_unique(path, what, names):
    repeated = first_repeat(names)
    if repeated is not None:
        raise DataError(f"{path}: the {what} {repeated!r} appears twice; name every {what} "
                        "once")


def _column_array(frame, column, path):
    import pandas as pd
    values = frame[column]
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        # the first value pandas does not read as a number (missing ones aside)
        unread = (pd.to_numeric(values, errors="coerce").isna().to_numpy()
                  & values.notna().to_numpy())
        row = int(np.argmax(unread)) if unread.any() else None
        if row is not None:
            raise DataError(f"{path}: column {column!r} is not numeric: data row {row + 1} "
                            f"holds {values.iloc[row]!r}")
        if not _all_decimal(values):    # booleans: numbers to pandas, not to a fit
            raise DataError(f"{path}: column {column!r} is not numeric (it holds "
                            f"{values.dtype} values such as {values.dropna().iloc[0]})")
        # a database's exact decimals (Parquet's decimal128, as pandas' objects): as floats
        values = pd.to_numeric(values)
    array = values.to_numpy(dtype=np.float64)
    nonfinite = ~np.isfinite(array)
    if nonfinite.any():
        row = int(np.argmax(nonfinite))
        raise DataError(f"{path}: column {column!r} has a missing or non-finite value in data "
                        f"row {row + 1} ({array[row]})")
    return array


def _all_decimal(values):
    present = values.dropna()
    return len(present) > 0 and all(isinstance(value, decimal.Decimal) for value in present)


def _check_target_not_a_feature(path, target, features):
    if target is not None and target in set(features):
        raise DataError(f"{path}: the target column {target!r} is also one of the features; "
                        "leave it out of --features")


def _shown(names, most=12):
    """Column names for a message: all of them, or the first and last few of many, each
    quoted (repr), so that a name's own spaces, commas or emptiness show."""
    names = [repr(str(name)) for name in names]
    if len(names) <= most:
        return ", ".join(names)
    return ", ".join(names[:most // 2] + [f"... ({len(names) - most} more)"]
                     + names[-(most // 2):])


def _header_hint(columns):
    """Why a CSV's header may not name the columns: its first row is data (no header), or
    its one column holds another separator."""
    if columns and all(_is_number(name) for name in columns):
        return ("; the first row looks like data, not a header: the file needs a first row "
                "naming its columns")
    if len(columns) == 1:
        for separator, name in ((";", "';'"), ("\t", "tabs"), ("|", "'|'")):
            if separator in columns[0]:
                return (f"; one column {columns[0]!r}: is the file separated by {name}? "
                        "gdcore reads comma-separated files")
    return ""


def _is_number(value):
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def _from_frame(frame, path, target, features, empty_ok=False):
    columns = [str(c) for c in frame.columns]
    _check_unique(path, "column", columns)      # Parquet may repeat a name
    frame.columns = columns
    known = set(columns)
    if target is not None and target not in known:
        raise DataError(f"{path}: no column {target!r} (columns: {_shown(columns)})"
                        + _header_hint(columns))
    if features:
        _check_unique("--features", "feature", features)
        missing = [f for f in features if f not in known]
        if missing:
            comma = (" (--features takes names separated by spaces: --features "
                     + " ".join(part for name in features for part in name.split(",") if part)
                     + ")") if "," in missing[0] else ""
            raise DataError(f"{path}: no column {missing[0]!r}{comma} (columns: "
                            f"{_shown(columns)})" + _header_hint(columns))
        _check_target_not_a_feature(path, target, features)
    else:
        features = [c for c in columns if c != target]
    if not features:
        raise DataError(f"{path}: no feature columns besides the target {target!r}")
    if len(frame) == 0:
        if not empty_ok:
            raise DataError(f"{path}: the table has no rows")
        # its columns were checked; their types say nothing (a header alone reads as text)
        return Table(np.empty((0, len(features))), None if target is None else np.empty(0),
                     list(features), target, columns)
    X = np.column_stack([_column_array(frame, c, path) for c in features])
    y = _column_array(frame, target, path) if target is not None else None
    return Table(np.ascontiguousarray(X), y, list(features), target, columns)


# The most one block of rows read from an array takes (bytes): fits and predictions on a .npy
# hold a few blocks at a time (the block, its standardised copy), so their memory does not
# grow with the file; larger blocks were no faster.
BLOCK_BYTES = 16 * 2**20


class ArrayBlocks:
    """Chosen columns of a 2-D numeric array (a .npy memmap) read as row blocks ``(X, y)`` of
    at most BLOCK_BYTES, each X C-contiguous; columns are named by their index, the target
    is a column index.  Every block is checked for non-finite cells as it is read."""

    def __init__(self, array, path, target=None, features=None):
        if array.ndim != 2 or array.dtype.kind not in "iuf":
            raise DataError(f"{path}: expected a 2-D numeric array, got {array.ndim}-D "
                            f"{array.dtype}")
        names = [str(i) for i in range(array.shape[1])]
        known = set(names)
        if target is not None and target not in known:
            raise DataError(f"{path}: no column {target!r}: columns of an array are its "
                            f"indices 0..{array.shape[1] - 1}")
        if features:
            _check_unique("--features", "feature", features)
        chosen = list(features) if features else [c for c in names if c != target]
        for name in chosen:
            if name not in known:
                raise DataError(f"{path}: no column {name!r} (columns are "
                                f"0..{array.shape[1] - 1})")
        if not chosen:
            raise DataError(f"{path}: no feature columns besides the target {target!r}")
        _check_target_not_a_feature(path, target, chosen)
        if array.shape[0] == 0:
            raise DataError(f"{path}: the array has no rows")
        self.array, self.path, self.target = array, path, target
        self.feature_names = chosen
        self.n_rows = array.shape[0]
        # float32 and float64 keep their precision (as in gdcore.fit), in native byte order
        kept = array.dtype.kind == "f" and array.dtype.itemsize in (4, 8)
        self.dtype = np.dtype(f"f{array.dtype.itemsize}" if kept else "f8")
        self._columns = [int(c) for c in chosen]
        # all the columns in order: blocks (and X) are views of the array, read in place
        self.in_place = target is None and self._columns == list(range(array.shape[1]))

    def block_rows(self):
        row_bytes = (len(self._columns) + 1) * max(self.dtype.itemsize, 8)
        return max(1, BLOCK_BYTES // row_bytes)

    def __iter__(self):
        step = self.block_rows()
        for start in range(0, self.n_rows, step):
            rows = self.array[start:start + step]
            raw = rows if self.in_place else rows[:, self._columns]
            with np.errstate(over="ignore"):    # a long double past float64's: named below
                X = np.ascontiguousarray(raw, dtype=self.dtype)
            _check_finite(self.path, X, self.feature_names, start, raw)
            y = None
            if self.target is not None:
                raw = rows[:, [int(self.target)]]
                with np.errstate(over="ignore"):
                    y = np.array(raw[:, 0], dtype=np.float64)
                _check_finite(self.path, y[:, None], [self.target], start, raw)
            yield X, y

    def to_table(self):
        """All the rows as one Table: X is the array itself when read in place, else a copy
        of the chosen columns (filled block by block)."""
        if self.in_place:
            for _ in self:  # checks every cell, one block at a time
                pass
            return Table(self.array, None, self.feature_names, None)
        X = np.empty((self.n_rows, len(self._columns)), dtype=self.dtype)
        y = None if self.target is None else np.empty(self.n_rows)
        start = 0
        for X_block, y_block in self:
            stop = start + len(X_block)
            X[start:stop] = X_block
            if y is not None:
                y[start:stop] = y_block
            start = stop
        return Table(X, y, self.feature_names, self.target)


def _check_finite(path, values, names, first_row, raw=None):
    """Raise DataError naming the column and the 1-based data row of the first non-finite cell
    of a block (rows counted as the CSV message counts them).  ``raw``: the block as read,
    before its conversion, so that a long double past float64's range is named as such."""
    if values.dtype.kind != "f" or values.size == 0 or _core.all_finite(values.reshape(-1)):
        return
    row, column = np.argwhere(~np.isfinite(values))[0]
    where = f"column {names[column]!r}"
    if raw is not None and np.isfinite(raw[row, column]):
        raise DataError(f"{path}: {where} holds {raw[row, column]!s} in data row "
                        f"{first_row + row + 1}, too large for {values.dtype} (the dtype the "
                        "fit computes in); rescale it")
    raise DataError(f"{path}: {where} has a non-finite value in data row "
                    f"{first_row + row + 1} ({values[row, column]})")


def _from_array(array, path, target, features):
    """A 2-D numeric array as a Table: columns are named by their index; the target is a
    column index."""
    return ArrayBlocks(array, path, target, features).to_table()


def is_folder(path):
    """Whether DATA is a folder of files ("-" is stdin, even beside a folder named so)."""
    return os.fspath(path) != STDIN and os.path.isdir(path)


def is_npy(path):
    return os.fspath(path).lower().endswith(".npy")


NPY_MAGIC = b"\x93NUMPY"


def npy_blocks(path, target=None, features=None):
    """A .npy file as ArrayBlocks over its memmap: read in place, a block at a time."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:
            magic = f.read(len(NPY_MAGIC))
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror})") from None
    if magic != NPY_MAGIC:
        raise DataError(f"{path}: not a .npy file (it does not begin with NumPy's header)")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise DataError(f"{path}: not a readable .npy file ({one_line(exc)})") from None
    return ArrayBlocks(array, path, target, features)


def read_table(path, target=None, features=None, features_only=False, empty_ok=False):
    """Read ``path`` into a Table of float features (and the target column, if named).

    CSV (pandas) and Parquet (pyarrow) name columns by header; a .npy 2-D array names them
    by index (opened as a memmap: X is the array itself when it is all the features, else
    the chosen columns are copied; see npy_blocks to read it a block at a time); a .npz holds
    either arrays ``X`` and ``y`` (the target names the y array) or one 2-D array (whatever
    its name, columns by index).  ``features_only``: no target is read (predictions), not
    even a .npz's y.  ``empty_ok``: a CSV or Parquet file without rows gives a Table of no
    rows (its columns checked) instead of a DataError.  ``path`` "-" reads stdin (CSV, or
    Parquet by its first bytes, either compressed or not); a pipe or another stream is
    read once, into memory.
    """
    path = os.fspath(path)
    name = data_name(path)
    if path != STDIN and not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    lower = path.lower()
    if is_npy(path):
        return npy_blocks(path, target, features).to_table()
    if lower.endswith(".npz"):
        try:
            # closed here, not when the NpzFile is collected (a traceback would keep it open)
            with np.load(path, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
        except Exception as exc:
            raise DataError(f"{path}: not a readable .npz file ({one_line(exc)})") from None
        if not arrays:
            raise DataError(f"{path}: the file holds no arrays (expected arrays 'X' and 'y', "
                            "or one 2-D array)")
        if len(arrays) == 1 and target not in arrays:
            if target is not None and not target.isdigit():
                # a name, not a column index: the y array the file lacks (an X saved alone)
                raise DataError(f"{path}: no array {target!r} (arrays: {_shown(arrays)}); "
                                "the columns of a .npz's one array are named by index")
            return _from_array(next(iter(arrays.values())), path, target, features)
        if "X" in arrays:
            key = target if target is not None else ("y" if "y" in arrays else None)
            if features_only:
                key = None
            if key is not None and key not in arrays:
                raise DataError(f"{path}: no array {key!r} (arrays: {_shown(arrays)})")
            table = _from_array(arrays["X"], path, None, features)
            if key is not None:
                if arrays[key].dtype.kind not in "iuf":
                    raise DataError(f"{path}: array {key!r} is not real numbers "
                                    f"({arrays[key].dtype})")
                y = np.asarray(arrays[key], dtype=np.float64)
                if y.ndim == 2 and y.shape[1] == 1:
                    y = y[:, 0]     # a column, as gdcore.fit takes it
                if y.ndim != 1:
                    raise DataError(f"{path}: array {key!r} must be 1-D (one target value a "
                                    f"row of X), got shape {y.shape}")
                if y.shape[0] != table.X.shape[0]:
                    raise DataError(f"{path}: {key!r} has {y.shape[0]} values but X has "
                                    f"{table.X.shape[0]} rows")
                _check_finite(path, y[:, None], [key], 0)
                table.y, table.target = y, key
            return table
        raise DataError(f"{path}: expected arrays 'X' and 'y', got {_shown(arrays)}")
    return _from_frame(_read_frame(path, name), name, target, features, empty_ok)


# a CSV compressed as pandas reads it by its name (Spark writes part-*.csv.gz): left out, its
# rows would be missing from the fit without a word
FOLDER_SUFFIXES = (".parquet", ".pq", ".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zip",
                   ".csv.zst")


def folder_files(folder):
    """The Parquet and CSV files (compressed or not) of a folder, in name order (each one a
    chunk of the data).
    Names beginning with '.' or '_' are left out, as pyarrow's and Spark's readers leave them
    out: a writer's bookkeeping (_SUCCESS, _metadata, .part-0.parquet.crc), not data."""
    files = sorted(os.path.join(folder, name) for name in os.listdir(folder)
                   if name.lower().endswith(FOLDER_SUFFIXES) and not name.startswith((".", "_")))
    if not files:
        raise DataError(f"{folder}: no .parquet or .csv files in this folder")
    return files


# The most a compressed file of nothing takes (gzip's 20 bytes, with a stored name up to its
# 255 bytes; a zip's one member with its name, twice): larger ones are not read to see
_COMPRESSED_NOTHING_MAX = 1024


def _compressed_nothing(path, size):
    """Whether a folder's compressed CSV file holds no bytes once decompressed: an empty part,
    compressed (part-00001.csv.gz of an empty partition), skipped as an empty .csv is.  A
    file that does not decompress is left for read_table to name."""
    if size > _COMPRESSED_NOTHING_MAX or path.lower().endswith((".csv", ".parquet", ".pq")):
        return False
    try:
        with open(path, "rb") as f:
            return _decompressed(f.read(), path) == b""
    except (OSError, DataError):
        return False


def _check_no_compressed_twin(files):
    """Refuse a folder holding a CSV file and the same file compressed (a.csv beside
    a.csv.gz, a copy kept or made): both are read as data, and every row would be fitted twice
    (the compressed one was not read before compressed CSVs were)."""
    seen = {}
    for path in files:
        lower = path.lower()
        stem = next((path[:-len(suffix)] for suffix in FOLDER_SUFFIXES
                     if suffix.startswith(".csv.") and lower.endswith(suffix)), None)
        key = stem if stem is not None else (path[:-4] if lower.endswith(".csv") else None)
        if key is None:
            continue
        if key in seen and not (stem is None and seen[key].lower().endswith(".csv")):
            # (a.csv beside a.CSV: two plain files, which a file system may hold)
            raise DataError(f"{seen[key]} and {path} are one CSV file's name, "
                            "compressed and not (or compressed twice): likely the same rows, "
                            "which would be fitted twice; move one out of the folder")
        seen[key] = path


def iter_folder_tables(folder, target=None, features=None, every_column=None):
    """Read a folder's files one at a time as Tables with the same columns.

    The feature columns are fixed by the first file (or ``features``), so every later file
    must have them.  ``every_column`` (by default, when ``features`` is not given): the
    features are every column but the target, so a file with a column they lack is refused
    (it would be left out of the fit).  A file without rows (Spark and Dask write one for an
    empty partition) adds nothing and is skipped, its columns checked (an empty file has none
    to check); a folder of only such files is refused."""
    names = list(features) if features else None
    if every_column is None:
        every_column = not features
    any_rows = False
    first = None
    files = []
    for path in folder_files(folder):
        try:
            size = os.path.getsize(path)
        except OSError as exc:  # a dangling symbolic link, or a file removed since listed
            raise DataError(f"{path}: cannot read the file ({exc.strerror})") from None
        if size == 0 or _compressed_nothing(path, size):
            continue    # not even a header (a writer's empty part): no rows, no columns
        files.append(path)
    # an empty file beside itself compressed adds no row twice
    _check_no_compressed_twin(files)
    for path in files:
        table = read_table(path, target, names, empty_ok=True)
        names = table.feature_names
        first = first or path
        if every_column:
            extra = [c for c in table.columns if c not in names and c != target]
            if extra:
                raise DataError(f"{path}: column {extra[0]!r} is not in {first}, whose columns "
                                "are the features (every column but the target); name the "
                                "features with --features")
        if len(table.X):
            any_rows = True
            yield table
    if not any_rows:
        raise DataError(f"{folder}: every .parquet or .csv file in this folder has no rows")
