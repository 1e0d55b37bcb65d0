"""The data a subcommand fits: a table in memory, or a folder or .npy read a piece at a
time; --standardize's scaling; the fit on them and how well it did."""

from __future__ import annotations

import numpy as np

from .._io import DataError, is_folder, is_npy, iter_folder_tables, npy_blocks, read_table
from .._precompute import gram_is_cheaper
from .._validation import make_rng
from ._options import FOLDER_BATCH_SIZE


class StreamedData:
    """DATA read a piece at a time (row blocks, or files), never all at once.

    Fits on it run with gdcore.fit_chunks (full batch, exact); standardisation, when asked,
    takes its mean and scale from a first pass over the pieces.  Subclasses give pieces()."""

    mean = scale = None

    def pieces(self):
        """(X, y) row blocks as read."""
        raise NotImplementedError

    def precompute(self, epochs):
        """fit_chunks' precompute: False, or "auto" (the Gram matrix, unless it overflows)."""
        return False

    def standardize(self, centre):
        self.mean, self.scale = column_mean_and_scale((X for X, _ in self.pieces()),
                                                      self.feature_names, centre)

    def chunks(self):
        for X, y in self.pieces():
            if self.mean is not None:
                scaled = X - self.mean
                scaled /= self.scale
                X = scaled.astype(X.dtype, copy=False)
            yield X, y


class FolderData(StreamedData):
    """DATA given as a folder of Parquet/CSV files: read file by file."""

    def __init__(self, folder, target, features, standardize, centre=True):
        self.folder, self.target = folder, target
        # without --features, every column but the target: every file must have no other
        self.every_column = not features
        first = next(iter_folder_tables(folder, target, features))
        if first.y is None:
            raise DataError(f"{folder}: give the target column with --target")
        self.feature_names = first.feature_names
        if standardize:
            self.standardize(centre)

    def pieces(self):
        for table in iter_folder_tables(self.folder, self.target, self.feature_names,
                                        self.every_column):
            yield table.X, table.y

    def precompute(self, epochs):
        # an epoch re-reads and parses every file, ~100x the cost of a pass over memory:
        # fit_chunks' "auto" forms the Gram matrix in the first pass once a second epoch
        # runs (gram_is_cheaper with the parse's cost, whatever the number of rows)
        return "auto"


class NpyData(StreamedData):
    """DATA given as a .npy file: its memmap read in row blocks of bounded size, so the
    features (X without the target column, which cannot be a view) are never copied whole."""

    def __init__(self, path, target, features, standardize, centre=True):
        if target is None:
            raise DataError(f"{path}: give the target column with --target")
        self.blocks = npy_blocks(path, target, features)
        self.target, self.feature_names = target, self.blocks.feature_names
        if standardize:
            self.standardize(centre)

    def pieces(self):
        return iter(self.blocks)

    def precompute(self, epochs):
        # what gdcore.fit's precompute="auto" picks for the same array in memory
        return ("auto" if gram_is_cheaper(self.blocks.n_rows, len(self.feature_names), epochs)
                else False)


def merged_moments(blocks):
    """(rows, mean, Σ(x − mean)²) of each column over row blocks.  The blocks' moments are
    merged (Chan et al.), which keeps the accuracy of a two-pass formula in one pass."""
    count, mean, squares = 0, 0.0, 0.0
    for X in blocks:
        rows = X.shape[0]
        if rows == 0:
            continue
        block_mean = X.mean(axis=0, dtype=np.float64)
        block_squares = ((X - block_mean) ** 2).sum(axis=0)
        delta = block_mean - mean
        total = count + rows
        mean = mean + delta * (rows / total)
        squares = squares + block_squares + delta ** 2 * (count * rows / total)
        count = total
    return count, mean, squares


def column_mean_and_scale(blocks, feature_names, centre=True):
    """Each column's mean and standard deviation over row blocks, as X.mean(axis=0) and
    X.std(axis=0) of all rows (see standardization's scaling)."""
    with np.errstate(over="ignore", invalid="ignore"):
        count, mean, squares = merged_moments(blocks)
        return scaling(mean, np.sqrt(squares / count), feature_names, centre)


def scaling(mean, std, feature_names, centre):
    """(mean, scale) that --standardize saves, from each column's float64 mean and standard
    deviation: those (constant columns get scale 1), or without centre (a fit without
    intercept, which must stay through the data's origin) zeros and the root mean square.  A
    DataError if a column's moments overflow float64 (values near 1e154 or more): the scaling
    saved with the model would not be usable."""
    with np.errstate(over="ignore", invalid="ignore"):
        scale = std if centre else np.hypot(std, mean)
    bad = ~(np.isfinite(mean) & np.isfinite(scale))
    if bad.any():
        name = feature_names[int(np.argmax(bad))]
        raise DataError(f"--standardize: the standard deviation of column {name!r} overflows "
                        "float64 (values near 1e154 or more); rescale that column")
    if not centre:
        mean = np.zeros_like(mean)
    scale[scale == 0] = 1.0
    return mean, scale


def standardization(X, enabled, feature_names, centre=True):
    """(X scaled, mean, scale): columns to mean 0 and variance 1 (constant columns kept).
    Without centre (a fit without intercept, which must stay through the data's origin) the
    columns are only divided by their root mean square, to a mean square of 1, and mean is 0."""
    if not enabled:
        return X, None, None
    with np.errstate(over="ignore", invalid="ignore"):
        # in float64 whatever X's dtype (squares of float32 values past 1.8e19 overflow it)
        mean, scale = scaling(X.mean(axis=0, dtype=np.float64),
                              X.std(axis=0, dtype=np.float64), feature_names, centre)
    scaled = X - mean.astype(X.dtype)     # in X's dtype, the fit's
    scaled /= scale.astype(X.dtype)       # in place: one array the size of X, not two
    return scaled, mean, scale


def load(args, target_required=True):
    """The data named by args: StreamedData for a folder, or for a .npy fitted full-batch;
    else a Table with X_fit (X, standardised when asked), mean and scale."""
    standardize = getattr(args, "standardize", False)
    # without an intercept the fit is through the origin: scaled, not centred, so that it
    # stays through the origin of the data's own units
    centre = getattr(args, "fit_intercept", True)
    if is_folder(args.data):
        return FolderData(args.data, args.target, args.features, standardize, centre)
    if is_npy(args.data) and getattr(args, "batch_size", None) is None:
        return NpyData(args.data, args.target, args.features, standardize, centre)
    # mini-batches need every row in one C-contiguous array: a .npy's columns are copied
    table = read_table(args.data, args.target, args.features)
    if target_required and table.y is None:
        raise DataError(f"{args.data}: give the target column with --target")
    table.X_fit, table.mean, table.scale = standardization(table.X, standardize,
                                                           table.feature_names, centre)
    if standardize:
        table.X = None      # only X_fit is used from here: do not keep both alive
    return table


def fit_data(args, data, **options):
    """gdcore.fit on a Table, or gdcore.fit_chunks on StreamedData."""
    from .. import fit, fit_chunks
    if isinstance(data, StreamedData):
        if options.get("batch_size") is not None:
            raise ValueError(FOLDER_BATCH_SIZE)
        options.pop("batch_size", None)
        make_rng(options.pop("seed", None))     # not used full batch, but checked as fit checks it
        return fit_chunks(data.chunks, precompute=data.precompute(options["epochs"]), **options)
    return fit(data.X_fit, data.y, **options)


def residual_summary(data, result):
    """(rows, MSE, R²) of a fitted result on the data, piece by piece for StreamedData."""
    if isinstance(data, StreamedData):
        errors = 0.0

        def targets():
            nonlocal errors
            for X, y in data.chunks():
                errors += float(((X @ result.coef + result.intercept - y) ** 2).sum())
                yield y[:, None]
        # Σ(y − ȳ)² merged block by block: Σy² − (Σy)²/n cancels when |ȳ| ≫ the spread of y
        count, _, squares = merged_moments(targets())
        total_squares = float(squares[0])
        return count, errors / count, (1.0 - errors / total_squares if total_squares > 0
                                       else float("nan"))
    predictions = data.X_fit @ result.coef + result.intercept
    mse = float(np.mean((data.y - predictions) ** 2))
    return len(data.y), mse, r2_score(data.y, predictions)


def r2_score(y, predictions):
    total = float(np.sum((y - y.mean()) ** 2))
    residual = float(np.sum((y - predictions) ** 2))
    return 1.0 - residual / total if total > 0 else float("nan")


def loss_rose(result, start=None):
    """Whether a fit ended with its loss above twice where it began (loss_began): a rate that
    diverges without overflowing, no better a fit than one whose loss stopped being finite.
    (Not any rise: mini-batch losses near the noise floor wander a little either way.)"""
    return result.final_loss > 2.0 * loss_began(result, start)


def loss_began(result, start=None):
    """Where a fit's loss began: ``start``, the objective at the starting parameters
    (starting_loss), or by default loss_history[0]: that same objective for a full-batch fit,
    but for a mini-batch fit the mean of its first epoch's batch losses, which a rate that
    blows up within that epoch has already made large."""
    return result.loss_history[0] if start is None else start


def starting_loss(args, data):
    """J (SPEC §1) at the parameters a fit without init starts from, w = 0 and b = 0: Σyᵢ²/2n
    (the penalties are 0 there), in float64: the loss before any update.  None for a
    full-batch fit (StreamedData always is), whose loss_history[0] is that loss already."""
    if (isinstance(data, StreamedData) or args.batch_size is None
            or args.batch_size >= len(data.y)):
        return None
    y = np.asarray(data.y, dtype=np.float64)
    largest = float(np.max(np.abs(y)))
    if largest == 0.0:
        return 0.0
    # squared as a share of the largest: Σyᵢ² overflows from |y| ~ 1e153 where J need not
    with np.errstate(over="ignore"):
        return float(np.mean(np.square(y / largest))) / 2.0 * largest * largest
