"""``gdcore predict MODEL DATA``: predictions of a saved model for a data file."""

from __future__ import annotations

import os
import sys

from .._io import DataError, is_npy, npy_blocks, read_table
from .._model_io import load_model
from ._common import fail


def add_parser(subparsers):
    p = subparsers.add_parser("predict", help="predict with a saved model",
                              description="Apply a model saved by 'gdcore fit --save' to the "
                                          "model's feature columns of DATA.")
    p.add_argument("model", help="JSON model file")
    p.add_argument("data", help="CSV, Parquet, .npy or .npz file")
    p.add_argument("--out", metavar="CSV", help="write predictions here (default: stdout)")
    p.set_defaults(run=run)
    return p


def run(args):
    try:
        model = load_model(args.model)
    except ValueError as exc:
        return fail("predict", exc)
    try:
        if is_npy(args.data):
            # a .npy is predicted block by block: neither it nor its predictions held whole
            blocks = (X for X, _ in npy_blocks(args.data, None, model.feature_names))
        else:
            blocks = [read_table(args.data, None, model.feature_names).X]
    except DataError as exc:
        return fail("predict", exc)
    name = model.target or "prediction"
    try:
        out = open(args.out, "w") if args.out else sys.stdout
    except OSError as exc:
        return fail("predict", f"--out {args.out}: {exc.strerror}")
    with out if args.out else _nullcontext(out):
        out.write(f"{name}\n")
        try:
            for X in blocks:
                # as np.savetxt(fmt="%.17g") would, without its per-call garbage
                out.writelines(f"{value:.17g}\n" for value in model.predict(X))
        except (DataError, ValueError) as exc:
            error = exc
        else:
            return 0
    # a bad cell further into a .npy: leave no partial predictions behind
    if args.out:
        os.remove(args.out)
    return fail("predict", error)


class _nullcontext:
    def __init__(self, value):
        self.value = value

    def __enter__(self):
        return self.value

    def __exit__(self, *exc):
        return False
