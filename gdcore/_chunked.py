"""Full-batch fits over data that is not one array: chunks on one machine, or Dask blocks.

An epoch adds up the raw sums of a fused pass over every chunk (Σ sᵢrᵢxᵢ, Σ sᵢrᵢ, Σ sᵢrᵢ²,
Σ sᵢ: see gdcore._core.block_sums_of), which are exactly the sums of one pass over all the
rows, so the loss, the gradient and therefore the whole trajectory are those of
``gdcore.fit(..., batch_size=None)`` on the concatenated data, up to rounding.  The rest of the
epoch (loss, gtol, schedule, update, tol rule, divergence) is the loop below, shared by
:func:`fit_chunks` and :func:`gdcore.dask.fit`; only how the sums are obtained differs.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from . import _core
from ._api import finish_run, name_features, prepare_run
from ._precompute import (GRAM_MAX_FEATURES, augmented_gram, check_gram,
                          check_gram_fits_in_memory, gram_epoch_sums, gram_fits_in_memory,
                          gram_is_finite)
from ._reference import (STATUS_LOSS_NOT_FINITE, STATUS_OK, InterruptGuard,
                         finite_in_data_precision, stop_after_epoch, update_failure)
from ._validation import (arrow_column_names, check_choice, check_data, check_weight_sum,
                          check_xy_values, provisional_weights, resolve_n_threads,
                          string_names, weight_scale_exponent, weight_sum_and_largest,
                          weights_in_dtype)
from .optim import SGD

__all__ = ["fit_chunks", "run_full_batch"]


def run_full_batch(run, sums_at):
    """The full-batch epoch loop, given ``sums_at(theta) -> sums`` (float64, d + 3).

    Mutates run.state like the compiled loop does; returns (stop_reason, status)."""
    with InterruptGuard().installed() as guard:
        return _full_batch_epochs(run, sums_at, guard)


def _full_batch_epochs(run, sums_at, guard):
    """run_full_batch's loop, with Ctrl-C held back by ``guard`` while the state moves."""
    state, settings, opt = run.state, run.settings, run.opt
    l1_prox = settings.l1 if isinstance(opt, SGD) else 0.0
    optim_config, schedule_config = opt._config(), run.sched._config()
    for _ in range(settings.epochs):
        theta = state.theta
        loss, grad = _core.objective_from_sums(sums_at(theta), theta, settings.l2,
                                               settings.l1, settings.fit_intercept)
        if not finite_in_data_precision(loss, theta.dtype):
            return "diverged", STATUS_LOSS_NOT_FINITE
        gtol_reached = settings.gtol is not None and _core.gradient_stationarity(
            grad, theta, settings.l1, settings.fit_intercept) <= settings.gtol
        # the update and the epoch's bookkeeping are one step for Ctrl-C: its .result is
        # the last finished epoch, never θ of one epoch with the counters of the one before
        with guard:
            if not gtol_reached:
                t = state.n_updates + 1
                lr = _core.scheduled_learning_rate(schedule_config, opt.lr, state.n_epochs, t)
                if not _core.optimizer_update(theta, grad, state.optimizer_state, optim_config,
                                              t, lr, l1_prox, settings.fit_intercept):
                    return "diverged", update_failure(grad, settings.fit_intercept)
                state.n_updates = t
            state.loss_history.append(loss)
            state.n_epochs += 1
            stop = stop_after_epoch(state, loss, settings, gtol_reached)
        if run.on_epoch is not None and run.on_epoch(loss) and stop is None:
            stop = "callback"
        if stop is not None:
            return stop, STATUS_OK
    return "epochs", STATUS_OK


class _Chunks:
    """Validated access to the chunks: each pass re-reads them from the source.

    Every chunk of the first pass is checked as gdcore.fit checks its arrays (errors name the
    chunk and its rows in the whole data).  ``first_pass()`` also counts the rows and finds
    the largest weight, from which one power of two for every chunk brings the weights near 1,
    as gdcore.fit does (weights near 1e300 overflowed the sums); iterating gives later passes,
    with the weights so scaled, and they must give the same rows.  Weights are scaled before
    they are converted to X's dtype, as gdcore.fit scales them: float64 weights past
    float32's range, or all below its normal range, fit float32 X as the same weights near 1.
    ``later_pass(False)`` leaves X's and y's NaN/inf checks to ``check_chunk_values``, for a
    chunk whose sums are not finite."""

    def __init__(self, chunks, n_threads=0):
        if (isinstance(chunks, tuple) and len(chunks) in (2, 3)
                and getattr(chunks[0], "ndim", None) == 2):
            raise TypeError("chunks is one (X, y) pair, not a list of them: pass [(X, y)] "
                            "(or gdcore.fit(X, y) for one array)")
        self.n_threads = n_threads      # of the NaN/inf checks, as of the fit's passes
        self.columns = None             # the first DataFrame chunk's column names
        self.check_columns = None       # checks them (a named init's, after array chunks)
        if callable(chunks):
            self._fresh = chunks
        elif (hasattr(chunks, "__iter__") and not hasattr(chunks, "__next__")
              and iter(chunks) is not iter(chunks)):
            self._fresh = lambda: chunks
        else:
            raise TypeError("chunks must be a re-iterable (a list, say) of (X, y) or "
                            "(X, y, sample_weight) tuples, or a callable returning a fresh "
                            "iterable each time; a one-shot iterator (or an object whose "
                            "iter() returns the same iterator) cannot be read every epoch")
        self.d = self.dtype = None
        self.n = None
        self.weight_exponent = 0

    def first_pass(self):
        """Yield the first pass's chunks as they are read, their weights unscaled (see
        provisional_weights): what is made of them holds only if ``weight_exponent`` is still
        0 once the pass has ended (weights within 2^±64, as nearly all are); else the caller
        reads them again, scaled.  A positive weight that unscaled weights lose (0 in X's
        dtype) is refused at the end of the pass, if they stay unscaled; scaled, the later
        pass decides (a weight lost unscaled and scaled down is lost too)."""
        largest, total = 0.0, 0.0
        unscaled_error = None
        for problem in self._pass():
            chunk_total, chunk_largest = weight_sum_and_largest(problem)
            total, largest = total + chunk_total, max(largest, chunk_largest)
            if problem.sample_weight is not None:
                problem.sample_weight, lost = provisional_weights(
                    problem.sample_weight, problem.dtype, problem.row_offset)
                if lost is not None and unscaled_error is None:
                    unscaled_error = _in_chunk(lost, problem.chunk_index, problem.row_offset)
            yield problem
        check_weight_sum(total, "over all chunks")    # as gdcore.fit checks its weights
        self.weight_exponent = weight_scale_exponent(largest)
        if self.weight_exponent == 0 and unscaled_error is not None:
            raise unscaled_error

    def __iter__(self):
        """A later pass, every chunk checked whole, as in the first."""
        return self.later_pass(check_xy_finite=True)

    def later_pass(self, check_xy_finite):
        """A later pass's chunks, their weights scaled as the first pass found, then converted
        to X's dtype (a positive weight this makes 0 is refused, naming its chunk and row);
        each is checked as the first pass checked it, but for NaN/inf in X and y when
        check_xy_finite is False (made all the same, first, before a chunk is refused)."""
        return self._pass(check_xy_finite, self._scale_weights)

    def _scale_weights(self, problem):
        weights = problem.sample_weight
        if weights is None and self.weight_exponent != 0:
            weights = np.ones(problem.n)    # unit weights beside scaled ones: scaled alike
        if weights is not None:
            problem.sample_weight = weights_in_dtype(weights, problem.dtype,
                                                     self.weight_exponent, problem.row_offset)

    def check_chunk_values(self, problem):
        """The NaN/inf checks of X and y a ``later_pass(False)`` chunk was read without: a
        chunk whose sums were not finite has a NaN or an infinity (which always makes them
        so), or its sums overflowed (left to the divergence check)."""
        try:
            check_xy_values(problem.X, problem.y, problem.row_offset, self.n_threads)
        except ValueError as exc:
            raise _in_chunk(exc, problem.chunk_index, problem.row_offset) from None

    def _pass(self, check_xy_finite=True, finish=None):
        """Yield validated Problems, their weights as given (check_data's weights_as_given)
        then passed to finish(problem), checking every chunk agrees with the first.  A chunk
        read without X's and y's NaN/inf checks that is refused is checked whole, in the
        first pass's order, so a NaN beside a bad weight is named as that pass names it."""
        n = 0
        given = self._fresh()
        try:
            chunks = iter(given)
        except TypeError:
            # Python's "'int' object is not iterable" named neither chunks nor the callable
            raise TypeError(f"chunks: the callable returned {type(given).__name__} {given!r:.60}"
                            ", not an iterable of (X, y) or (X, y, sample_weight) tuples"
                            ) from None
        for index, chunk in enumerate(chunks):
            if isinstance(chunk, dict):
                raise TypeError(f"chunk {index} is a dict; expected a tuple (X, y) or "
                                "(X, y, sample_weight)")
            try:
                parts = tuple(chunk)
            except TypeError:
                raise TypeError(f"chunk {index}: expected (X, y) or (X, y, sample_weight), "
                                f"got {type(chunk).__name__}") from None
            if len(parts) not in (2, 3):
                raise ValueError(f"chunk {index}: expected (X, y) or (X, y, sample_weight), "
                                 f"got {len(parts)} items")
            problem = self._as_first_pass(
                functools.partial(self._checked, parts, n, check_xy_finite), parts, index, n,
                check_xy_finite)
            problem.chunk_index, problem.row_offset = index, n
            if problem.n == 0:
                # a filter's empty partition, an empty row group: nothing to add, but
                # its columns must still be the data's
                if self.d is not None and problem.d != self.d:
                    raise ValueError(f"chunk {index}: X has {problem.d} features but the "
                                     f"chunks before it have {self.d}")
                continue
            if self.d is None:
                self.d, self.dtype = problem.d, problem.dtype
            elif problem.d != self.d:
                raise ValueError(f"chunk {index}: X has {problem.d} features but chunk 0 has "
                                 f"{self.d}")
            elif problem.dtype != self.dtype:
                # Casting would change this chunk's precision (or overflow) silently, and the
                # fit's dtype would depend on the order of the chunks.
                given = getattr(parts[0], "dtype", problem.dtype)
                computed = "" if given == problem.dtype else f", computed as {problem.dtype},"
                raise TypeError(f"chunk {index}: X is {given}{computed} but chunk 0's is "
                                f"{self.dtype}; every chunk must have one dtype (float32 or "
                                "float64; other types count as float64)")
            if finish is not None:     # after the checks above, as the first pass's order
                self._as_first_pass(functools.partial(finish, problem), parts, index, n,
                                    check_xy_finite)
            n += problem.n
            yield problem
        if n == 0 and self.n is not None:
            # a later pass found nothing where the first found rows: most often a callable
            # that returns one generator every time, spent by the first pass
            raise ValueError(f"chunks: a pass yielded no rows where the first gave {self.n}; "
                             "the source must give the same rows every pass (a callable "
                             "must return a fresh iterable each call, not the same "
                             "generator)")
        if n == 0:
            raise ValueError("chunks: no data (the iterable yielded no chunk, or no rows)")
        if self.n is None:
            self.n = n
        elif n != self.n:
            raise ValueError(f"chunks: a pass yielded {n} rows where the first gave {self.n}; "
                             "the source must give the same rows every pass")

    def _as_first_pass(self, step, parts, index, n, check_xy_finite):
        """step()'s result; a refusal names the chunk, and a chunk read without X's and y's
        NaN/inf checks is first checked whole, so that the first pass's fault is named."""
        try:
            try:
                return step()
            except (ValueError, TypeError):
                if not check_xy_finite:
                    self._checked(parts, n, True)
                raise
        except (ValueError, TypeError) as exc:
            raise _in_chunk(exc, index, n) from None

    def _checked(self, parts, row_offset, check_xy_finite):
        """check_data of a chunk's parts, its rows counted from row_offset."""
        return check_data(self._by_name(parts[0]), parts[1],
                          parts[2] if len(parts) == 3 else None, allow_zero_weight_sum=True,
                          row_offset=row_offset, n_threads=self.n_threads, allow_empty=True,
                          check_xy_finite=check_xy_finite, weights_as_given=True)

    def _by_name(self, X):
        """A DataFrame chunk's columns in the first one's order, matched by name (the
        coefficients belong to names; a chunk read with its columns reordered would
        otherwise be fitted column by position); other names are refused."""
        names = arrow_column_names(X)
        if names is not None:     # a pyarrow Table or RecordBatch

            def reorder(columns):
                import pyarrow   # (a RecordBatch has no select before pyarrow 11)
                return pyarrow.table({name: X.column(names.index(name)) for name in columns})
        elif hasattr(X, "columns") and hasattr(X, "loc"):  # a DataFrame
            names, reorder = list(X.columns), X.__getitem__
        else:
            return X
        if self.columns is None:
            if self.check_columns is not None:
                self.check_columns(names)
            self.columns = names
            return X
        if names == self.columns:
            return X
        given, first = set(names), set(self.columns)
        if len(given) == len(names) and given == first:
            return reorder(self.columns)
        if given == first:
            raise ValueError(f"X's columns {names} repeat a name; the first chunk's are "
                             f"{self.columns}")
        missing = [name for name in self.columns if name not in given]
        extra = [name for name in names if name not in first]
        raise ValueError(f"X's columns differ from the first chunk's ({self.columns}): "
                         f"missing {missing}, not in the first {extra}")


def _in_chunk(exc, index, row_offset):
    """exc, its message prefixed with the chunk it is about."""
    return type(exc)(f"chunk {index} (from row {row_offset} of the whole data): {exc}")


def _empty_weights(problem):
    return (problem.sample_weight if problem.sample_weight is not None
            else np.empty(0, problem.dtype))


def gram_of(problems):
    """The packed moments (see gdcore._precompute) of all the rows of problems, each chunk's
    rows merged into one matrix in place: it and a scratch of its size are all this holds
    at once, as gdcore.fit's Gram mode (and as precompute=True's memory check counts)."""
    total = None
    for problem in problems:
        total = augmented_gram(problem.X, problem.y, problem.sample_weight, into=total)
    return total


def fit_chunks(chunks, *, optimizer=None, lr=None, epochs=100, schedule=None, l2=0.0, l1=0.0,
               fit_intercept=True, tol=1e-4, n_iter_no_change=5, gtol=None, n_threads=None,
               init=None, callback=None, precompute=False):
    """Fit on data given in chunks, with exact full-batch semantics.

    ``chunks`` is a list (or any re-iterable) of ``(X, y)`` or ``(X, y, sample_weight)``
    pairs — row blocks of one data set, e.g. Parquet row groups or CSV pieces — or a callable
    returning a fresh iterable of them each time it is called (each epoch reads the chunks
    once).  Each epoch's loss and gradient are summed over all chunks, so the result equals
    ``gdcore.fit(X, y, batch_size=None, ...)`` on the concatenated rows (up to rounding).
    ``precompute=True`` reads the chunks once to form the Gram matrix and then runs every
    epoch in O(d²); ``"auto"`` does so from two epochs on (up to 4096 features), and streams
    if the matrix overflows float64.  The other arguments are those of :func:`gdcore.fit`.
    Every chunk is validated as gdcore.fit validates X and y (errors name the chunk and the
    row in the whole data) as it is read, and the first pass, which also forms the Gram matrix
    or the first epoch's sums, is validated whole before the first update; extreme weights are
    scaled as gdcore.fit scales them, before they are converted to X's dtype (for weights
    beyond 2^±64 this takes one more pass; float64 weights past float32's range, or all below
    its normal range, fit float32 X as the same weights near 1).
    Every later pass must yield the same rows, and is checked again as it is read but for NaN
    and infinity in X and y, which make a chunk's sums non-finite: only such a chunk is
    checked for them (and a value gone bad since the first pass named as that pass would).
    """
    source = _Chunks(chunks, resolve_n_threads(n_threads))
    precompute = check_choice("precompute", precompute, (True, False, "auto"))
    settings = dict(optimizer=optimizer, lr=lr, epochs=epochs, batch_size=None,
                    schedule=schedule, l2=l2, l1=l1, fit_intercept=fit_intercept, tol=tol,
                    n_iter_no_change=n_iter_no_change, gtol=gtol, shuffle=False, seed=None,
                    n_threads=n_threads, callback=callback, backend="chunks")
    # what does not need the data's width or dtype, checked before the first chunk is read
    # (a remote source's can take a while); init is checked against the first chunk
    prepare_run(1, 1, np.float64, init=None, **settings)
    # The first chunk gives d and the dtype the settings are checked against; the rest of the
    # first pass is validated as it is read and also makes the Gram matrix or the first
    # epoch's sums, so that no pass reads the data for its checks alone.
    first_pass = source.first_pass()
    first_chunk = next(first_pass)
    try:
        run = prepare_run(1, source.d, source.dtype, init=init, **settings)
        name_features(run, string_names(source.columns))
        if source.columns is None and run.feature_names is not None:
            # array chunks so far, continuing a named fit: a DataFrame chunk after them must
            # have its columns, in its order (the others are then matched to that chunk's)
            source.check_columns = lambda names: name_features(run, string_names(names))
        if precompute is True:
            check_gram_fits_in_memory(source.d)
    except BaseException:
        first_pass.close()      # the source's open file, say, is not kept for the traceback
        raise
    # "auto": a source is read again every epoch (files parsed again, in general): forming
    # the Gram matrix in the first pass is cheaper once a second epoch runs
    use_gram = precompute is True or (precompute == "auto" and run.settings.epochs >= 2
                                      and source.d <= GRAM_MAX_FEATURES
                                      and gram_fits_in_memory(source.d))

    def sums_over(problems, theta):
        total = np.zeros(source.d + 3)
        for problem in problems:
            sums = _core.block_sums_of(problem.X, problem.y, _empty_weights(problem),
                                       theta.astype(problem.dtype, copy=False), run.n_threads)
            if not np.isfinite(sums).all():
                # a NaN or inf in X or y (a later pass reads them without their own check),
                # or an overflow of finite values, which divergence reports
                source.check_chunk_values(problem)
            # an overflow across chunks is reported below (weights) or as divergence (loss)
            with np.errstate(over="ignore", invalid="ignore"):
                total += sums
        return total

    def checked(total):
        check_weight_sum(total[-1], "over all chunks")
        return total

    def streamed_sums(theta):
        # The first pass checked every value; a later one reads X once, for its sums, which
        # NaN or inf in X or y always make non-finite (x·w + b is NaN or ±inf, and so is
        # sᵢrᵢ², whatever sᵢ).  Checking only such chunks halves an epoch's reading.
        return checked(sums_over(source.later_pass(check_xy_finite=False), theta))

    def execute(run):
        read = itertools.chain([first_chunk], first_pass)
        if not use_gram:
            first_sums = sums_over(read, run.state.theta)
            # made with unscaled weights: if the weights are to be scaled, they are not those
            # of the data (nor checked: a sum of 0 may be weights that only unscaled were 0),
            # and the first epoch reads again
            first_sums = [checked(first_sums)] if source.weight_exponent == 0 else []

            def sums_at(theta):
                # the first call is the first epoch, at the θ the first pass summed at
                return first_sums.pop() if first_sums else streamed_sums(theta)
            return run_full_batch(run, sums_at)
        gram = gram_of(read)
        if source.weight_exponent != 0:
            gram = gram_of(source)
        check_weight_sum(gram[-1, -1], "over all chunks")
        if not gram_is_finite(gram) and precompute == "auto":
            return run_full_batch(run, streamed_sums)   # a choice of speed: stream instead
        check_gram(gram)
        return run_full_batch(run, gram_epoch_sums(gram, streamed_sums))
    return finish_run(run, execute)
