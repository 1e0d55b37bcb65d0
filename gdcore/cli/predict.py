"""``gdcore predict MODEL DATA``: predictions of a saved model for a data file."""

from __future__ import annotations

import sys

import numpy as np

from .._io import DataError, read_table
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
        table = read_table(args.data, None, model.feature_names)
    except DataError as exc:
        return fail("predict", exc)
    predictions = model.predict(table.X)
    name = model.target or "prediction"
    try:
        out = open(args.out, "w") if args.out else sys.stdout
    except OSError as exc:
        return fail("predict", f"--out {args.out}: {exc.strerror}")
    with out if args.out else _nullcontext(out):
        out.write(f"{name}\n")
        np.savetxt(out, predictions, fmt="%.17g")
    return 0


class _nullcontext:
    def __init__(self, value):
        self.value = value

    def __enter__(self):
        return self.value

    def __exit__(self, *exc):
        return False
