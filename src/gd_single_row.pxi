# Included by _core.pyx: batch_size=1 epochs, classic SGD's fused sweep
# (plain_sgd_rows, sgd_rows) and the single-row loop of the other rules (single_row_epoch).

# Classic SGD's shuffled rows are prefetched this many rows ahead: a row's arithmetic takes
# ~22 ns at d = 100, so PREFETCH_AHEAD's 8 rows were too near to hide the memory latency
# (1M x 100 shuffled epoch, alternating builds: 12 rows 34-36 ms, 8 rows 38-39, 16 and 24
# no better than 8; a one-epoch fit 59-63 ms against 63-68).
cdef enum:
    SGD_PREFETCH_AHEAD = 12
# Classic SGD forms the next row's x·w in each update's sweep; _set_sgd_fusion(False) turns
# that off, so tests can hold the fused sweep to the bits of the plain one.
cdef bint sgd_fusion = True
# batch_size=1 with the other rules forms each row's gradient directly (single_row_epoch);
# _set_single_row_path(False) sends it through the general mini-batch loop, for tests.
cdef bint single_row_path = True


def _set_sgd_fusion(bint on):
    """For tests: whether classic SGD forms the next row's x·w in each update's sweep (the
    default) or sums it apart (the same bits, slower).  Not thread-safe; not for users."""
    global sgd_fusion
    sgd_fusion = on


def _set_single_row_path(bint on):
    """For tests: whether batch_size=1 fits other than classic SGD take single_row_epoch
    (the default) or the general mini-batch loop (the same values but for the last bits of
    short rows' dot products; slower).  Not thread-safe; not for users."""
    global single_row_path
    single_row_path = on


cdef inline Py_ssize_t single_row_at(const floating* X, const floating* y,
                                     const Py_ssize_t* rows, Py_ssize_t n, Py_ssize_t d,
                                     Py_ssize_t k) noexcept nogil:
    """The row of update k in a batch_size=1 epoch (rows[k], or k in order); through a
    permutation, the row SGD_PREFETCH_AHEAD updates on is prefetched as well."""
    cdef Py_ssize_t ahead
    if rows == NULL:
        return k
    if k + SGD_PREFETCH_AHEAD < n:
        ahead = rows[k + SGD_PREFETCH_AHEAD]
        prefetch_row(X + ahead * d, d)
        GD_PREFETCH(y + ahead)
    return rows[k]


cdef inline bint weigh_row(floating residual, const floating* sample_weight, Py_ssize_t i,
                           floating* scaled_residual, double* inv_weight,
                           double* row_loss) noexcept nogil:
    """A batch of the one row i with residual r and weight s: s·r, 1/s and J's data term
    s·r²/(2s), as objective_and_gradient forms them from accumulate_rows' sums (the
    divisions are left out when they are by 1 or 2: same values, less latency).  False for
    a row of weight 0: it has no gradient and is skipped, as an empty batch is."""
    cdef double weight
    if sample_weight != NULL:
        weight = sample_weight[i]
        if weight <= 0.0:
            return False
        inv_weight[0] = 1.0 / weight
        if inv_weight[0] <= DBL_MAX:
            scaled_residual[0] = <floating>(weight * residual)
            row_loss[0] = (<double>scaled_residual[0] * residual) / (2.0 * weight)
            return True
        # A subnormal weight (the largest is near 1): s cancels from the row's J and
        # gradient, and 1/s overflows, so it is left out, as for weight 1.
    inv_weight[0] = 1.0
    scaled_residual[0] = residual
    row_loss[0] = (<double>residual * residual) * 0.5
    return True


cdef inline floating sgd_residual(bint dot_ready, floating next_dot, const floating* x,
                                  floating target, const floating* theta,
                                  Py_ssize_t d) noexcept nogil:
    """r = x·w + b − y for classic SGD's row at x: from the x·w the last fused update formed
    (row_residual's value, summed the same way), or summed now."""
    if dot_ready:
        return next_dot + theta[d] - target
    return row_residual(x, target, theta, d)


cdef inline floating fused_sgd_update(const floating* x, floating scaled_residual,
                                      const floating* theta, floating* updated, Py_ssize_t d,
                                      Py_ssize_t m, double lr,
                                      const floating* x_next) noexcept nogil:
    """sgd_row_update without weights, l2 or l1 (θ' = θ − lr·(r·x, r), into updated), and
    x_next·w' formed in the same sweep (sgd_row_update_then_dot), which it returns."""
    cdef floating next_dot = sgd_row_update_then_dot(x, scaled_residual, theta, updated, d,
                                                     lr, x_next)
    if m > d:
        updated[d] = <floating>(theta[d] - lr * scaled_residual)
    return next_dot


cdef inline void count_update(floating** cur, floating** prev, double row_loss,
                              double* total, double* before, long long* batches,
                              long long* updates) noexcept nogil:
    """After an update written to *prev: it becomes θ, the old θ the spare buffer, and the
    row's loss and the update are counted (before keeps the loss sum without it, for an
    undo)."""
    cdef floating* swap = cur[0]
    cur[0] = prev[0]
    prev[0] = swap
    updates[0] += 1
    before[0] = total[0]
    total[0] += row_loss
    batches[0] += 1


cdef inline int save_sgd_rows(floating* cur, floating* prev, double total, double before,
                              long long batches, long long updates, floating** current,
                              floating** previous, double* loss_sum, double* loss_sum_before,
                              long long* n_batches, long long* t, int status) noexcept nogil:
    """A chunk of classic SGD's rows hands its state back to single_row_sgd_epoch."""
    current[0] = cur
    previous[0] = prev
    loss_sum[0] = total
    loss_sum_before[0] = before
    n_batches[0] = batches
    t[0] = updates
    return status


cdef int plain_sgd_rows(
    const floating* X, const floating* y, Py_ssize_t n, Py_ssize_t d, Py_ssize_t m,
    const Py_ssize_t* rows, Py_ssize_t k_start, Py_ssize_t k_stop, double lr,
    floating** current, floating** previous, double* loss_sum, double* loss_sum_before,
    long long* n_batches, long long* t, const bint gathered,
) noexcept nogil:
    """sgd_rows for the common case, on a loop of its own: no weights, l2 or l1, one lr for
    the epoch, each update fused with the next row's x·w.  The same arithmetic, so the same
    bits, as sgd_rows' fused path; called with gathered (rows given) as a constant.

    Why apart: inside sgd_rows, beside the weighted, penalised and per-update-lr branches,
    the same steps took 130 to 155 ms for a shuffled 1,000,000 × 100 epoch where a C copy of
    them took 102 to 108 on the same data and permutation; alone, 111 (2026-12-05, Zen 4,
    alternating runs).  GCC schedules the small loop better, as sgd_rows' note on calls says."""
    cdef Py_ssize_t k, i, i_next
    cdef const Py_ssize_t* order = rows if gathered else NULL
    cdef floating* cur = current[0]
    cdef floating* prev = previous[0]
    cdef floating residual, next_dot = 0
    cdef double row_loss
    cdef double total = loss_sum[0], before = loss_sum_before[0]
    cdef long long batches = n_batches[0], updates = t[0]
    cdef int status = STATUS_OK
    cdef bint dot_ready = False
    # The residual and the fused update are written out, not through sgd_residual and
    # fused_sgd_update as in sgd_rows: through them this loop took 105 to 137 ms an epoch
    # against 100 to 113 (the same epoch, alternating builds).
    for k in range(k_start, k_stop):
        i = single_row_at(X, y, order, n, d, k)
        if dot_ready:
            residual = next_dot + cur[d] - y[i]     # row_residual's value
        else:
            residual = row_residual(X + i * d, y[i], cur, d)
        row_loss = (<double>residual * residual) * 0.5     # weigh_row's, for weight 1
        if not finite_in_data_precision(row_loss, cur):
            status = STATUS_LOSS_NOT_FINITE
            break
        if k + 1 < k_stop:
            i_next = order[k + 1] if gathered else k + 1
            next_dot = sgd_row_update_then_dot(X + i * d, residual, cur, prev, d, lr,
                                               X + i_next * d)
            if m > d:
                prev[d] = <floating>(cur[d] - lr * residual)
            dot_ready = True
        else:
            sgd_row_update(X + i * d, residual, 1.0, cur, prev, d, m, 0.0, 0.0, lr)
        count_update(&cur, &prev, row_loss, &total, &before, &batches, &updates)
    return save_sgd_rows(cur, prev, total, before, batches, updates, current, previous,
                         loss_sum, loss_sum_before, n_batches, t, status)


cdef inline int sgd_rows(
    const floating* X, const floating* y, const floating* sample_weight,
    Py_ssize_t n, Py_ssize_t d, Py_ssize_t m, const Py_ssize_t* rows,
    Py_ssize_t k_start, Py_ssize_t k_stop, const OptimConfig* optim,
    const ScheduleConfig* schedule, long long epoch, long long* t, double l2, double l1,
    double* lr, const bint lr_per_update, floating** current, floating** previous,
    double* loss_sum, double* loss_sum_before, long long* n_batches,
) noexcept nogil:
    """Rows k_start … k_stop − 1 of single_row_sgd_epoch, its state passed in and out.

    The loop makes no call unless lr_per_update (InverseScaling's lr / t^power_t): a call
    in it would make the compiler keep the loop's values on the stack (measured: ~10% of a
    row), so the callers instantiate it with the flag as a constant."""
    cdef Py_ssize_t k, i
    cdef floating* cur = current[0]
    cdef floating* prev = previous[0]
    cdef floating residual, scaled_residual
    cdef double batch_loss, inv_weight, rate = lr[0]
    cdef double total = loss_sum[0], before = loss_sum_before[0]
    cdef long long batches = n_batches[0], updates = t[0]
    cdef int status = STATUS_OK
    # Without weights, l2 or l1, each update also forms the next row's x·w (see
    # sgd_row_update_then_dot); dot_ready says next_dot holds it.  (With them, a sweep doing
    # the same, measured, was slower than two, and GCC fused its products differently.)
    # With one lr for the epoch as well, plain_sgd_rows runs the rows instead.
    cdef bint fused = sgd_fusion and sample_weight == NULL and l2 == 0.0 and l1 == 0.0
    cdef bint dot_ready = False
    cdef floating next_dot = 0
    cdef Py_ssize_t i_next
    if fused and not lr_per_update:
        if rows != NULL:
            return plain_sgd_rows(X, y, n, d, m, rows, k_start, k_stop, rate, current,
                                  previous, loss_sum, loss_sum_before, n_batches, t, True)
        return plain_sgd_rows(X, y, n, d, m, rows, k_start, k_stop, rate, current, previous,
                              loss_sum, loss_sum_before, n_batches, t, False)
    for k in range(k_start, k_stop):
        i = single_row_at(X, y, rows, n, d, k)
        residual = sgd_residual(dot_ready, next_dot, X + i * d, y[i], cur, d)
        if not weigh_row(residual, sample_weight, i, &scaled_residual, &inv_weight,
                         &batch_loss):
            continue
        batch_loss = with_penalties(batch_loss, cur, d, l2, l1)
        if not finite_in_data_precision(batch_loss, cur):
            status = STATUS_LOSS_NOT_FINITE
            break
        if lr_per_update:
            rate = scheduled_lr(schedule, optim.lr, epoch, updates + 1)
        if fused and k + 1 < k_stop:
            i_next = rows[k + 1] if rows != NULL else k + 1
            next_dot = fused_sgd_update(X + i * d, scaled_residual, cur, prev, d, m, rate,
                                        X + i_next * d)
            dot_ready = True
        else:
            sgd_row_update(X + i * d, scaled_residual, inv_weight, cur, prev, d, m, l2, l1,
                           rate)
            dot_ready = False
        count_update(&cur, &prev, batch_loss, &total, &before, &batches, &updates)
    lr[0] = rate
    return save_sgd_rows(cur, prev, total, before, batches, updates, current, previous,
                         loss_sum, loss_sum_before, n_batches, t, status)


cdef int fused_update_failure(
    const floating* X, const floating* y, const floating* sample_weight, const floating* theta,
    floating* grad, Py_ssize_t n, Py_ssize_t d, const Py_ssize_t* rows, long long update,
    double l2, bint fit_intercept,
) noexcept nogil:
    """update_failure for classic SGD's fused rows, which form no gradient: the row of the
    epoch's update number ``update`` (rows of weight 0 make none) and its gradient at θ, the
    parameters it started from, formed into ``grad`` as single_row_epoch forms it."""
    cdef Py_ssize_t k, i = -1
    cdef long long counted = 0
    cdef floating residual, scaled_residual = 0
    cdef double inv_weight = 1.0, row_loss   # weigh_row sets both: the row's weight is > 0
    for k in range(n):
        i = rows[k] if rows != NULL else k
        if sample_weight == NULL or sample_weight[i] > 0.0:
            counted += 1
            if counted == update:
                break
    if counted != update:
        return STATUS_PARAMS_NOT_FINITE
    residual = row_residual(X + i * d, y[i], theta, d)
    weigh_row(residual, sample_weight, i, &scaled_residual, &inv_weight, &row_loss)
    row_gradient(X + i * d, scaled_residual, inv_weight, theta, d, l2, fit_intercept, grad)
    return update_failure(grad, d, fit_intercept)


cdef int single_row_sgd_epoch(
    const floating* X, const floating* y, const floating* sample_weight,
    floating* theta, floating* spare, floating* grad, Py_ssize_t n, Py_ssize_t d,
    const Py_ssize_t* rows, const OptimConfig* optim, const ScheduleConfig* schedule,
    long long epoch, long long* t, double l2, double l1, bint fit_intercept, double* loss,
    bint check_signals,
) noexcept nogil:
    """Classic SGD (batch_size=1, no momentum): mini_batch_epoch's contract (and its bits for
    rows of d ≥ SHORT_ROW values), with each row's residual, loss and update fused, so a row
    costs one read of it and of θ and one write of θ.

    Updates alternate between two buffers (θ and spare), so the θ before the last update is
    always at hand without a copy.  Whether an update left θ finite is seen in the next
    row's residual: x·w + b is non-finite whenever any entry of θ is (x is finite, and
    0·inf is NaN).  Only then, or at the end of the epoch, is θ itself checked, and a
    non-finite update is undone as the general path undoes it (``grad`` is written only
    then, to tell why: fused_update_failure).  Rows go in chunks of about SIGNAL_CHECK_WORK
    multiply-adds, with a signal check between chunks."""
    cdef Py_ssize_t k = 0, chunk_stop, m = d + 1 if fit_intercept else d
    cdef Py_ssize_t chunk_rows = SIGNAL_CHECK_WORK // (d + 1) + 1
    cdef double loss_sum = 0.0, loss_sum_before = 0.0
    cdef double lr = scheduled_lr(schedule, optim.lr, epoch, t[0] + 1)
    cdef long long n_batches = 0
    cdef int status = STATUS_OK
    cdef floating* current = theta
    cdef floating* previous = spare
    cdef bint lr_per_update = schedule.kind == SCHED_INVSCALING   # others: one lr an epoch
    memcpy(previous, current, (d + 1) * sizeof(floating))   # b stays put when not fitted
    while k < n:
        chunk_stop = k + chunk_rows if n - k > chunk_rows else n
        if lr_per_update:
            status = sgd_rows(X, y, sample_weight, n, d, m, rows, k, chunk_stop, optim,
                              schedule, epoch, t, l2, l1, &lr, True, &current, &previous,
                              &loss_sum, &loss_sum_before, &n_batches)
        else:
            status = sgd_rows(X, y, sample_weight, n, d, m, rows, k, chunk_stop, optim,
                              schedule, epoch, t, l2, l1, &lr, False, &current, &previous,
                              &loss_sum, &loss_sum_before, &n_batches)
        k = chunk_stop
        if status != STATUS_OK:
            break
        if check_signals and k < n and signal_pending():
            status = STATUS_INTERRUPTED
            break
    if n_batches > 0 and not is_finite_vector(current, m):
        # The last update overflowed: back to the θ before it, as if it had been refused.
        # (A Ctrl-C seen since keeps its status: its exception is already set.)
        current = previous
        t[0] -= 1
        loss_sum = loss_sum_before
        if status != STATUS_INTERRUPTED:
            status = fused_update_failure(X, y, sample_weight, current, grad, n, d, rows,
                                          n_batches, l2, fit_intercept)
        n_batches -= 1
    if current != theta:
        memcpy(theta, current, (d + 1) * sizeof(floating))
    loss[0] = loss_sum / n_batches if n_batches > 0 else 0.0
    return status


cdef int single_row_epoch(
    const floating* X, const floating* y, const floating* sample_weight,
    floating* theta, floating* grad, floating* state0, floating* state1, floating* state2,
    floating* spare, Py_ssize_t n, Py_ssize_t d, const Py_ssize_t* rows,
    const OptimConfig* optim, const ScheduleConfig* schedule, long long epoch, long long* t,
    double l2, double l1, bint fit_intercept, double* loss, bint check_signals,
) noexcept nogil:
    """mini_batch_epoch with batches of one row, for the rules classic SGD's fused path does
    not take (momentum, Adagrad, RMSprop, Adam, normalized): each row's residual, J and
    gradient come straight from the row (row_gradient), not through four-row groups and
    their sums; then the rule's update, checked as every update is.  As in
    single_row_sgd_epoch, updates alternate between θ and spare, so the θ before an update
    that overflowed is at hand without a copy a row (the optimizer state moves in place, as
    in apply_update)."""
    cdef Py_ssize_t k, i, work = 0
    cdef floating residual, scaled_residual
    cdef double row_loss, inv_weight, loss_sum = 0.0
    cdef double rate = scheduled_lr(schedule, optim.lr, epoch, t[0] + 1)
    cdef bint lr_per_update = schedule.kind == SCHED_INVSCALING   # others: one lr an epoch
    cdef long long n_batches = 0
    cdef int status = STATUS_OK
    cdef floating* current = theta
    cdef floating* swap
    memcpy(spare, theta, (d + 1) * sizeof(floating))     # b stays put when not fitted
    for k in range(n):
        i = single_row_at(X, y, rows, n, d, k)
        residual = row_residual(X + i * d, y[i], current, d)
        if not weigh_row(residual, sample_weight, i, &scaled_residual, &inv_weight, &row_loss):
            # a row of weight 0 was read too: a run of them must not put off the signal check
            if interrupted(&work, d + 1, check_signals):
                status = STATUS_INTERRUPTED
                break
            continue
        row_loss = with_penalties(row_loss, current, d, l2, l1)
        if not finite_in_data_precision(row_loss, current):
            status = STATUS_LOSS_NOT_FINITE
            break
        row_gradient(X + i * d, scaled_residual, inv_weight, current, d, l2, fit_intercept,
                     grad)
        if lr_per_update:
            rate = scheduled_lr(schedule, optim.lr, epoch, t[0] + 1)
        if update_into(optim, current, grad, state0, state1, state2, spare, d, fit_intercept,
                       t[0] + 1, rate, l1) != STATUS_OK:
            status = update_failure(grad, d, fit_intercept)
            break
        swap = current
        current = spare
        spare = swap
        t[0] += 1
        loss_sum += row_loss
        n_batches += 1
        if interrupted(&work, d + 1, check_signals):
            status = STATUS_INTERRUPTED
            break
    if current != theta:
        memcpy(theta, current, (d + 1) * sizeof(floating))
    loss[0] = loss_sum / n_batches if n_batches > 0 else 0.0
    return status
