"""``gdcore predict MODEL DATA``: predictions of a saved model for a data file."""

from __future__ import annotations

import contextlib
import csv
import itertools
import sys

from .._atomic import replaced_on_success
from .._io import (DataError, data_name, is_folder, is_npy, iter_folder_tables, npy_blocks,
                   one_line, read_table)
from .._model_io import load_model
from ._messages import drop_stdout, fail
from ._paths import (check_distinct_paths, check_not_added_to_folder, check_output_path,
                     data_inputs)

# --out "-": the predictions go to stdout, as without --out
STDOUT = "-"


def add_parser(subparsers):
    p = subparsers.add_parser("predict", help="predict with a saved model",
                              description="Apply a model saved by 'gdcore fit --save' to the "
                                          "model's feature columns of DATA.")
    p.add_argument("model", help="JSON model file")
    p.add_argument("data", help="CSV, Parquet, .npy or .npz file, a folder of Parquet/CSV "
                                "files (predicted file by file, in name order), or - for CSV "
                                "or Parquet on stdin, compressed or not")
    p.add_argument("--out", metavar="CSV", help="write predictions here (default, or -: "
                                                "stdout)")
    p.set_defaults(run=run)
    return p


def run(args):
    out_path = None if args.out == STDOUT else args.out
    try:
        check_output_path("--out", out_path)      # before the model and the data are read
        check_distinct_paths({"--out": out_path}, {"MODEL": args.model, **data_inputs(args.data)})
        check_not_added_to_folder("--out", out_path, args.data)
        check_predictions_path(out_path)
        model = load_model(args.model)
    except ValueError as exc:
        swapped = (" (the order is gdcore predict MODEL DATA)"
                   if str(args.data).lower().endswith(".json") and "--out" not in str(exc)
                   else "")
        return fail("predict", f"{exc}{swapped}")
    blocks = feature_blocks(args.data, model.feature_names)
    try:
        # the file opened and its columns checked before anything is written
        first = next(blocks)
    except DataError as exc:
        return fail("predict", exc)
    # --out appears only once every prediction is written: a bad cell further into a .npy,
    # or Ctrl-C, leaves no partial predictions behind (and an earlier file as it was)
    try:
        with (replaced_on_success(out_path, newline="") if out_path
              else contextlib.nullcontext(sys.stdout)) as out:
            write_predictions(out, model, itertools.chain([first], blocks))
    except (DataError, ValueError) as exc:
        return fail("predict", exc)
    except BrokenPipeError:
        drop_stdout()   # the reader had enough (| head): not an error
        return 0
    except OSError as exc:
        return fail("predict", f"--out {out_path}: {exc.strerror}" if out_path else
                    f"{exc.filename or 'output'}: {exc.strerror}")
    return 0


# Extensions of files that are not CSV text: predictions written there would be mistaken
# for one (a model, an array, a table, an image).
NOT_CSV_EXTENSIONS = (".json", ".parquet", ".pq", ".npy", ".npz", ".png", ".pdf", ".svg",
                      ".jpg", ".jpeg")


def check_predictions_path(path):
    if path is not None and path.lower().endswith(NOT_CSV_EXTENSIONS):
        raise ValueError(f"--out {path}: predictions are written as CSV text; name the file "
                         ".csv")


def feature_blocks(path, feature_names):
    """The model's feature columns of DATA as row blocks, read as they are asked for.  Every
    error in reading is a DataError naming the file: one that a reader let escape (not its
    own DataError) too, so that predict prints one line, never a traceback."""
    try:
        if is_folder(path):
            # a folder as gdcore fit reads one: file by file, in name order
            for table in iter_folder_tables(path, None, feature_names):
                yield table.X
        elif is_npy(path):
            # a .npy is predicted block by block: neither it nor its predictions held whole
            for X, _ in npy_blocks(path, None, feature_names):
                yield X
        else:
            yield read_table(path, None, feature_names, features_only=True).X
    except DataError:
        raise
    except (ValueError, TypeError, OSError) as exc:
        raise DataError(f"{data_name(path)}: cannot read the data ({one_line(exc)})") from None


def write_predictions(out, model, blocks):
    # the header as CSV: a target named 'price, "usd"' is one quoted column
    csv.writer(out, lineterminator="\n").writerow([model.target or "prediction"])
    for X in blocks:
        # as np.savetxt(fmt="%.17g") would, without its per-call garbage
        out.writelines(f"{value:.17g}\n" for value in model.predict(X))
