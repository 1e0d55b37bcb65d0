# The full-batch epoch loop (included by _core.pyx): many epochs per call, without the GIL.
#
# A full-batch epoch is one pass over X (block_sums) and one update.  On a small X an epoch
# is a few microseconds, and what surrounds it — taking the GIL back, starting a parallel
# region, the Python loop — would cost as much as the pass.  So the epochs run here in one
# call, and with several threads one team of threads runs them all: each thread sums its
# own contiguous part of the rows and publishes the sums in a slot of its own (7 values to a
# cache line, each line ending in a count stored with release order); each then waits for
# the other slots of that epoch, asking for all their lines at once, adds all slots in the
# same order and makes the same update on its own copy of θ and of the optimizer state (the
# same operations on the same values: the same bits).  So no thread waits for another to
# publish θ, and an epoch costs one round trip of cache lines between cores instead of a
# barrier (several round trips) plus the exchange of the sums.
# The slots alternate between two sets from one epoch to the next: a thread cannot start
# epoch k + 2 (and overwrite its epoch-k slot) before every other thread has published
# epoch k + 1, which each does only after it has read the epoch-k slots.  The sums are those
# of block_sums with the same thread count, added in the same order.

from cython.parallel cimport parallel, threadid

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int gd_team_size(void) { return omp_get_num_threads(); }
    #else
    static int gd_team_size(void) { return 1; }
    #endif
    #include <sched.h>
    #if defined(__x86_64__) || defined(__i386__)
    #include <immintrin.h>
    #define GD_SPIN_PAUSE() _mm_pause()
    #else
    #define GD_SPIN_PAUSE() ((void)0)
    #endif
    /* A slot is lines of 7 values and a count: a thread writes a line's values, then its
     * count with release order; whoever sees the count sees the values. */
    #define GD_LINE_VALUES 7
    static void gd_publish_slot(double *slot, const double *values, Py_ssize_t n_values,
                                long long epoch)
    {
        Py_ssize_t line, v, n_lines = (n_values + GD_LINE_VALUES - 1) / GD_LINE_VALUES;
        for (line = 0; line < n_lines; line++) {
            double *out = slot + 8 * line;
            for (v = 0; v < GD_LINE_VALUES && line * GD_LINE_VALUES + v < n_values; v++)
                out[v] = values[line * GD_LINE_VALUES + v];
            __atomic_store_n((long long *)(out + GD_LINE_VALUES), epoch, __ATOMIC_RELEASE);
        }
    }
    /* Wait until every line of a slot has reached epoch, asking for all its lines at once
     * (one round trip between cores, not one a line): spin a while (the other thread is
     * normally a fraction of a microsecond away), then yield the core (it may be waiting for
     * it).  Then sums[v] += the slot's values, in order. */
    static void gd_add_slot(const double *slot, Py_ssize_t n_values, long long epoch,
                            double *sums)
    {
        Py_ssize_t line, v, n_lines = (n_values + GD_LINE_VALUES - 1) / GD_LINE_VALUES;
        unsigned spins = 0;
        for (;;) {
            int ready = 1;
            for (line = 0; line < n_lines; line++)
                ready &= __atomic_load_n((const long long *)(slot + 8 * line + GD_LINE_VALUES),
                                         __ATOMIC_ACQUIRE) >= epoch;
            if (ready)
                break;
            if (++spins < 20000)
                GD_SPIN_PAUSE();
            else
                sched_yield();
        }
        for (v = 0; v < n_values; v++)
            sums[v] += slot[8 * (v / GD_LINE_VALUES) + v % GD_LINE_VALUES];
    }
    """
    int gd_team_size() noexcept nogil
    void gd_publish_slot(double* slot, const double* values, Py_ssize_t n_values,
                         long long epoch) noexcept nogil
    void gd_add_slot(const double* slot, Py_ssize_t n_values, long long epoch,
                     double* sums) noexcept nogil

cdef inline Py_ssize_t team_slot_stride(Py_ssize_t d) noexcept nogil:
    """Doubles a team slot takes: its d + N_SLOTS sums, 7 to a 64-byte line, each line ending
    in its count (see gd_publish_slot)."""
    return (d + N_SLOTS + 6) // 7 * CACHE_LINE_DOUBLES


cdef inline void record_epoch(double loss, bint gtol_reached, const gd_fit_options* options,
                              double* history, gd_fit_info* info) noexcept nogil:
    """An epoch finished with this loss: into history (unless NULL), counters, stopping rules."""
    if history != NULL:
        history[info.epochs_run] = loss
    info.epochs_run += 1
    info.n_epochs += 1
    info.stop_reason = stop_after_epoch(loss, options.tol, options.n_iter_no_change,
                                        gtol_reached, &info.n_no_improvement, &info.best_loss)


cdef int full_batch_epochs(
    const floating* X, const floating* y, const floating* sample_weight,
    floating* theta, floating* state, Py_ssize_t n, Py_ssize_t d,
    const gd_fit_options* options, const double* gram, long long max_epochs,
    Py_ssize_t max_work, double* history, gd_fit_info* info,
) noexcept nogil:
    """Up to max_epochs (>= 1) full-batch epochs, continuing from info's counters.

    history[k] gets the loss of the k-th epoch run here, info.epochs_run how many ran and
    info.stop_reason why they stopped: a stopping rule, or STOP_EPOCHS when max_epochs ran
    or when max_work multiply-adds are done (the caller then looks for signals and calls
    again).  θ and state (3 × (d+1)) are updated in place.  Returns a Status.

    In Gram mode, or with one thread, or below TEAM_MIN_WORK an epoch, one thread runs the
    loop; otherwise one team of options.n_threads threads runs it (team_epochs)."""
    cdef Py_ssize_t m = d + 1, stride = accumulator_stride(d)
    cdef int status
    cdef floating* scratch
    cdef double* part_buffer
    info.epochs_run = 0
    info.stop_reason = STOP_EPOCHS
    if gram == NULL and not on_one_thread(n, d, options.n_threads, False, True):
        status = team_epochs(X, y, sample_weight, theta, state, n, d, options, max_epochs,
                             max_work, history, info)
        if status != STATUS_NO_TEAM:
            return status
    scratch = <floating*>malloc(2 * m * sizeof(floating))
    part_buffer = <double*>calloc((<Py_ssize_t>options.n_threads + 1) * stride,
                                  sizeof(double))
    if scratch == NULL or part_buffer == NULL:
        status = STATUS_NO_MEMORY
    else:
        status = serial_epochs(X, y, sample_weight, theta, state, n, d, options, gram,
                               max_epochs, max_work, history, info, scratch, scratch + m,
                               part_buffer + stride, part_buffer)
    free(scratch)
    free(part_buffer)
    return status


cdef int serial_epochs(
    const floating* X, const floating* y, const floating* sample_weight,
    floating* theta, floating* state, Py_ssize_t n, Py_ssize_t d,
    const gd_fit_options* options, const double* gram, long long max_epochs,
    Py_ssize_t max_work, double* history, gd_fit_info* info,
    floating* grad, floating* backup, double* part_sums, double* sums,
) noexcept nogil:
    """full_batch_epochs on the calling thread (block_sums may still thread each pass)."""
    cdef Py_ssize_t m = d + 1, work = 0
    cdef long long k
    cdef int status = STATUS_OK
    cdef bint gtol_reached, streamed
    cdef double loss
    for k in range(max_epochs):
        gtol_reached = False
        status = full_batch_epoch(
            X, y, sample_weight, theta, grad, state, state + m, state + 2 * m, backup, n, d,
            &options.optimizer, &options.schedule, info.n_epochs, &info.n_updates,
            options.l2, options.l1, options.fit_intercept, options.gtol, options.n_threads,
            part_sums, sums, gram, &loss, &gtol_reached, &streamed)
        if status != STATUS_OK:
            break
        record_epoch(loss, gtol_reached, options, history, info)
        work += n * (d + 1) if streamed else (d + 2) * (d + 2)
        if info.stop_reason != STOP_EPOCHS or work >= max_work:
            break
    return status


cdef int team_epochs(
    const floating* X, const floating* y, const floating* sample_weight,
    floating* theta, floating* state, Py_ssize_t n, Py_ssize_t d,
    const gd_fit_options* options, long long max_epochs, Py_ssize_t max_work,
    double* history, gd_fit_info* info,
) noexcept nogil:
    """full_batch_epochs on a team of options.n_threads threads (see the top of this file).
    Returns STATUS_NO_TEAM, having changed nothing, when the buffers cannot be had, OpenMP
    gives fewer threads or has none (a forked process); the caller then runs the epochs on
    one thread."""
    cdef int n_threads = options.n_threads, tid, status = STATUS_NO_TEAM
    cdef Py_ssize_t stride = team_slot_stride(d)
    # Each thread's θ, state (3 vectors), gradient and backup, on cache lines of their own.
    cdef Py_ssize_t own_size = ((6 * (d + 1) * sizeof(floating) + CACHE_LINE_BYTES - 1)
                                // CACHE_LINE_BYTES * CACHE_LINE_BYTES)
    cdef char* own = <char*>malloc(n_threads * own_size)
    cdef double* parts = <double*>calloc(2 * <Py_ssize_t>n_threads * stride, sizeof(double))  # counts 0
    # Each thread's own sums of its rows, and of all rows: 2 × stride doubles.
    cdef double* sums = <double*>malloc(2 * <Py_ssize_t>n_threads * stride * sizeof(double))
    # gd_team_threads: fewer in a process forked after teams ran (OpenMP has no workers there)
    if (own != NULL and parts != NULL and sums != NULL
            and gd_team_threads(n_threads) == n_threads):
        with parallel(num_threads=n_threads):
            tid = threadid()
            if gd_team_size() == n_threads:     # the same answer on every thread
                team_member(tid, n_threads, X, y, sample_weight, theta, state, n, d, options,
                            max_epochs, max_work, history, info,
                            <floating*>(own + tid * own_size), parts, sums + 2 * tid * stride,
                            &status)
    free(own)
    free(parts)
    free(sums)
    return status


cdef void team_member(
    int tid, int n_threads, const floating* X, const floating* y,
    const floating* sample_weight, floating* shared_theta, floating* shared_state,
    Py_ssize_t n, Py_ssize_t d, const gd_fit_options* options, long long max_epochs,
    Py_ssize_t max_work, double* history, gd_fit_info* info, floating* own, double* parts,
    double* sums, int* status_out,
) noexcept nogil:
    """Thread tid's share of team_epochs: every thread takes the same decisions (they are
    made from the same sums), so all run the same epochs and stop at the same one; thread 0
    alone writes history, info, θ, the state and the status."""
    cdef Py_ssize_t m = d + 1, width = d + N_SLOTS, stride = team_slot_stride(d)
    cdef Py_ssize_t lo = part_start(n, n_threads, tid), hi = part_start(n, n_threads, tid + 1)
    cdef Py_ssize_t work = 0, j
    cdef floating* theta = own
    cdef floating* state = own + m
    cdef floating* grad = own + 4 * m
    cdef floating* backup = own + 5 * m
    cdef double* epoch_parts
    cdef double* mine_sums = sums + stride    # this thread's rows' sums, before publishing
    cdef gd_fit_info mine = info[0]
    cdef long long k
    cdef int status = STATUS_OK, part
    cdef bint gtol_reached
    cdef double loss
    memcpy(theta, shared_theta, m * sizeof(floating))
    memcpy(state, shared_state, 3 * m * sizeof(floating))
    for k in range(max_epochs):
        epoch_parts = parts + (k & 1) * n_threads * stride
        memset(mine_sums, 0, width * sizeof(double))
        if lo < hi:
            accumulate_rows(X, y, sample_weight, theta, d, NULL, n, lo, hi, mine_sums)
        gd_publish_slot(epoch_parts + tid * stride, mine_sums, width, k + 1)
        memset(sums, 0, width * sizeof(double))
        for part in range(n_threads):
            if part == tid:
                for j in range(width):
                    sums[j] += mine_sums[j]
            else:
                gd_add_slot(epoch_parts + part * stride, width, k + 1, sums)
        gtol_reached = False
        status = update_from_sums(sums, theta, grad, state, state + m, state + 2 * m, backup, d,
                                  &options.optimizer, &options.schedule, mine.n_epochs,
                                  &mine.n_updates, options.l2, options.l1,
                                  options.fit_intercept, options.gtol, &loss, &gtol_reached)
        if status != STATUS_OK:
            break
        record_epoch(loss, gtol_reached, options, history if tid == 0 else NULL, &mine)
        work += n * (d + 1)
        if mine.stop_reason != STOP_EPOCHS or work >= max_work:
            break
    # Every thread read the shared θ and state before it published its first slot, which
    # thread 0 has waited for: thread 0 may now write them.
    if tid == 0:
        memcpy(shared_theta, theta, m * sizeof(floating))
        memcpy(shared_state, state, 3 * m * sizeof(floating))
        info[0] = mine
        status_out[0] = status
