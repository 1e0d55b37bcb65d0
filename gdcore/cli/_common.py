"""Arguments and helpers shared by the subcommands that fit."""

from __future__ import annotations

import argparse
import os
import re
import sys

import numpy as np

from .._result import DivergenceError
from .._io import (DataError, is_folder, is_npy, iter_folder_tables, npy_blocks, one_line,
                   read_table)
from .._precompute import gram_is_cheaper
from .._validation import make_rng


def add_data_arguments(parser, target_required=True):
    parser.add_argument("data", help="CSV, Parquet (.parquet), .npy or .npz file, a folder "
                                     "of Parquet/CSV files (read one at a time, full batch), "
                                     "or - for CSV or Parquet on stdin")
    parser.add_argument("--target", required=target_required,
                        help="the target column (a column index for .npy; for a .npz of "
                             "arrays X and y, the target array's name: y)")
    parser.add_argument("--features", nargs="+", metavar="COL",
                        help="feature columns (default: every other column)")


def add_fit_arguments(parser, epochs=100, lr=True, saves_model=True):
    """The options of gdcore.fit; ``lr=False`` leaves out --lr (for a command that chooses
    the rates itself), ``saves_model=False`` says --standardize's scaling is not saved."""
    parser.add_argument("--optimizer", default="sgd",
                        help="sgd, gd, momentum, nesterov, adagrad, rmsprop, adam, amsgrad, "
                             "normalized (default sgd)")
    if lr:
        parser.add_argument("--lr", type=float, default=None,
                            help="learning rate (default: the optimizer's)")
    parser.add_argument("--epochs", type=int, default=epochs,
                        help=f"passes over the data (default {epochs})")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="rows per update (default: all, full batch; 1: classic SGD)")
    parser.add_argument("--schedule", default="constant",
                        help="constant, step, exponential, cosine, linear, invscaling "
                             "(default constant)")
    parser.add_argument("--l2", type=float, default=0.0,
                        help="L2 penalty (l2/2)·‖w‖² (default 0)")
    parser.add_argument("--l1", type=float, default=0.0,
                        help="L1 penalty l1·‖w‖₁, SGD family only (default 0)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads: k >= 1, or -1 for every core (default: OpenMP's, "
                             "OMP_NUM_THREADS)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the mini-batch shuffle, an integer >= 0 (default: "
                             "fresh each run)")
    parser.add_argument("--standardize", action="store_true",
                        help="scale features to mean 0, variance 1 before fitting"
                             + (" (saved with the model)" if saves_model else ""))
    parser.add_argument("--no-intercept", dest="fit_intercept", action="store_false",
                        help="fit y = X·w without b")


def add_stopping_arguments(parser):
    parser.add_argument("--tol", type=tolerance, default=1e-4,
                        help="stop when the loss has not gone below best - TOL for "
                             "--n-iter-no-change epochs in a row; 'none' turns it off "
                             "(default 1e-4)")
    parser.add_argument("--n-iter-no-change", type=int, default=5,
                        help="epochs without improvement before --tol stops (default 5)")
    parser.add_argument("--gtol", type=float, default=None,
                        help="full batch: stop when the largest gradient entry is <= GTOL")


def count(text):
    """A row or column count: an integer, also written 1e6, 1_000_000 or 100000.0."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not (value.is_integer() and abs(value) < 2 ** 63):
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(value)


def tolerance(text):
    """--tol's value: a number, or 'none' for None."""
    if text.strip().lower() == "none":
        return None
    return float(text)


def stopping_options(args):
    return dict(tol=args.tol, n_iter_no_change=args.n_iter_no_change, gtol=args.gtol)


def fit_options(args):
    return dict(optimizer=args.optimizer, lr=getattr(args, "lr", None), epochs=args.epochs,
                batch_size=args.batch_size, schedule=args.schedule, l2=args.l2, l1=args.l1,
                n_threads=args.threads, seed=args.seed, fit_intercept=args.fit_intercept)


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
        first = next(iter_folder_tables(folder, target, features))
        if first.y is None:
            raise DataError(f"{folder}: give the target column with --target")
        self.feature_names = first.feature_names
        if standardize:
            self.standardize(centre)

    def pieces(self):
        for table in iter_folder_tables(self.folder, self.target, self.feature_names):
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


FOLDER_BATCH_SIZE = ("--batch-size: a folder of files is fitted full-batch (gdcore.fit_chunks); "
                     "leave --batch-size out")


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


def check_options_first(args, **stopping):
    """gdcore.fit's checks of the fit's options, made before the data are read: a
    --standardize pass over a large file, or a --batch-size copy of it, would otherwise come
    before an error about --lr.  (The data's width and dtype are not known yet: those checks
    that need them, and gtol against the row count, come with the fit.)"""
    from .._api import prepare_run
    if is_folder(args.data) and getattr(args, "batch_size", None) is not None:
        raise ValueError(FOLDER_BATCH_SIZE)
    prepare_run(1, 1, np.float64, **fit_options(args), **stopping, shuffle=True, init=None,
                callback=None, backend="core")


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


# gdcore's argument names, as error messages begin with them, and the flags that set them
FLAGS = {"n_threads": "--threads", "batch_size": "--batch-size",
         "n_iter_no_change": "--n-iter-no-change", "epochs": "--epochs", "lr": "--lr",
         "l1": "--l1", "l2": "--l2", "seed": "--seed", "tol": "--tol", "gtol": "--gtol",
         "optimizer": "--optimizer", "schedule": "--schedule"}
ARGUMENT_AT_START = re.compile(r"^(%s)\b(?=( must|:| applies| >))" % "|".join(FLAGS))
FLAG_MAY_BE_NONE = re.compile(r"^(--[a-z-]+ )must be None, ")
SEED_KINDS = re.compile(r"^--seed must be an int >= 0, .*; got (\S+) \(.*$")


# the library's advice, and the options it names, in the command line's words
CLI_WORDS = [("standardise X", "--standardize"), ("try a smaller lr", "try a smaller --lr"),
             (" or pass X as float64", " or store the features as float64"),
             ("Use l2, or optimizer='sgd'", "Use --l2, or --optimizer sgd"),
             ("use tol, or batch_size=None", "use --tol, or leave out --batch-size"),
             (" The last finite parameters are in .result", "")]


# ... and the library's argument values, as the command line's options and data
CLI_PATTERNS = [(re.compile(r"\(batch_size=(\d+) < n_samples=(\d+)\)"),
                 r"(--batch-size \1, of \2 rows)")]


def in_cli_words(text):
    for library, command_line in CLI_WORDS:
        text = text.replace(library, command_line)
    for pattern, command_line in CLI_PATTERNS:
        text = pattern.sub(command_line, text)
    return text


def fail(command, message):
    """Print ``message`` (an exception or text) as one error line; returns exit status 2."""
    if isinstance(message, (DivergenceError, str)):
        # (.result is the library's handle on the last parameters, not the command line's)
        message = in_cli_words(str(message))
    elif isinstance(message, (ValueError, TypeError)) and not isinstance(message, DataError):
        message = ARGUMENT_AT_START.sub(lambda match: FLAGS[match.group(1)], str(message))
        # A flag left out is the library's None: the command line cannot pass None itself.
        message = in_cli_words(FLAG_MAY_BE_NONE.sub(r"\1must be ", message))
        # numpy's kinds of seed mean nothing on a command line, which passes integers
        message = SEED_KINDS.sub(r"--seed must be an integer >= 0, got \1", message)
    # one line whatever the message embeds (a library's multi-line exception text)
    print(f"gdcore {command}: error: {one_line(message)}", file=sys.stderr)
    return 2


def loss_rose(result, start=None):
    """Whether a fit ended with its loss above twice where it began: a rate that diverges
    without overflowing, no better a fit than one whose loss stopped being finite.  (Not any
    rise: mini-batch losses near the noise floor wander a little either way.)  Where it began
    is ``start``, the objective at the starting parameters (starting_loss), or by default
    loss_history[0]: that same objective for a full-batch fit, but for a mini-batch fit the
    mean of its first epoch's batch losses, which a rate that blows up within that epoch has
    already made large."""
    return result.final_loss > 2.0 * (result.loss_history[0] if start is None else start)


def starting_loss(args, data):
    """J (SPEC §1) at the parameters a fit without init starts from (w = 0, b = 0), on all the
    rows, with the fit's l2, l1 and fit_intercept, from the core's full-batch pass: the loss
    before any update.  None for a full-batch fit (StreamedData always is), whose
    loss_history[0] is that loss already."""
    if (isinstance(data, StreamedData) or args.batch_size is None
            or args.batch_size >= len(data.y)):
        return None
    from .. import _core
    from .._validation import check_data, resolve_n_threads
    n_threads = resolve_n_threads(args.threads)
    problem = check_data(data.X_fit, data.y, n_threads=n_threads)
    theta = np.zeros(problem.d + 1, dtype=problem.dtype)
    loss, _ = _core.objective_gradient(problem.X, problem.y, np.empty(0, problem.dtype), theta,
                                       args.l2, args.l1, args.fit_intercept, n_threads)
    return float(loss)


def check_plot_path(path):
    """Raise ValueError naming --plot if the loss plot cannot be written to ``path``: checked
    before a fit, so that a long fit does not end in an error about its picture."""
    if path is None:
        return
    from .._plot import supported_image_formats
    try:
        formats = supported_image_formats()
    except ImportError as exc:
        raise ValueError(f"--plot: {exc}") from None
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    if suffix not in formats:
        raise ValueError(f"--plot {path}: the image format comes from the extension; use one "
                         f"of {', '.join('.' + f for f in sorted(formats))}")
    check_output_path("--plot", path)


def drop_stdout():
    """Point stdout at /dev/null once its reader has gone (``| head``) or it cannot be
    written: the interpreter's last flush of what is left in its buffer must not fail again
    at exit ("Exception ignored ...", status 120)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def check_distinct_paths(outputs, inputs):
    """Raise ValueError if an output (flag -> path) would be written over an input (name ->
    path) or over another output: the same file, however it is named."""
    given = [(flag, path) for flag, path in outputs.items() if path is not None]
    for index, (flag, path) in enumerate(given):
        for name, other in list(inputs.items()) + given[:index]:
            if other is not None and _same_file(path, other):
                raise ValueError(f"{flag} {path} is the {name} file ({other}): writing it "
                                 f"would destroy it; give {flag} another name")


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:     # one of them does not exist (yet): the same only by name
        return os.path.realpath(a) == os.path.realpath(b)


def check_output_path(flag, path):
    """Raise ValueError naming the flag if a file cannot be written at ``path`` (its folder
    missing or not writable, or a folder in its place): checked before the work."""
    if path is None:
        return
    if path == "-":     # (only predict --out takes "-", for stdout, before this check)
        raise ValueError(f"{flag} -: this output is written to a file, not to stdout; name "
                         "the file")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{flag} {path}: no such folder {folder}")
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path}: is a folder, not a file")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{flag} {path}: the folder {folder} is not writable")


def r2_score(y, predictions):
    total = float(np.sum((y - y.mean()) ** 2))
    residual = float(np.sum((y - predictions) ** 2))
    return 1.0 - residual / total if total > 0 else float("nan")
