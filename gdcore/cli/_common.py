"""Arguments and helpers shared by the subcommands that fit."""

from __future__ import annotations

import sys

import numpy as np

from .._io import DataError, read_table


def add_data_arguments(parser, target_required=True):
    parser.add_argument("data", help="CSV, Parquet (.parquet), .npy or .npz file")
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


def fit_options(args):
    return dict(optimizer=args.optimizer, lr=args.lr, epochs=args.epochs,
                batch_size=args.batch_size, schedule=args.schedule, l2=args.l2, l1=args.l1,
                n_threads=args.threads, seed=args.seed)


def load(args, target_required=True):
    table = read_table(args.data, args.target, args.features)
    if target_required and table.y is None:
        raise DataError(f"{args.data}: give the target column with --target")
    return table


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
