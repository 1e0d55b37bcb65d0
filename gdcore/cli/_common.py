"""Arguments and helpers shared by the subcommands that fit."""

from __future__ import annotations

import os
import sys

import numpy as np

from .._io import DataError, iter_folder_tables, read_table


def add_data_arguments(parser, target_required=True):
    parser.add_argument("data", help="CSV, Parquet (.parquet), .npy or .npz file, or a folder "
                                     "of Parquet/CSV files (read one at a time, full batch)")
    parser.add_argument("--target", required=target_required,
                        help="the target column (a column index for .npy)")
    parser.add_argument("--features", nargs="+", metavar="COL",
                        help="feature columns (default: every other column)")


def add_fit_arguments(parser, epochs=100):
    parser.add_argument("--optimizer", default="sgd",
                        help="sgd, gd, momentum, nesterov, adagrad, rmsprop, adam, amsgrad, "
                             "normalized (default sgd)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--schedule", default="constant",
                        help="constant, step, exponential, cosine, linear, invscaling")
    parser.add_argument("--l2", type=float, default=0.0)
    parser.add_argument("--l1", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=None, help="n_threads")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--standardize", action="store_true",
                        help="scale features to mean 0, variance 1 before fitting "
                             "(saved with the model)")
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


def tolerance(text):
    """--tol's value: a number, or 'none' for None."""
    if text.strip().lower() == "none":
        return None
    return float(text)


def stopping_options(args):
    return dict(tol=args.tol, n_iter_no_change=args.n_iter_no_change, gtol=args.gtol)


def fit_options(args):
    return dict(optimizer=args.optimizer, lr=args.lr, epochs=args.epochs,
                batch_size=args.batch_size, schedule=args.schedule, l2=args.l2, l1=args.l1,
                n_threads=args.threads, seed=args.seed, fit_intercept=args.fit_intercept)


class FolderData:
    """DATA given as a folder of Parquet/CSV files: read file by file, never all at once.

    Fits on it run with gdcore.fit_chunks (full batch, exact); standardisation, when asked,
    takes its mean and scale from a first pass over the files."""

    def __init__(self, folder, target, features, standardize):
        self.folder, self.target = folder, target
        first = next(iter_folder_tables(folder, target, features))
        if first.y is None:
            raise DataError(f"{folder}: give the target column with --target")
        self.feature_names = first.feature_names
        self.mean = self.scale = None
        if standardize:
            count, total, squares = 0, 0.0, 0.0
            for table in self.tables():
                count += len(table.y)
                total = total + table.X.sum(axis=0)
                squares = squares + (table.X ** 2).sum(axis=0)
            self.mean = total / count
            self.scale = np.sqrt(np.maximum(squares / count - self.mean ** 2, 0.0))
            self.scale[self.scale == 0] = 1.0

    def tables(self):
        return iter_folder_tables(self.folder, self.target, self.feature_names)

    def chunks(self):
        for table in self.tables():
            X = table.X if self.mean is None else (table.X - self.mean) / self.scale
            yield X, table.y


def fit_data(args, data, **options):
    """gdcore.fit on a Table, or gdcore.fit_chunks on a FolderData."""
    from .. import fit, fit_chunks
    if isinstance(data, FolderData):
        if options.get("batch_size") is not None:
            raise ValueError("--batch-size: a folder of files is fitted full-batch "
                             "(gdcore.fit_chunks); leave --batch-size out")
        for name in ("batch_size", "seed"):
            options.pop(name, None)
        return fit_chunks(data.chunks, **options)
    return fit(data.X_fit, data.y, **options)


def load(args, target_required=True):
    """The data named by args: a FolderData for a folder, else a Table with X_fit (X,
    standardised when asked), mean and scale."""
    if os.path.isdir(args.data):
        return FolderData(args.data, args.target, args.features,
                          getattr(args, "standardize", False))
    table = read_table(args.data, args.target, args.features)
    if target_required and table.y is None:
        raise DataError(f"{args.data}: give the target column with --target")
    table.X_fit, table.mean, table.scale = standardization(
        table.X, getattr(args, "standardize", False))
    return table


def residual_summary(data, result):
    """(rows, MSE, R²) of a fitted result on the data, file by file for a folder."""
    if isinstance(data, FolderData):
        count, total, squares, errors = 0, 0.0, 0.0, 0.0
        for X, y in data.chunks():
            count += len(y)
            total += y.sum()
            squares += (y ** 2).sum()
            errors += ((X @ result.coef + result.intercept - y) ** 2).sum()
        variance = squares - total ** 2 / count
        return count, errors / count, (1.0 - errors / variance if variance > 0 else float("nan"))
    predictions = data.X_fit @ result.coef + result.intercept
    mse = float(np.mean((data.y - predictions) ** 2))
    return len(data.y), mse, r2_score(data.y, predictions)


def standardization(X, enabled):
    """(X scaled, mean, scale): columns to mean 0 and variance 1 (constant columns kept)."""
    if not enabled:
        return X, None, None
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    return (X - mean) / scale, mean, scale


def fail(command, message):
    print(f"gdcore {command}: error: {message}", file=sys.stderr)
    return 2


def r2_score(y, predictions):
    total = float(np.sum((y - y.mean()) ** 2))
    residual = float(np.sum((y - predictions) ** 2))
    return 1.0 - residual / total if total > 0 else float("nan")
