"""Input validation shared by both backends (SPEC section 8).

Everything a fit can reject is rejected here, before any work, with a ValueError or
TypeError naming the argument.  Nothing here writes to the caller's arrays: anything that
needs converting is copied, and C-contiguous float32/float64 data (memmaps included) is
passed through untouched.
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
import sys
import warnings
from dataclasses import dataclass

import numpy as np

from . import _core

# the most threads a fit takes: OpenMP makes every one, and a team it fails to start ends
# the process (libgomp), so a count past what any machine has is refused up front
MAX_THREADS = _core.MAX_THREADS


@dataclass
class Problem:
    """Validated data: X (n × d, C-contiguous, float32 or float64), y (n,) and
    sample_weight ((n,) or None) in X's dtype (a block's weights, with check_data's
    weights_as_given, as given until they are scaled alike and converted)."""

    X: np.ndarray
    y: np.ndarray
    sample_weight: np.ndarray | None

    @property
    def n(self):
        return self.X.shape[0]

    @property
    def d(self):
        return self.X.shape[1]

    @property
    def dtype(self):
        return self.X.dtype


@dataclass
class Settings:
    """Validated loop settings (everything except the optimizer and the schedule)."""

    epochs: int
    batch_size: int | None  # None: full batch
    l2: float
    l1: float
    fit_intercept: bool
    tol: float | None
    n_iter_no_change: int
    gtol: float | None
    shuffle: bool

    def full_batch(self, n):
        return self.batch_size is None or self.batch_size >= n


def nearest_name(given, known, cutoff=0.6, begun=False):
    """The name in ``known`` nearest in spelling to ``given`` (with ``begun``, first one that
    ``given`` begins: "exp" for "exponential"), or None: the hint of a "did you mean"."""
    if begun:
        for name in known:
            if given and name.startswith(given):
                return name
    close = difflib.get_close_matches(given, known, n=1, cutoff=cutoff)
    return close[0] if close else None


def _boolean(name):
    """The TypeError for booleans given as numbers, whatever held them (NumPy, pandas,
    pyarrow, dask)."""
    return TypeError(f"{name} has boolean dtype; convert it to a float dtype explicitly")


def _check_dtype(name, arr):
    kind = arr.dtype.kind
    if kind == "b":
        raise _boolean(name)
    if kind == "c":
        raise TypeError(f"{name} has complex dtype {arr.dtype}; gdcore fits real data only")
    if kind not in "iuf":
        raise TypeError(f"{name} has dtype {arr.dtype}, which is not a real number type")


def _pandas_extension_numbers(name, value):
    """A pandas DataFrame or Series whose columns are all numbers, some of them in pandas'
    nullable extension types (Int64, Float64, ...), as float64 with NaN for NA (which the
    finite check then names); None for anything else.  np.asarray would make them objects.
    A TypeError naming ``name`` for a boolean column (pandas' nullable "boolean" becomes
    object in np.asarray before pandas 2)."""
    if not hasattr(value, "to_numpy"):
        return None
    dtypes = list(value.dtypes) if hasattr(value, "columns") else [getattr(value, "dtype", None)]
    if nullable_numbers(name, dtypes):
        return value.to_numpy(dtype=np.float64, na_value=np.nan)
    return None


def nullable_numbers(name, dtypes):
    """Whether columns of these (pandas or dask) dtypes are all numbers, some of them in
    pandas' nullable extension types, to be read as float64 with NaN for NA; a TypeError
    naming ``name`` for a boolean column."""
    if any(getattr(dt, "kind", None) == "b" for dt in dtypes):
        raise _boolean(name)
    return bool(dtypes and all(getattr(dt, "kind", "O") in "iuf" for dt in dtypes)
                and any(not isinstance(dt, np.dtype) for dt in dtypes))


def is_arrow(value):
    """Whether value is a pyarrow object (by its type: a DataFrame column named "schema" or
    "column_names" is not one)."""
    return type(value).__module__.split(".")[0] == "pyarrow"


def arrow_column_names(value):
    """A pyarrow Table's or RecordBatch's column names (schema.names: before pyarrow 11 a
    RecordBatch has no column_names), or None for anything else."""
    if is_arrow(value) and hasattr(value, "num_columns") and hasattr(value, "schema"):
        return list(value.schema.names)
    return None


def feature_names_of(X):
    """X's column names when X is a pandas or Dask DataFrame or a pyarrow Table whose columns
    are all named by strings, each once (as scikit-learn keeps feature_names_in_), else None: what a
    FitResult keeps, so that its predict takes a DataFrame's columns by name."""
    names = arrow_column_names(X)
    if names is None and hasattr(X, "columns") and hasattr(X, "dtypes"):
        names = list(X.columns)
    return string_names(names)


def string_names(names):
    """``names`` as a list of str if they are all strings, each once (not a DataFrame's
    RangeIndex of numbers, which positions would name as well; a repeated name names no one
    column, and the fitted DataFrame's own predict and save_model would refuse it), else
    None."""
    if (names and all(isinstance(name, str) for name in names)
            and len(set(names)) == len(names)):
        return [str(name) for name in names]
    return None


def arrow_columns(table, names=None, dtype=None):
    """A pyarrow Table's or RecordBatch's columns (those named, in that order, or all) as one
    2-D array, column by column: before pyarrow 11 np.asarray of a Table gives (columns,
    rows)."""
    every = arrow_column_names(table)
    # by position: a table may repeat a name
    positions = range(len(every)) if names is None else [every.index(name) for name in names]
    if not positions:
        return np.empty((table.num_rows, 0), dtype=dtype or np.float64)
    return np.column_stack([np.asarray(table.column(k), dtype=dtype) for k in positions])


def _refuse_arrow_booleans(name, value):
    """A pyarrow Table (or RecordBatch, Array) with a boolean column, dictionary-encoded or
    not: np.asarray would make True and False 1.0 and 0.0 beside the float columns, where
    pandas' are refused."""
    if not is_arrow(value):
        return
    types = value.schema.types if hasattr(value, "schema") else [getattr(value, "type", None)]
    if any(is_boolean_arrow_type(kind) for kind in types):
        raise _boolean(name)


def is_boolean_arrow_type(kind):
    """Whether a pyarrow type is boolean, dictionary-encoded or not."""
    return str(getattr(kind, "value_type", kind)) == "bool"


def fit_dtype(dtype):
    """The dtype a fit of X of this dtype computes in: float32 (in either byte order) in
    float32, every other real type in float64."""
    return np.dtype(np.float32 if dtype.kind == "f" and dtype.itemsize == 4 else np.float64)


def _as_array(name, value):
    if type(value).__module__.startswith("scipy.sparse"):
        # np.asarray makes a 0-d object array of it, reported as a wrong dtype
        raise TypeError(f"{name} is a scipy.sparse {type(value).__name__}; gdcore fits dense "
                        f"arrays: pass {name}.toarray() if it fits in memory")
    if isinstance(value, np.ma.MaskedArray) and np.ma.getmask(value) is not np.ma.nomask:
        # np.asarray drops the mask: the values under it would be fitted as data
        masked = np.ma.getmaskarray(value)
        if masked.any():
            where = ", ".join(str(int(i)) for i in np.unravel_index(int(np.argmax(masked)),
                                                                    masked.shape))
            raise ValueError(f"{name} is a masked array with masked entries (first at index "
                             f"[{where}]); drop those rows, or fill them ({name}.filled(...))")
    _refuse_arrow_booleans(name, value)
    extension = _pandas_extension_numbers(name, value)
    if extension is not None:
        arr = extension
    elif arrow_column_names(value) is not None:
        arr = arrow_columns(value)
    elif isinstance(value, np.matrix):
        arr = np.asarray(value)     # a view: numpy.matrix stays 2-D through reshape(-1)
    elif isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name} could not be converted to an array: {exc}") from None
    _check_dtype(name, arr)
    return arr


def _contiguous(arr, dtype):
    """arr as a C-contiguous array of dtype, copied only if it has to be."""
    if arr.dtype != dtype or not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr, dtype=dtype)
    return arr


def make_rng(seed):
    """numpy.random.default_rng(seed), with an error that names seed."""
    if isinstance(seed, bool):
        # NumPy takes True as the seed 1 (np.True_ it refuses): seed=True is most likely
        # meant for shuffle=, and would fix the shuffles silently
        raise TypeError(f"seed must be None, an int >= 0, a sequence of them, a SeedSequence "
                        f"or a numpy Generator; got the bool {seed!r} (did you mean "
                        f"shuffle={seed!r}?)")
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as error:
        raise type(error)(f"seed must be None, an int >= 0, a sequence of them, a SeedSequence "
                          f"or a numpy Generator; got {seed!r} ({error})") from None


# Values per call of the core's threaded finite check (64 MB of float64).
FINITE_CHECK_BLOCK = 1 << 23


def check_all_finite(name, arr, row_offset=0, n_threads=0, column_names=None):
    """Raise ValueError naming arr and its first non-finite entry, if it has one (its row
    counted from row_offset: arr may be a block of a larger array; its column by name, for a
    2-D arr, when column_names are given)."""
    if arr.size == 0:
        return
    values = arr.reshape(-1) if arr.flags.c_contiguous else np.ravel(arr)
    # the core takes float32 and float64 in this machine's byte order; other types (long
    # double X given to a prediction, say) are checked by NumPy
    in_core = arr.dtype in (np.dtype(np.float32), np.dtype(np.float64))
    # a block at a time, the GIL taken between blocks: Ctrl-C stops the check of a large
    # memmap (read from disk at a few GB/s) within a block's read
    for start in range(0, values.size, FINITE_CHECK_BLOCK):
        block = values[start:start + FINITE_CHECK_BLOCK]
        if not (_core.all_finite(block, n_threads) if in_core else np.isfinite(block).all()):
            break
    else:
        return
    # the first bad entry, looked for in that block only (not a mask of the whole array)
    non_finite = ~np.isfinite(block)
    first = int(np.argmax(non_finite))
    if not non_finite[first]:   # another thread wrote it finite meanwhile: still refused
        raise ValueError(f"{name} contained NaN or infinity while it was checked (another "
                         f"thread is writing to it); remove or impute those values")
    bad = np.array(np.unravel_index(start + first, arr.shape))
    value = arr[tuple(bad)]
    bad[0] += row_offset
    where = "index [" + ", ".join(str(int(i)) for i in bad) + "]"
    if column_names is not None and arr.ndim == 2:
        where = f"row {int(bad[0])}, column {column_names[int(bad[1])]!r}"
    raise ValueError(f"{name} contains NaN or infinity (first at {where}: {value}); "
                     "remove or impute those values")


def check_data(X, y, sample_weight=None, allow_zero_weight_sum=False, row_offset=0,
               n_threads=0, shapes_known=None, allow_empty=False, check_xy_finite=True,
               weights_as_given=False):
    """Validate and convert X, y, sample_weight (see Problem).  A chunk of a larger data set
    may have weights that sum to 0 (allow_zero_weight_sum), and no rows (allow_empty); a
    whole data set may not.  The weights are scaled by the power of two that brings their
    largest near 1 (weight_scale_exponent), then converted to X's dtype; weights_as_given
    leaves them checked but as given (floats in the wider of their dtype and X's), for a
    block of a larger data set: its weights are scaled as all the blocks' are, once every
    block's largest is known, then converted (weights_in_dtype).  Rows named in errors count from
    row_offset (a block's first row in the whole data set).  The NaN/inf checks run on
    n_threads threads (0: OpenMP's default); check_xy_finite=False leaves X's and y's to the
    caller (check_xy_values: a chunk read again, checked only if its sums are not finite;
    the weights, O(n), are checked every time, before their sum).  ``shapes_known(n, d,
    dtype)``, if given, is called once the shapes and types are checked and before any copy
    or pass over the values: a fit checks its settings there, so that a bad one is not
    reported only after minutes of reading a large memmap."""
    X = _as_array("X", X)
    if X.ndim != 2:
        swapped = " (were X and y swapped? the order is X, y)" if np.ndim(y) == 2 else ""
        raise ValueError(f"X must be 2-D (n_samples, n_features), got {X.ndim}-D array "
                         f"of shape {X.shape}{swapped}")
    n, d = X.shape
    if n == 0 and not allow_empty:
        raise ValueError(f"X has 0 samples (shape {X.shape}); at least 1 is required")
    if d == 0:
        raise ValueError(f"X has 0 features (shape {X.shape}); at least 1 is required")
    dtype = fit_dtype(X.dtype)
    y = _as_array("y", y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D of length n_samples={n}, got shape {y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} entries but X has {n} rows: len(y) must equal "
                         "X.shape[0]")
    if sample_weight is not None:
        sample_weight = _as_array("sample_weight", sample_weight)
        if sample_weight.ndim != 1 or sample_weight.shape[0] != n:
            raise ValueError(f"sample_weight must be 1-D of length n_samples={n}, got shape "
                             f"{sample_weight.shape}")
    if shapes_known is not None:
        shapes_known(n, d, dtype)
    X = _in_dtype("X", X, dtype, row_offset)
    y = _in_dtype("y", y, dtype, row_offset)
    if check_xy_finite:
        check_xy_values(X, y, row_offset, n_threads)
    if sample_weight is not None:
        # checked as given (in the wider of their dtype and X's), before any scaling or
        # narrowing: a negative weight that either would make -0.0 (-1 among weights near
        # 2^200, -1e-50 with float32 X) is refused too, not taken as 0
        given = sample_weight
        # integers as they are (exact, never NaN): converted to X's dtype once, as NumPy
        # rounds them (through float64, int64 weights past 2^53 would be rounded twice)
        exact = given.dtype.kind in "iu"
        sample_weight = _contiguous(given, given.dtype if exact else _wider(given, dtype))
        if not exact:
            check_all_finite("sample_weight", sample_weight, row_offset, n_threads)
        negative = sample_weight < 0
        if negative.any():
            first = int(np.argmax(negative))
            raise ValueError(f"sample_weight must be >= 0; sample_weight[{first + row_offset}] "
                             f"= {given[first]}")
        # summed as given (in float64), not as scaled before narrowing: weights whose sum
        # overflows float64 are refused whatever X's dtype, as fit_chunks refuses them
        with np.errstate(over="ignore"):    # an infinite sum is reported just below
            total = float(np.sum(sample_weight, dtype=np.float64))
        if not weights_as_given:    # the whole data's weights: scaled here, not per block
            largest = sample_weight.max() if sample_weight.size else 0.0
            sample_weight = weights_in_dtype(sample_weight, dtype,
                                             weight_scale_exponent(largest), row_offset)
        if total > 0 or not allow_zero_weight_sum:
            check_weight_sum(total)
    return Problem(X, y, sample_weight)


def check_xy_values(X, y, row_offset=0, n_threads=0):
    """check_data's NaN/inf checks of X and y (check_xy_finite=False leaves them out)."""
    check_all_finite("X", X, row_offset, n_threads)
    check_all_finite("y", y, row_offset, n_threads)


def check_weight_sum(total, where=""):
    """A ValueError unless the weights' float64 sum is positive and finite; where says over
    what it was taken (for chunks and blocks)."""
    over = f" {where}" if where else ""
    if not total > 0:
        raise ValueError(f"sample_weight sums to 0{over}: at least one weight must be positive")
    if not math.isfinite(total):
        raise ValueError(f"sample_weight sums to infinity in float64{over}; rescale the weights")


def _in_dtype(name, arr, dtype, row_offset):
    """arr as a C-contiguous array of dtype; a finite value that does not fit in dtype (a
    float64 y of 1e39 with float32 X, a long double X of 1e400) is named as such, not as the
    infinity it would become."""
    if arr.dtype.kind == "f" and arr.dtype.itemsize > np.dtype(dtype).itemsize:
        with np.errstate(invalid="ignore"):     # NaN and inf: the finite check names them
            too_large = np.isfinite(arr) & (np.abs(arr) > np.finfo(dtype).max)
        if too_large.any():
            first = np.unravel_index(int(np.argmax(too_large)), arr.shape)
            where = ", ".join(str(int(i) + (row_offset if k == 0 else 0))
                              for k, i in enumerate(first))
            raise ValueError(f"{name}[{where}] = {arr[first]!s} is too large for "
                             f"{np.dtype(dtype)} (the dtype the fit computes in); rescale it"
                             + (" or pass X as float64" if dtype == np.float32 else ""))
    return _contiguous(arr, dtype)


# Weights are scaled by a power of two (exact: J and ∇J do not change by a bit) when their
# largest is outside [2^-64, 2^64]: Σ sᵢrᵢ² of weights near 1e300 overflowed, and 1 / S of
# weights near 1e-320 did.
_WEIGHT_SCALE_LIMIT = 64


def weight_scale_exponent(largest):
    """The power of two e that brings weights whose largest is ``largest`` near 1 (w·2^-e has
    its largest in [0.5, 1)), or 0 when they need no scaling."""
    exponent = int(np.frexp(float(largest))[1])
    return exponent if abs(exponent) > _WEIGHT_SCALE_LIMIT else 0


def _wider(weights, dtype):
    """The wider of the weights' dtype and the fit's, in which they are checked and scaled
    before they are converted to the fit's: narrowed first (float64 weights, float32 X),
    weights past ~3.4e38 would overflow and weights all below ~1.2e-38 (float32's normal
    range) keep fewer than 24 bits, or become 0."""
    return np.result_type(weights.dtype, dtype)


def converted_weights(weights, dtype, exponent=0, row_offset=0):
    """(weights · 2^-exponent in dtype, the ValueError for the first positive weight this
    made 0, or None).  Scaled in the wider of their dtype and dtype, then converted: exact,
    but for values pushed below dtype's smallest.  A weight made 0 would silently count as
    none (a mini-batch of such rows would make no update).  Weights already in dtype, with
    exponent 0, come back as they are."""
    converted = scaled_weights(weights, dtype, exponent, row_offset)
    if converted is weights:
        return converted, None
    lost = (converted == 0) & (weights > 0)
    if not lost.any():
        return converted, None
    first = int(np.argmax(lost))
    return converted, _lost_weight(first + row_offset, weights[first], dtype, exponent)


def scaled_weights(weights, dtype, exponent=0, row_offset=0):
    """weights · 2^-exponent in dtype, unchecked for a positive weight made 0 (see
    converted_weights: for weights already checked so)."""
    if not exponent:
        return _in_dtype("sample_weight", weights, dtype, row_offset)
    wider = _wider(weights, dtype)
    scaled = np.ldexp(weights.astype(wider, copy=False), -exponent).astype(wider, copy=False)
    return _in_dtype("sample_weight", scaled, dtype, row_offset)


def weights_in_dtype(weights, dtype, exponent=0, row_offset=0):
    """weights · 2^-exponent in dtype (see converted_weights); a ValueError naming the first
    positive weight that became 0 (its row counted from row_offset)."""
    converted, lost = converted_weights(weights, dtype, exponent, row_offset)
    if lost is not None:
        raise lost
    return converted


def provisional_weights(weights, dtype, row_offset=0):
    """A block's weights (as check_data leaves them with weights_as_given) in dtype, before
    the whole data's largest weight, and so the power of two all are scaled by, is known (a
    first pass over blocks): unscaled, as they are if the whole data's need no scaling; if
    this block's largest is past 2^64, so that the whole data's will be scaled and what is
    made of these discarded, by the block's own power of two (they do not overflow).
    Returns (weights, and the ValueError for a positive weight that became 0 unscaled, to
    be raised if the whole data's weights are not scaled, or None: if they are, scaling
    them decides)."""
    exponent = max(weight_scale_exponent(weights.max() if weights.size else 0.0), 0)
    converted, lost = converted_weights(weights, dtype, exponent, row_offset)
    return converted, lost if exponent == 0 else None


def _lost_weight(index, weight, dtype, exponent):
    """The ValueError for a positive weight that converting to dtype, after scaling by
    2^-exponent, made 0."""
    if exponent == 0:
        return ValueError(f"sample_weight[{index}] = {weight!s} is 0 in {np.dtype(dtype)} "
                          "(X's dtype); rescale the weights")
    return ValueError(f"sample_weight[{index}] = {weight!s} is 0 in {np.dtype(dtype)} once the "
                      f"weights are scaled by 2^{-exponent} to bring the largest near 1 (they "
                      "span more than the dtype's range); drop the smallest weights or raise "
                      "them")


def weight_sum_and_largest(problem):
    """(float64 sum, largest) of a validated block's weights (as given: weights_as_given),
    unit weights counting as ones: what a fit over blocks needs to check the whole sum and
    scale every block alike.  The sum may be inf (check_weight_sum reports it)."""
    weights = problem.sample_weight
    if weights is None:
        return float(problem.n), 1.0
    with np.errstate(over="ignore"):
        return float(np.sum(weights, dtype=np.float64)), float(weights.max())


def check_int(name, value, *, low, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def check_float(name, value, *, low=0.0, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = finite_float(name, value)
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def finite_float(name, value):
    """float(value) (a real number), refused, naming `name`, unless finite: an int or
    Fraction past float's range raises here rather than as float()'s bare OverflowError."""
    try:
        converted = float(value)
    except OverflowError:
        raise ValueError(f"{name} must be finite, got {type(value).__name__} "
                         f"{str(value)[:20]}... beyond a float's range") from None
    except ValueError:  # text float() cannot read (a 0-d string array, a bytearray)
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} "
                        f"{value!r}") from None
    if not math.isfinite(converted):
        raise ValueError(f"{name} must be finite, got {converted!r}")
    return converted


def check_bool(name, value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}")


def check_choice(name, value, choices):
    """value, one of choices (strings and the bools True/False, numpy's too), compared by
    type and value: 1 is not True, and an array is refused rather than asked for its truth."""
    if isinstance(value, (bool, np.bool_)):
        value = bool(value)
    elif isinstance(value, str):
        value = str(value)      # numpy.str_ from a grid is a str
    if isinstance(value, (bool, str)) and any(type(value) is type(choice) and value == choice
                                              for choice in choices):
        return value
    raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got "
                     f"{value!r}")


def check_settings(*, epochs, batch_size, l2, l1, fit_intercept, tol, n_iter_no_change, gtol,
                   shuffle, n):
    settings = Settings(
        epochs=check_int("epochs", epochs, low=1),
        batch_size=check_int("batch_size", batch_size, low=1, allow_none=True),
        l2=check_float("l2", l2),
        l1=check_float("l1", l1),
        fit_intercept=check_bool("fit_intercept", fit_intercept),
        tol=check_float("tol", tol, allow_none=True),
        n_iter_no_change=check_int("n_iter_no_change", n_iter_no_change, low=1),
        gtol=check_float("gtol", gtol, allow_none=True),
        shuffle=check_bool("shuffle", shuffle),
    )
    if settings.gtol is not None and not settings.full_batch(n):
        raise ValueError(f"gtol applies to full-batch fits only (batch_size={batch_size} < "
                         f"n_samples={n}); use tol, or batch_size=None")
    return settings


def _usable_cores():
    """The cores this process may run on (its CPU affinity, as taskset or a container sets
    it), else every core.  OpenMP's count comes first: with OMP_PROC_BIND or OMP_PLACES set,
    the thread that loaded OpenMP is pinned to one place and its own affinity shows one CPU."""
    procs = _core.available_procs()
    if procs > 0:
        return procs
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def resolve_n_threads(n_threads):
    """None: OpenMP's default (OMP_NUM_THREADS, threadpoolctl); -1: every core this process
    may run on; k >= 1: k."""
    if n_threads is None:
        count = _core.default_n_threads()
    else:
        if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
            raise TypeError(f"n_threads must be an integer or None, got {n_threads!r}")
        n_threads = int(n_threads)
        if n_threads == 0 or n_threads < -1 or n_threads > MAX_THREADS:
            raise ValueError(f"n_threads must be None, -1 (all cores) or 1 to {MAX_THREADS}, "
                             f"got {n_threads}")
        count = min(_usable_cores(), MAX_THREADS) if n_threads == -1 else n_threads
    if not _core.openmp_enabled():
        return 1
    count = max(1, int(count))
    if n_threads is not None and count > 1 and _core.threads_lost_to_fork():
        _warn_threads_lost_to_fork(count)
    return count


_threads_lost_warned = False


def _warn_threads_lost_to_fork(count):
    """Once a process: the threads asked for are not there (see _core.threads_lost_to_fork)."""
    global _threads_lost_warned
    if _threads_lost_warned:
        return
    _threads_lost_warned = True
    warnings.warn(
        f"n_threads={count}: this process was forked (os.fork, or multiprocessing's 'fork' "
        f"start method) from a thread that had run gdcore on several threads, and OpenMP's "
        f"threads do not survive fork(). gdcore runs on one thread here, with the same "
        f"results as on {count}. To have threads in worker processes, start them with the "
        f"'spawn' or 'forkserver' method.", RuntimeWarning, stacklevel=_caller_stacklevel())


def _caller_stacklevel():
    """The stacklevel, for a warning raised by the function calling this one, of the first
    frame outside gdcore: the warning names the user's line."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def check_callback(callback):
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    return callback


def callback_says_stop(returned):
    """bool(returned), a callback's answer: a value without one truth value (an array of
    several numbers, say) is refused naming the callback, not in NumPy's words."""
    try:
        return bool(returned)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"callback must return True to stop the fit, or False or None to go "
                        f"on; got {type(returned).__name__}, which has no truth value "
                        f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                        ) from None
