# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""gdcore._core: the compiled fit loop.

Three layers, as in scikit-learn's ``_loss``:

* ``gd_kernel.pxd``, ``gd_optimizers.pxd``, ``gd_schedules.pxd``: ``nogil`` inline functions
  for one row, one block of rows, one update, one learning rate;
* this module's ``cdef`` loops: the threaded pass over a block of rows (per-part
  accumulators reduced in a fixed order, so a given thread count gives the same bits every
  run) and the mini-batch epoch loop; included from files of their own: OpenMP and fork
  glue (``gd_threads.pxi``), ``batch_size=1`` epochs (``gd_single_row.pxi``), Gram mode's
  sums (``gd_gram.pxi``), the full-batch epoch loop (``gd_full_batch.pxi``), the bench's
  read probe (``gd_probe.pxi``) and the C API (``gd_capi.pxi``);
* ``def`` entry points called by ``gdcore._api`` once per fit, after it has validated
  everything: the core trusts its inputs' values, but checks that their shapes fit
  together (``check_shapes``), so no call from Python can read or write past an array.

The GIL is held only between epochs (signal check, optional callback, the next
permutation) and, every few million multiply-adds inside a long epoch, for a signal check.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.float cimport DBL_EPSILON, DBL_MAX, FLT_MAX, LDBL_EPSILON
from libc.math cimport fabs, fabsl, isfinite, isnan, sqrt
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memcpy, memset

from gd_types cimport (OptimConfig, ScheduleConfig, gd_optimizer, gd_schedule, STATUS_OK,
                       STATUS_LOSS_NOT_FINITE, STATUS_PARAMS_NOT_FINITE, STATUS_INTERRUPTED,
                       STATUS_NO_MEMORY, STATUS_NO_TEAM, STATUS_GRAD_NOT_FINITE, SLOT_SQUARES,
                       SLOT_WEIGHT, N_SLOTS, OPT_SGD, OPT_ADAGRAD, SCHED_INVSCALING)
from gd_kernel cimport (CACHE_LINE_BYTES, PREFETCH_AHEAD, SHORT_ROW, accumulate_rows,
                       is_finite_vector, objective_and_gradient, prefetch_row, row_gradient,
                       row_residual, GD_PREFETCH, GD_PREFETCH_LOCALITY, stationarity,
                       with_penalties)
from gd_optimizers cimport (optimizer_step, l1_proximal_step, sgd_row_update,
                            sgd_row_update_then_dot)
from gd_schedules cimport scheduled_lr
from gdcore.capi cimport GDCORE_MAX_THREADS, gd_fit_options, gd_fit_info

import numpy as np

from gdcore._permutations import EpochPermutations


include "gd_threads.pxi"

cdef extern from "Python.h":
    int PyErr_CheckSignals()


# Inside a long mini-batch epoch, look for a pending signal after this much work (~ms).
cdef Py_ssize_t SIGNAL_CHECK_WORK = 1 << 22

cdef int check_shapes(Py_ssize_t n, Py_ssize_t d, Py_ssize_t y_length,
                      Py_ssize_t weights_length, Py_ssize_t theta_length,
                      bint allow_empty=False) except -1:
    """ValueError unless X is n × d (d >= 1, n >= 1 unless allow_empty), y has n values,
    sample_weight n or none, theta d + 1.  The entry points' values are validated in Python
    first; this makes any call, validated or not, unable to index past an array."""
    if d < 1 or (n < 1 and not allow_empty):
        raise ValueError(f"gdcore._core: X must have at least one row and one column, "
                         f"got shape ({n}, {d})")
    if y_length != n:
        raise ValueError(f"gdcore._core: y has {y_length} values for X's {n} rows")
    if weights_length != 0 and weights_length != n:
        raise ValueError(f"gdcore._core: sample_weight has {weights_length} values for X's "
                         f"{n} rows (0 for unit weights)")
    if theta_length != d + 1:
        raise ValueError(f"gdcore._core: theta has {theta_length} values, not d + 1 = {d + 1}")
    return 0


cdef int check_parameters(Py_ssize_t theta_length, Py_ssize_t grad_length,
                          Py_ssize_t state_rows, Py_ssize_t state_columns) except -1:
    """ValueError unless theta has >= 2 values (w and b), grad as many and the optimizer
    state is 3 rows of as many (state_rows < 0: no state)."""
    if theta_length < 2:
        raise ValueError(f"gdcore._core: theta must hold w and b (>= 2 values), "
                         f"got {theta_length}")
    if grad_length != theta_length:
        raise ValueError(f"gdcore._core: grad has {grad_length} values, theta {theta_length}")
    if state_rows >= 0 and (state_rows != 3 or state_columns != theta_length):
        raise ValueError(f"gdcore._core: optimizer_state must be 3 x {theta_length}, got "
                         f"{state_rows} x {state_columns}")
    return 0


cdef int check_gram_shape(Py_ssize_t rows, Py_ssize_t columns, Py_ssize_t d) except -1:
    """ValueError unless the packed Gram matrix is (d + 2) × (d + 2)."""
    if rows != d + 2 or columns != d + 2:
        raise ValueError(f"gdcore._core: gram must be {d + 2} x {d + 2}, got {rows} x {columns}")
    return 0


cdef int check_threads(int n_threads) except -1:
    if n_threads < 1 or n_threads > GDCORE_MAX_THREADS:
        raise ValueError(f"gdcore._core: n_threads must be 1 to {GDCORE_MAX_THREADS}, got "
                         f"{n_threads}")
    return 0


cdef enum StopCode:
    STOP_EPOCHS = 0
    STOP_TOL = 1
    STOP_GTOL = 2
    STOP_CALLBACK = 3


def openmp_enabled():
    """True if the extension was compiled with OpenMP."""
    return bool(gd_openmp_enabled())


def prefetch_locality():
    """The locality hint (0-3) the kernels' software prefetches were compiled with."""
    return GD_PREFETCH_LOCALITY


cdef struct BlockPass:
    # block_sums' arguments for its parts (the data's pointers as void: one struct for both
    # float types)
    const void* X
    const void* y
    const void* sample_weight
    const void* theta
    Py_ssize_t d, rows_end, start, n_rows, width, stride
    const Py_ssize_t* rows
    int n_parts
    double* part_sums


cdef inline void block_part(const BlockPass* task, int part, const floating* kind) noexcept nogil:
    """Part `part` of block_sums' rows, summed into its own slot (kind: the float type)."""
    cdef double* slot = task.part_sums + part * task.stride
    cdef Py_ssize_t lo = task.start + part_start(task.n_rows, task.n_parts, part)
    cdef Py_ssize_t hi = task.start + part_start(task.n_rows, task.n_parts, part + 1)
    memset(slot, 0, task.width * sizeof(double))
    if lo < hi:
        accumulate_rows(<const floating*>task.X, <const floating*>task.y,
                        <const floating*>task.sample_weight, <const floating*>task.theta,
                        task.d, task.rows, task.rows_end, lo, hi, slot)


cdef void block_part_f64(void* task, int part) noexcept nogil:
    block_part(<const BlockPass*>task, part, <const double*>NULL)


cdef void block_part_f32(void* task, int part) noexcept nogil:
    block_part(<const BlockPass*>task, part, <const float*>NULL)


cdef void block_sums(
    const floating* X, const floating* y, const floating* sample_weight,
    const floating* theta, Py_ssize_t d,
    const Py_ssize_t* rows, Py_ssize_t rows_end, Py_ssize_t start, Py_ssize_t stop,
    int n_threads, double* part_sums, double* sums, bint full_pass=False,
) noexcept nogil:
    """sums ← the d + 3 sums of rows[start:stop] (see gd_kernel.accumulate_rows).

    With several threads the rows are cut into n_threads contiguous parts, each summed
    into its own padded slot of part_sums, and the parts are added in order: the result
    depends on the thread count but not on how the OpenMP runtime schedules the parts, nor
    on how many threads it grants.  full_pass: the rows are all of the data's, in order (a
    full-batch epoch's pass), cut into parts as a full-batch team cuts them (TEAM_MIN_WORK).
    """
    cdef Py_ssize_t width = d + N_SLOTS, stride = accumulator_stride(d)
    cdef Py_ssize_t n_rows = stop - start, part, j
    cdef int n_parts = n_threads
    cdef BlockPass task
    memset(sums, 0, width * sizeof(double))
    if on_one_thread(n_rows, d, n_parts, rows != NULL, full_pass):
        accumulate_rows(X, y, sample_weight, theta, d, rows, rows_end, start, stop, sums)
        return
    task.X, task.y, task.sample_weight, task.theta = X, y, sample_weight, theta
    task.d, task.rows, task.rows_end, task.start, task.n_rows = d, rows, rows_end, start, n_rows
    task.n_parts, task.width, task.stride, task.part_sums = n_parts, width, stride, part_sums
    if floating is double:
        gd_parallel_parts(n_parts, gd_team_threads(n_threads), block_part_f64, &task)
    else:
        gd_parallel_parts(n_parts, gd_team_threads(n_threads), block_part_f32, &task)
    for part in range(n_parts):
        for j in range(width):
            sums[j] += part_sums[part * stride + j]


cdef inline int update_into(
    const OptimConfig* optim, const floating* theta, const floating* grad,
    floating* state0, floating* state1, floating* state2, floating* updated,
    Py_ssize_t d, bint fit_intercept, long long t, double lr, double l1,
) noexcept nogil:
    """One optimizer update (plus the l1 proximal step), the new θ written to updated (θ
    itself, or a second buffer; an unfitted b is left where it is in updated);
    STATUS_PARAMS_NOT_FINITE if the new θ is not finite."""
    cdef Py_ssize_t m = d + 1 if fit_intercept else d
    optimizer_step(optim, theta, grad, state0, state1, state2, m, t, lr, updated)
    if l1 > 0.0 and optim.kind == OPT_SGD:
        l1_proximal_step(updated, d, lr * l1)
    if not is_finite_vector(updated, m):
        return STATUS_PARAMS_NOT_FINITE
    return STATUS_OK


cdef inline int apply_update(
    const OptimConfig* optim, floating* theta, const floating* grad,
    floating* state0, floating* state1, floating* state2, floating* backup,
    Py_ssize_t d, bint fit_intercept, long long t, double lr, double l1,
) noexcept nogil:
    """update_into θ in place; if the update makes θ non-finite, θ is restored from before
    it and STATUS_PARAMS_NOT_FINITE is returned (see update_failure)."""
    memcpy(backup, theta, (d + 1) * sizeof(floating))
    if update_into(optim, theta, grad, state0, state1, state2, theta, d, fit_intercept, t, lr,
                   l1) != STATUS_OK:
        memcpy(theta, backup, (d + 1) * sizeof(floating))
        return update_failure(grad, d, fit_intercept)
    return STATUS_OK


cdef inline int update_failure(const floating* grad, Py_ssize_t d,
                               bint fit_intercept) noexcept nogil:
    """Why an update left θ non-finite: STATUS_GRAD_NOT_FINITE if its gradient already was
    (Σ sᵢrᵢxᵢ overflowed: no lr helps), else STATUS_PARAMS_NOT_FINITE (the step was)."""
    if is_finite_vector(grad, d + 1 if fit_intercept else d):
        return STATUS_PARAMS_NOT_FINITE
    return STATUS_GRAD_NOT_FINITE


include "gd_gram.pxi"

cdef int full_batch_epoch(
    const floating* X, const floating* y, const floating* sample_weight,
    floating* theta, floating* grad, floating* state0, floating* state1, floating* state2,
    floating* backup, Py_ssize_t n, Py_ssize_t d, const OptimConfig* optim,
    const ScheduleConfig* schedule, long long epoch, long long* t,
    double l2, double l1, bint fit_intercept, double gtol,
    int n_threads, double* part_sums, double* sums,
    const double* gram, double* loss, bint* gtol_reached, bint* streamed,
) noexcept nogil:
    """One pass over X (or, in Gram mode, over the (d+2)² Gram matrix) gives J and ∇J at θ
    (recorded as the epoch's loss), then one update.  In Gram mode, a loss too close to its
    rounding (a near-exact fit) takes the pass over X after all; ``streamed`` says if it ran."""
    streamed[0] = gram == NULL or not gram_epoch_sums(gram, theta, d, sums)
    if streamed[0]:
        block_sums(X, y, sample_weight, theta, d, NULL, n, 0, n, n_threads, part_sums, sums,
                   True)
    return update_from_sums(sums, theta, grad, state0, state1, state2, backup, d, optim,
                            schedule, epoch, t, l2, l1, fit_intercept, gtol, loss, gtol_reached)


cdef inline bint finite_in_data_precision(double loss, const floating* like) noexcept nogil:
    """Whether a loss (summed in float64) is finite in the data's precision: a float32 fit
    whose loss is past float32's range has diverged, as it has for the NumPy reference."""
    if floating is float:
        return fabs(loss) <= FLT_MAX
    else:
        return isfinite(loss)


cdef inline int update_from_sums(
    const double* sums, floating* theta, floating* grad, floating* state0, floating* state1,
    floating* state2, floating* backup, Py_ssize_t d, const OptimConfig* optim,
    const ScheduleConfig* schedule, long long epoch, long long* t,
    double l2, double l1, bint fit_intercept, double gtol, double* loss, bint* gtol_reached,
) noexcept nogil:
    """The rest of a full-batch epoch once the pass's sums are in: J (the epoch's loss) and
    ∇J at θ, the gtol rule (on a finite J), then take_update."""
    cdef double lr
    loss[0] = objective_and_gradient(sums, theta, d, l2, l1, fit_intercept, grad)
    if (gtol >= 0.0 and finite_in_data_precision(loss[0], theta)
            and stationarity(grad, theta, d, l1, fit_intercept) <= gtol):
        gtol_reached[0] = True
        return STATUS_OK
    lr = scheduled_lr(schedule, optim.lr, epoch, t[0] + 1)
    return take_update(loss[0], optim, theta, grad, state0, state1, state2, backup, d,
                       fit_intercept, t, lr, l1)


cdef inline int take_update(
    double batch_loss, const OptimConfig* optim, floating* theta, const floating* grad,
    floating* state0, floating* state1, floating* state2, floating* backup, Py_ssize_t d,
    bint fit_intercept, long long* t, double lr, double l1,
) noexcept nogil:
    """The J an update is taken at (a batch's, or a full-batch epoch's) must be finite in the
    data's precision; then update t + 1 with its gradient, counted in t if it left θ finite."""
    cdef int status
    if not finite_in_data_precision(batch_loss, theta):
        return STATUS_LOSS_NOT_FINITE
    status = apply_update(optim, theta, grad, state0, state1, state2, backup, d, fit_intercept,
                          t[0] + 1, lr, l1)
    if status != STATUS_OK:
        return status
    t[0] += 1
    return STATUS_OK


cdef inline bint interrupted(Py_ssize_t* work, Py_ssize_t done,
                             bint check_signals) noexcept nogil:
    """Count done multiply-adds of work; every SIGNAL_CHECK_WORK of them, look for a signal
    (True: Ctrl-C, the epoch stops)."""
    work[0] += done
    if check_signals and work[0] >= SIGNAL_CHECK_WORK:
        work[0] = 0
        return signal_pending()
    return False


cdef inline int finite_epoch_loss(int status, const double* loss,
                                  const floating* theta) noexcept nogil:
    """An epoch's status, STATUS_LOSS_NOT_FINITE where its loss, the mean of its batches'
    J, is not finite though every batch's J was (their sum overflowed: J near the dtype's
    largest value): a loss that stopped being finite too (SPEC §5)."""
    if status == STATUS_OK and not finite_in_data_precision(loss[0], theta):
        return STATUS_LOSS_NOT_FINITE
    return status


cdef int mini_batch_epoch(
    const floating* X, const floating* y, const floating* sample_weight,
    floating* theta, floating* grad, floating* state0, floating* state1, floating* state2,
    floating* backup, Py_ssize_t n, Py_ssize_t d, const Py_ssize_t* rows,
    Py_ssize_t batch_size, const OptimConfig* optim, const ScheduleConfig* schedule,
    long long epoch, long long* t, double l2, double l1, bint fit_intercept,
    int n_threads, double* part_sums, double* sums, double* loss, bint check_signals,
) noexcept nogil:
    """One update per batch of consecutive entries of rows (the epoch's permutation, or NULL
    for rows in order); the epoch's loss is the mean of each batch's J before its update
    (finite_epoch_loss).  A batch whose weights sum to 0 has no defined gradient: it is
    skipped."""
    cdef Py_ssize_t start, stop, work = 0
    cdef double batch_loss, loss_sum = 0.0, lr
    cdef long long n_batches = 0
    cdef int status = STATUS_OK
    cdef Py_ssize_t next_start = 0
    if batch_size == 1 and optim.kind == OPT_SGD and optim.momentum == 0.0:
        status = single_row_sgd_epoch(X, y, sample_weight, theta, backup, grad, n, d, rows,
                                      optim, schedule, epoch, t, l2, l1, fit_intercept, loss,
                                      check_signals)
        return finite_epoch_loss(status, loss, theta)
    if batch_size == 1 and single_row_path:
        status = single_row_epoch(X, y, sample_weight, theta, grad, state0, state1, state2,
                                  backup, n, d, rows, optim, schedule, epoch, t, l2, l1,
                                  fit_intercept, loss, check_signals)
        return finite_epoch_loss(status, loss, theta)
    while next_start < n:
        start = next_start
        stop = start + batch_size
        if stop > n:
            stop = n
        next_start = stop
        batch_sums(X, y, sample_weight, theta, d, rows, n, start, stop, n_threads, part_sums, sums)
        if sums[d + SLOT_WEIGHT] > 0.0:
            batch_loss = objective_and_gradient(sums, theta, d, l2, l1, fit_intercept, grad)
            lr = scheduled_lr(schedule, optim.lr, epoch, t[0] + 1)
            status = take_update(batch_loss, optim, theta, grad, state0, state1, state2, backup,
                                 d, fit_intercept, t, lr, l1)
            if status != STATUS_OK:
                break
            loss_sum += batch_loss
            n_batches += 1
        # (a skipped batch was read too: a run of them must not put off the signal check)
        if interrupted(&work, (stop - start) * (d + 1), check_signals):
            status = STATUS_INTERRUPTED
            break
    loss[0] = loss_sum / n_batches if n_batches > 0 else 0.0
    return finite_epoch_loss(status, loss, theta)


cdef bint signal_pending() noexcept nogil:
    """Run Python's signal handlers (a long epoch calls this every few ms); True if one
    raised (Ctrl-C): the exception is set, and the epoch stops.  Kept out of line, so the
    loops that call it keep their registers."""
    cdef int raised
    with gil:
        raised = PyErr_CheckSignals()
    return raised != 0


include "gd_single_row.pxi"

cdef inline int stop_after_epoch(double loss, double tol, long long n_iter_no_change,
                                 bint gtol_reached, long long* no_improvement,
                                 double* best_loss) noexcept nogil:
    """The stopping rules after an epoch: STOP_GTOL, STOP_TOL (scikit-learn's rule: the loss
    has not gone below best − tol for n_iter_no_change epochs in a row; a tie has not gone
    below: with tol = 0 a flat loss stops) or STOP_EPOCHS (go on).  tol < 0 turns the tol
    rule off."""
    if tol >= 0.0:
        if loss >= best_loss[0] - tol:
            no_improvement[0] += 1
        else:
            no_improvement[0] = 0
        if loss < best_loss[0]:
            best_loss[0] = loss
    if gtol_reached:
        return STOP_GTOL
    if tol >= 0.0 and no_improvement[0] >= n_iter_no_change:
        return STOP_TOL
    return STOP_EPOCHS


cdef int raise_pending() except -1:
    # A signal handler has already set the exception (KeyboardInterrupt): let it propagate.
    return -1


def run_fit(
    const floating[:, ::1] X,
    const floating[::1] y,
    const floating[::1] sample_weight,
    floating[::1] theta,
    floating[:, ::1] optimizer_state,
    dict optim_config,
    dict schedule_config,
    Py_ssize_t epochs,
    Py_ssize_t batch_size,
    double l2,
    double l1,
    bint fit_intercept,
    double tol,
    long long n_iter_no_change,
    double gtol,
    bint shuffle,
    object rng,
    object on_epoch,
    int n_threads,
    long long[::1] counters,
    double[::1] best_loss,
    double[::1] history,
    const double[:, ::1] gram=None,
):
    """Run up to ``epochs`` epochs of a validated fit, in place.

    theta = (w, b) and optimizer_state (3 × (d+1)) are updated in place; counters holds
    (updates so far, epochs so far, epochs without improvement) and best_loss the best epoch
    loss, both updated as the fit goes so an interrupted fit leaves them consistent.
    history[k] receives the loss of the k-th epoch run here.  sample_weight is empty for unit
    weights; batch_size <= 0 means full batch; tol < 0 and gtol < 0 switch those rules off.
    ``on_epoch(epoch_loss)`` (or None) is called after each epoch and may return True to stop.
    ``gram`` (full batch only) is the (d+2)² packed means, first moments and centred moments
    of (X, y) (gdcore/_precompute.py; see sums_from_gram):
    given, the epochs read it instead of X.

    Returns (epochs run, stop code, status); status is one of the Status codes and, when not
    STATUS_OK, the parameters are the last finite ones.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1]
    cdef Py_ssize_t stride = accumulator_stride(d)
    cdef OptimConfig optim = optim_config
    cdef ScheduleConfig schedule = schedule_config
    cdef const floating* weights = &sample_weight[0] if sample_weight.shape[0] > 0 else NULL
    cdef int status = STATUS_OK, stop_code = STOP_EPOCHS
    cdef Py_ssize_t k, epochs_run = 0
    cdef double loss = 0.0
    cdef long long t = counters[0]
    cdef const Py_ssize_t* rows = NULL
    cdef const Py_ssize_t[::1] perm

    check_shapes(n, d, y.shape[0], sample_weight.shape[0], theta.shape[0])
    check_parameters(theta.shape[0], theta.shape[0], optimizer_state.shape[0],
                     optimizer_state.shape[1])
    check_threads(n_threads)
    if counters.shape[0] < 3 or best_loss.shape[0] < 1 or history.shape[0] < max(epochs, 0):
        raise ValueError("gdcore._core: counters needs 3 values, best_loss 1 and history one "
                         "an epoch")
    if gram is not None:
        check_gram_shape(gram.shape[0], gram.shape[1], d)
    if shuffle and not isinstance(rng, np.random.Generator):
        raise TypeError(f"gdcore._core: rng must be a numpy Generator, got {type(rng).__name__}")

    if batch_size <= 0 or batch_size >= n:
        return full_batch_fit(X, y, weights, theta, optimizer_state, optim, schedule, epochs, l2,
                              l1, fit_intercept, tol, n_iter_no_change, gtol, on_epoch,
                              n_threads, counters, best_loss, history, gram)

    # Scratch: gradient and pre-update copy of θ (in the data's dtype), block sums.
    scratch = np.empty(2 * (d + 1), dtype=np.asarray(theta).dtype)
    cdef floating[::1] scratch_view = scratch
    cdef floating* grad = &scratch_view[0]
    cdef floating* backup = &scratch_view[d + 1]
    part_buffer = np.zeros((max(n_threads, 1) + 1) * stride, dtype=np.float64)
    cdef double[::1] part_view = part_buffer
    cdef double* sums = &part_view[0]
    cdef double* part_sums = &part_view[stride]
    cdef floating* state0 = &optimizer_state[0, 0]
    cdef floating* state1 = &optimizer_state[1, 0]
    cdef floating* state2 = &optimizer_state[2, 0]

    # Shuffled epochs: each permutation is drawn while the epoch before it runs, when the
    # batches run on one thread and leave a core free (see gdcore._permutations).
    permutations = None
    if shuffle:
        permutations = EpochPermutations(rng, n, on_one_thread(batch_size, d, n_threads, True))
    try:
        for k in range(epochs):
            if permutations is not None:
                perm = permutations.take(k + 1 < epochs)
                rows = &perm[0]
            with nogil:
                status = mini_batch_epoch(
                    &X[0, 0], &y[0], weights, &theta[0], grad, state0, state1, state2, backup,
                    n, d, rows, batch_size, &optim, &schedule, counters[1], &t, l2, l1,
                    fit_intercept, n_threads, part_sums, sums, &loss, True)
            counters[0] = t
            if status == STATUS_INTERRUPTED:
                raise_pending()
            if status != STATUS_OK:
                break
            history[k] = loss
            epochs_run += 1
            counters[1] += 1
            stop_code = stop_after_epoch(loss, tol, n_iter_no_change, False,    # gtol: full batch
                                         &counters[2], &best_loss[0])
            if on_epoch is not None and on_epoch(loss) and stop_code == STOP_EPOCHS:
                stop_code = STOP_CALLBACK
            if PyErr_CheckSignals() != 0:
                raise_pending()
            if stop_code != STOP_EPOCHS:
                break
    finally:
        if permutations is not None:
            permutations.close()
    return epochs_run, stop_code, status


cdef full_batch_fit(
    const floating[:, ::1] X, const floating[::1] y, const floating* weights,
    floating[::1] theta, floating[:, ::1] optimizer_state, OptimConfig optim,
    ScheduleConfig schedule, Py_ssize_t epochs, double l2, double l1, bint fit_intercept,
    double tol, long long n_iter_no_change, double gtol, object on_epoch, int n_threads,
    long long[::1] counters, double[::1] best_loss, double[::1] history,
    const double[:, ::1] gram,
):
    """run_fit's full-batch case: full_batch_epochs runs the epochs without the GIL, a few
    milliseconds' worth at a time (one epoch at a time when there is a callback), and the
    GIL is taken back between runs to look for signals."""
    cdef gd_fit_options options
    cdef gd_fit_info info
    cdef Py_ssize_t epochs_run = 0
    cdef long long burst
    cdef int status = STATUS_OK, stop_code = STOP_EPOCHS
    cdef const double* gram_ptr = &gram[0, 0] if gram is not None else NULL
    options.optimizer = optim
    options.schedule = schedule
    options.epochs = epochs
    options.batch_size = 0
    options.l2 = l2
    options.l1 = l1
    options.fit_intercept = fit_intercept
    options.tol = tol
    options.n_iter_no_change = n_iter_no_change
    options.gtol = gtol
    options.n_threads = max(n_threads, 1)
    info.n_updates = counters[0]
    info.n_epochs = counters[1]
    info.n_no_improvement = counters[2]
    info.best_loss = best_loss[0]
    while epochs_run < epochs:
        burst = 1 if on_epoch is not None else epochs - epochs_run
        with nogil:
            status = full_batch_epochs(&X[0, 0], &y[0], weights, &theta[0],
                                       &optimizer_state[0, 0], X.shape[0], X.shape[1],
                                       &options, gram_ptr, burst, SIGNAL_CHECK_WORK,
                                       &history[epochs_run], &info)
        counters[0] = info.n_updates
        counters[1] = info.n_epochs
        counters[2] = info.n_no_improvement
        best_loss[0] = info.best_loss
        epochs_run += info.epochs_run
        stop_code = info.stop_reason
        if status == STATUS_NO_MEMORY:
            raise MemoryError(f"gdcore: no memory for the scratch buffers of a fit with "
                              f"d = {X.shape[1]}")
        if status != STATUS_OK:
            break
        if (on_epoch is not None and on_epoch(history[epochs_run - 1])
                and stop_code == STOP_EPOCHS):
            stop_code = STOP_CALLBACK
        if PyErr_CheckSignals() != 0:
            raise_pending()
        if stop_code != STOP_EPOCHS:
            break
    return epochs_run, stop_code, status


def objective_gradient(
    const floating[:, ::1] X,
    const floating[::1] y,
    const floating[::1] sample_weight,
    const floating[::1] theta,
    double l2,
    double l1,
    bint fit_intercept,
    int n_threads,
):
    """(J, g) at θ = (w, b) from one fused pass: the same code path as a full-batch epoch.
    g is in θ's dtype, of length d + 1 (its last entry ∂b, 0 when the intercept is not
    fitted)."""
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], stride = accumulator_stride(d)
    cdef const floating* weights = &sample_weight[0] if sample_weight.shape[0] > 0 else NULL
    cdef double loss
    check_shapes(n, d, y.shape[0], sample_weight.shape[0], theta.shape[0])
    check_threads(n_threads)
    grad_out = np.empty(d + 1, dtype=np.asarray(theta).dtype)
    cdef floating[::1] grad = grad_out
    part_buffer = np.zeros((n_threads + 1) * stride, dtype=np.float64)
    cdef double[::1] part_view = part_buffer
    with nogil:
        block_sums(&X[0, 0], &y[0], weights, &theta[0], d, NULL, n, 0, n, n_threads,
                   &part_view[stride], &part_view[0], True)
        loss = objective_and_gradient(&part_view[0], &theta[0], d, l2, l1, fit_intercept,
                                      &grad[0])
    return loss, grad_out


cdef enum:
    FINITE_MAX_PARTS = 1024     # GDCORE_MAX_THREADS, as a constant (more would only cut finer)


cdef struct FinitePass:
    # finite_values' arguments for its parts (the values' pointer as void: one struct for
    # both float types)
    const void* values
    Py_ssize_t n
    int n_parts
    int* bad        # one flag a part


cdef inline void finite_part(const FinitePass* task, int part, const floating* kind) noexcept nogil:
    cdef Py_ssize_t lo = part_start(task.n, task.n_parts, part)
    cdef Py_ssize_t hi = part_start(task.n, task.n_parts, part + 1)
    task.bad[part] = lo < hi and not is_finite_vector((<const floating*>task.values) + lo,
                                                      hi - lo)


cdef void finite_part_f64(void* task, int part) noexcept nogil:
    finite_part(<FinitePass*>task, part, <double*>NULL)


cdef void finite_part_f32(void* task, int part) noexcept nogil:
    finite_part(<FinitePass*>task, part, <float*>NULL)


cdef bint finite_values(const floating* values, Py_ssize_t n, int n_threads) noexcept nogil:
    """True if none of the n values is NaN or ±inf: one pass on up to n_threads threads (each
    checks a contiguous part with is_finite_vector: x − x is 0 exactly when x is finite, the
    tests or-ed, so the loop vectorises and the pass runs at the read bandwidth).  Started
    from C (gd_parallel_parts), as block_sums' passes are: the C API calls it too."""
    cdef int bad[FINITE_MAX_PARTS]
    cdef FinitePass task
    cdef int part
    if n <= PARALLEL_MIN_WORK or n_threads <= 1:
        return is_finite_vector(values, n)
    task.values, task.n, task.bad = values, n, bad
    task.n_parts = min(n_threads, FINITE_MAX_PARTS)
    gd_parallel_parts(task.n_parts, gd_team_threads(task.n_parts),
                      finite_part_f64 if floating is double else finite_part_f32, &task)
    for part in range(task.n_parts):
        if bad[part]:
            return False
    return True


def all_finite(const floating[::1] values, int n_threads=0):
    """True if no entry is NaN or ±inf: one threaded pass (n_threads threads, 0 for OpenMP's
    default; see finite_values), no temporary array."""
    cdef bint finite
    with nogil:
        finite = finite_values(&values[0] if values.shape[0] > 0 else NULL, values.shape[0],
                               n_threads if n_threads > 0 else default_threads())
    return finite


def block_sums_of(
    const floating[:, ::1] X,
    const floating[::1] y,
    const floating[::1] sample_weight,
    const floating[::1] theta,
    int n_threads,
):
    """The raw sums of one fused pass over a block of rows at θ = (w, b), as float64 (d + 3):
    (Σ sᵢrᵢxᵢ, Σ sᵢrᵢ, Σ sᵢrᵢ², Σ sᵢ).  Sums of several blocks add up to the sums of their
    union, which is how chunked and distributed fits keep exact full-batch semantics."""
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], stride = accumulator_stride(d)
    cdef const floating* weights = &sample_weight[0] if sample_weight.shape[0] > 0 else NULL
    check_shapes(n, d, y.shape[0], sample_weight.shape[0], theta.shape[0], allow_empty=True)
    check_threads(n_threads)
    out = np.zeros(d + N_SLOTS, dtype=np.float64)
    cdef double[::1] out_view = out
    part_buffer = np.zeros(n_threads * stride, dtype=np.float64)
    cdef double[::1] part_view = part_buffer
    if n == 0:
        return out
    with nogil:
        block_sums(&X[0, 0], &y[0], weights, &theta[0], d, NULL, n, 0, n, n_threads,
                   &part_view[0], &out_view[0])
    return out


def objective_from_sums(
    const double[::1] sums,
    const floating[::1] theta,
    double l2,
    double l1,
    bint fit_intercept,
):
    """(J, g) at θ from the sums of block_sums_of: g has θ's dtype and length d + 1."""
    cdef Py_ssize_t d = theta.shape[0] - 1
    cdef double loss
    check_parameters(theta.shape[0], theta.shape[0], -1, 0)
    if sums.shape[0] != d + N_SLOTS:
        raise ValueError(f"gdcore._core: sums has {sums.shape[0]} values, not d + {N_SLOTS} = "
                         f"{d + N_SLOTS}")
    grad_out = np.empty(d + 1, dtype=np.asarray(theta).dtype)
    cdef floating[::1] grad = grad_out
    loss = objective_and_gradient(&sums[0], &theta[0], d, l2, l1, fit_intercept, &grad[0])
    return loss, grad_out


def gradient_stationarity(const floating[::1] grad, const floating[::1] theta, double l1,
                          bint fit_intercept):
    """‖∇J‖∞ (with l1 > 0, of the minimum-norm subgradient), as the gtol rule uses it."""
    check_parameters(theta.shape[0], grad.shape[0], -1, 0)
    return stationarity(&grad[0], &theta[0], theta.shape[0] - 1, l1, fit_intercept)


def scheduled_learning_rate(dict schedule_config, double lr, long long epoch, long long t):
    """The learning rate of update t (1-based) in 0-based epoch ``epoch``."""
    cdef ScheduleConfig schedule = schedule_config
    return scheduled_lr(&schedule, lr, epoch, t)


def optimizer_update(
    floating[::1] theta,
    const floating[::1] grad,
    floating[:, ::1] optimizer_state,
    dict optim_config,
    long long t,
    double lr,
    double l1,
    bint fit_intercept,
):
    """One update (update count t, 1-based; lr already scheduled) of θ = (w, b) in place, with
    the l1 proximal step for the SGD family.  Returns True if it was applied, False if it
    would have made θ non-finite (θ is then left as it was)."""
    cdef OptimConfig optim = optim_config
    cdef Py_ssize_t d = theta.shape[0] - 1
    backup_array = np.empty(d + 1, dtype=np.asarray(theta).dtype)
    cdef floating[::1] backup = backup_array
    cdef int status
    check_parameters(theta.shape[0], grad.shape[0], optimizer_state.shape[0],
                     optimizer_state.shape[1])
    with nogil:
        status = apply_update(&optim, &theta[0], &grad[0], &optimizer_state[0, 0],
                              &optimizer_state[1, 0], &optimizer_state[2, 0], &backup[0],
                              d, fit_intercept, t, lr, l1)
    return status == STATUS_OK


include "gd_probe.pxi"


include "gd_full_batch.pxi"
include "gd_capi.pxi"
