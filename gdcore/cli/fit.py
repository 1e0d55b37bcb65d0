"""``gdcore fit DATA --target COL``: fit a file (or a folder of files), print the summary,
optionally plot and save."""

from __future__ import annotations

import re
import sys
import warnings

import numpy as np

from .. import ConvergenceWarning, DivergenceError
from .._io import DataError, _shown, data_name
from .._model_io import SavedModel, save_model
from .._progress import progress_callback, progress_wanted
from ._data import fit_data, load, loss_began, loss_rose, residual_summary, starting_loss
from ._messages import fail, in_cli_words
from ._options import (add_data_arguments, add_fit_arguments, add_stopping_arguments,
                       check_options_first, fit_options, stopping_options)
from ._paths import check_distinct_paths, check_output_path, check_plot_path, data_inputs


def add_parser(subparsers):
    p = subparsers.add_parser("fit", help="fit a linear model to a data file or folder",
                              description="Fit y = X·w + b from a CSV, Parquet, .npy or .npz "
                                          "file, or a folder of Parquet/CSV files (read one "
                                          "file at a time, full batch), and print a summary.")
    add_data_arguments(p)
    add_fit_arguments(p)
    add_stopping_arguments(p)
    p.add_argument("--plot", metavar="PNG", help="write the loss curve to this image")
    p.add_argument("--save", metavar="JSON", help="save the model to this file")
    p.add_argument("--progress", action="store_true", default=None,
                   help="show a progress bar (default: only on a terminal)")
    p.set_defaults(run=run)
    return p


def run(args):
    try:
        check_plot_path(args.plot)
        check_output_path("--save", args.save)
        check_model_path(args.save)
        check_distinct_paths({"--save": args.save, "--plot": args.plot}, data_inputs(args.data))
        check_options_first(args, **stopping_options(args))
    except (ValueError, TypeError) as exc:
        return fail("fit", exc)
    try:
        bar = progress_wanted(args.progress)
    except ImportError as exc:      # --progress without tqdm
        return fail("fit", f"--progress: {exc}")
    close = None
    try:
        data = load(args)
        # the bar is made once the data are read: its clock (epochs per second, time left)
        # times the fit, not the reading and --standardize's pass
        callback, close = progress_callback(args.epochs, enabled=bar, desc="gdcore fit")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            result = fit_data(args, data, callback=callback, **fit_options(args),
                              **stopping_options(args))
        rows, mse, r2 = residual_summary(data, result)
    except DivergenceError as exc:
        return fail("fit", advice(str(exc), args))
    except (DataError, ValueError, TypeError) as exc:
        return fail("fit", exc)
    finally:
        if close is not None:
            close()
    # where the loss began: a mini-batch fit's first epoch already saw the rate's updates
    began = loss_began(result, starting_loss(args, data))
    rose = loss_rose(result, began)
    unnamed = [name for name in data.feature_names if UNNAMED.fullmatch(str(name))]
    if unnamed and args.features is None:
        # pandas' name for a column whose header cell is empty: most often a DataFrame's
        # index, saved by to_csv without index=False, and fitted as if it were a feature
        print(f"gdcore fit: warning: {_shown(unnamed)} ha{'ve' if len(unnamed) > 1 else 's'} "
              "no name in the header (an index saved with the data?) and "
              f"{'are' if len(unnamed) > 1 else 'is'} fitted as a feature; name the features "
              "to fit with --features", file=sys.stderr)
    for warning in caught:
        if rose and issubclass(warning.category, ConvergenceWarning):
            continue    # the diverged fit's error below says it once
        print(f"gdcore fit: warning: {advice(str(warning.message), args)}", file=sys.stderr)
    if r2 < 0 and not rose:
        print(f"gdcore fit: warning: the model predicts the training data worse than their "
              f"mean does (R2 {r2:.6g}); try a smaller --lr"
              + ("" if args.standardize else ", --standardize") + " or more --epochs",
              file=sys.stderr)
    # the model is written before the summary: a summary that cannot be printed (its reader
    # gone, a full disk) does not cost the model
    saved = args.save and not rose
    if saved:
        status = save(args, data, result)
        if status:
            return status
    width = len(data.feature_names)
    print(f"data           {data_name(args.data)}: {rows:,} row{'s' * (rows != 1)} x {width} "
          f"feature{'s' * (width != 1)}, target {data.target!r}")
    print(f"optimizer      {result.optimizer!r}")
    print(f"epochs         {result.n_epochs:,} ({result.n_updates:,} "
          f"update{'s' * (result.n_updates != 1)})")
    print(f"stop reason    {result.stop_reason}")
    print(f"converged      {convergence(result, args, rose)}")
    print(f"final loss     {result.final_loss:.6g}")
    print(f"MSE            {mse:.6g}")
    print(f"R2             {r2:.6g}")
    print(f"seconds        {result.elapsed:.3f}")
    if saved:
        print(f"saved          {args.save}")
    if args.plot:
        try:
            from .._plot import save_loss_plot
            save_loss_plot(args.plot, {args.optimizer: result.loss_history},
                           title=f"gdcore fit {data_name(args.data)}")
        except Exception as exc:    # matplotlib's own errors too: one line, not a traceback
            return fail("fit", f"--plot {args.plot}: {exc}")
        print(f"plot           {args.plot}")
    if rose:
        # a model worse than none: not saved, and the exit status says so
        return fail("fit", advice(f"the loss rose from {began:.6g} to "
                                  f"{result.final_loss:.6g}: the fit diverged"
                                  + (" and was not saved" if args.save else "")
                                  + "; try a smaller --lr or --standardize", args))
    return 0


# The name pandas gives a column whose header cell is empty.
UNNAMED = re.compile(r"Unnamed: \d+")

# Extensions of data files: a model saved under one (JSON in a .csv) is a mistake.
DATA_EXTENSIONS = (".csv", ".parquet", ".npy", ".npz", ".tsv", ".txt")


def check_model_path(path):
    """A ValueError for --save at a data file's name: models are JSON (predictions come from
    gdcore predict --out)."""
    if path is not None and path.lower().endswith(DATA_EXTENSIONS):
        raise ValueError(f"--save {path}: a model is saved as JSON; name it .json "
                         "(predictions are written by gdcore predict MODEL DATA --out FILE)")


def convergence(result, args, rose):
    """The summary's "converged" line: yes, no with what to try, or n/a where no rule ran."""
    if result.converged:
        return "yes"
    losses = result.loss_history
    if result.stop_reason == "epochs" and not rose:
        if args.tol is None and args.gtol is None:
            return "n/a (--tol none: every epoch ran, no rule judged convergence)"
        if len(losses) > 1 and losses[-1] < np.min(losses[:-1]):
            return (f"no (the {args.epochs} epochs ran out while the loss was still "
                    "improving; try more --epochs or a larger --lr, e.g. from gdcore lr-search)")
    return "no"


def advice(text, args):
    """The library's message in the command line's words, without advice already taken."""
    text = in_cli_words(text)
    if args.standardize:
        text = text.replace(", a decaying schedule, or --standardize", " or a decaying schedule")
        text = text.replace(" or --standardize", "")
    return text


def save(args, data, result):
    """Write --save (the summary says so later); 0, or the exit status of an error."""
    model = SavedModel(coef=np.asarray(result.coef, dtype=np.float64),
                       intercept=result.intercept, feature_names=data.feature_names,
                       target=data.target, mean=data.mean, scale=data.scale,
                       hyper_parameters=dict(fit_options(args), **stopping_options(args),
                                             optimizer=repr(result.optimizer),
                                             schedule=repr(result.schedule)),
                       loss_history=list(result.loss_history), stop_reason=result.stop_reason)
    try:
        save_model(args.save, model)
    except OSError as exc:
        return fail("fit", f"--save {args.save}: {exc.strerror}")
    return 0
