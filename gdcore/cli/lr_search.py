"""``gdcore lr-search DATA --target COL``: try learning rates for a few epochs each."""

from __future__ import annotations

import math
import sys

import numpy as np

from .. import DivergenceError
from .._io import DataError
from .._validation import make_rng
from ._data import fit_data, load, loss_rose, starting_loss
from ._messages import fail
from ._options import add_data_arguments, add_fit_arguments, check_options_first, fit_options

# ranked in this order, then by final loss: rates whose final loss is at most twice the loss
# before any update, above it, or not finite
STATUS_ORDER = ("ok", "rose", "diverged")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "lr-search", help="rank learning rates by the loss after a few epochs",
        description="Fit with each learning rate for a few epochs (no early stopping) and "
                    "rank them by the final epoch's loss: first the rates whose final loss is at "
                    "most twice the loss before any update, at the starting parameters ('ok': "
                    "it fell, or rose a little, as mini-batch noise makes it), then those whose "
                    "final loss is above twice that ('rose'), then those that diverged.")
    add_data_arguments(p)
    add_fit_arguments(p, epochs=5, lr=False, saves_model=False)
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--grid", metavar="LR,LR,...", help="comma-separated learning rates")
    how.add_argument("--random", type=int, metavar="N",
                     help="N learning rates drawn log-uniformly from [--low, --high]")
    # (default None: given with --grid, they are refused, not silently unused)
    p.add_argument("--low", type=float, default=None,
                   help="smallest rate --random draws (default 1e-4)")
    p.add_argument("--high", type=float, default=None,
                   help="largest rate --random draws (default 1)")
    p.add_argument("--progress", action="store_true", default=None,
                   help="report each rate on stderr as it finishes (default: only on a "
                        "terminal)")
    p.set_defaults(run=run)
    return p


def candidate_rates(args):
    if args.epochs < 2:
        # a full-batch epoch's loss is taken before its update: one epoch ranks nothing
        raise ValueError(f"--epochs must be >= 2 to rank learning rates (an epoch's loss is "
                         f"taken before its update), got {args.epochs}")
    if args.grid is not None:
        given = [flag for flag in ("--low", "--high") if getattr(args, flag[2:]) is not None]
        if given:
            raise ValueError(f"{' and '.join(given)} set the range --random draws from; "
                             "--grid gives the rates themselves")
        try:
            rates = [float(v) for v in args.grid.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"--grid must be numbers separated by commas, got {args.grid!r}") \
                from None
        if not rates:
            raise ValueError("--grid is empty")
    else:
        low = 1e-4 if args.low is None else args.low
        high = 1.0 if args.high is None else args.high
        if args.random < 1:
            raise ValueError(f"--random must be >= 1, got {args.random}")
        if not (0 < low < high) or not math.isfinite(high):
            raise ValueError(f"need 0 < --low < --high, got {low} and {high}")
        rng = make_rng(args.seed)
        try:
            rates = np.exp(rng.uniform(math.log(low), math.log(high), args.random))
            rates = sorted(float(r) for r in rates)
        except (ValueError, MemoryError):
            # NumPy's "Maximum allowed dimension exceeded" or "array is too big" (from
            # 2**60 rates), or memory that runs out well before: each rate is also a fit
            raise ValueError(f"--random {args.random}: too many learning rates to draw (they "
                             "do not fit in memory)") from None
    for rate in rates:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"learning rates must be finite and > 0, got {rate}")
    return rates


def run(args):
    try:
        rates = candidate_rates(args)
        check_options_first(args, tol=None, n_iter_no_change=5, gtol=None)
        table = load(args)
        # every rate starts from the same parameters: mini-batch fits are judged against the
        # loss there, not their first epoch's, whose batches already see the rate's updates
        start = starting_loss(args, table)
    except (ValueError, TypeError, DataError) as exc:
        return fail("lr-search", exc)
    rows = []
    report = args.progress if args.progress is not None else sys.stderr.isatty()
    for done, rate in enumerate(rates, start=1):
        options = dict(fit_options(args), lr=rate)
        try:
            result = fit_data(args, table, tol=None, **options)
            status = "rose" if loss_rose(result, start) else "ok"
            rows.append((result.final_loss, rate, result.n_epochs, result.elapsed, status))
        except DivergenceError as exc:
            rows.append((math.inf, rate, exc.result.n_epochs, float("nan"), "diverged"))
        except (ValueError, TypeError) as exc:
            return fail("lr-search", exc)
        if report:
            print(f"lr-search: {done}/{len(rates)} lr {rate:.6g}: {rows[-1][4]}, final loss "
                  f"{rows[-1][0]:.6g}", file=sys.stderr, flush=True)
    rows.sort(key=lambda row: (STATUS_ORDER.index(row[4]), row[0], row[1]))
    print(f"{'rank':>4}  {'lr':>12}  {'final loss':>14}  {'epochs':>6}  {'seconds':>8}  status")
    for rank, (loss, rate, epochs, seconds, status) in enumerate(rows, start=1):
        print(f"{rank:>4}  {rate:>12.6g}  {loss:>14.6g}  {epochs:>6}  {seconds:>8.3f}  {status}")
    best = rows[0]
    if best[4] != "ok":
        return fail("lr-search", "every learning rate diverged or its loss rose; try smaller "
                                 "rates, or --standardize")
    print(f"best lr: {best[1]:.6g}")
    return 0
