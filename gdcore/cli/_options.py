"""The subcommands' options: the arguments of gdcore.fit and the stopping rules, their
values, and gdcore.fit's checks of them made before the data are read."""

from __future__ import annotations

import argparse

import numpy as np

from .._io import is_folder


def add_data_arguments(parser, target_required=True):
    parser.add_argument("data", help="CSV, Parquet (.parquet), .npy or .npz file, a folder "
                                     "of Parquet/CSV files (read one at a time, full batch), "
                                     "or - for CSV or Parquet on stdin, compressed or not")
    parser.add_argument("--target", required=target_required,
                        help="the target column (a column index for .npy; for a .npz of "
                             "arrays X and y, the target array's name: y)")
    # repeated, the lists add up (argparse's default kept the last, dropping the others)
    parser.add_argument("--features", nargs="+", action="extend", metavar="COL",
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


FOLDER_BATCH_SIZE = ("--batch-size: a folder of files is fitted full-batch (gdcore.fit_chunks); "
                     "leave --batch-size out")


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
