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

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int gd_team_size(void) { return omp_get_num_threads(); }
    static int gd_processors(void) { return omp_get_num_procs(); }
    #else
    static int gd_team_size(void) { return 1; }
    static int gd_processors(void) { return 1; }
    #endif
    #include <sched.h>
    #if defined(__x86_64__) || defined(__i386__)
    #include <immintrin.h>
    #define GD_SPIN_PAUSE() _mm_pause()
    #else
    #define GD_SPIN_PAUSE() ((void)0)
    #endif
    #include <time.h>
    #include <errno.h>
    #ifdef __linux__
    #include <linux/futex.h>
    #include <sys/syscall.h>
    #include <unistd.h>
    #endif
    static long long gd_now_ns(void)
    {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
    }
    /* A slot is lines of 7 values and a count: a thread writes a line's values, then its
     * count with release order; whoever sees the count sees the values.  The last line's
     * count is stored last, so once it has reached an epoch the whole slot has: sleepers
     * wait on it. */
    #define GD_LINE_VALUES 7
    /* How a thread waits for another's slot: it spins (the other is normally a fraction of a
     * microsecond away) and from GD_SLEEP_AFTER_NS on sleeps until the slot is published.
     * The sleep is for long stalls (the other's rows coming from disk, the cores busy with
     * other work): a spinning thread keeps its core busy, and gets no priority from the
     * scheduler when the other publishes.  It starts late because waking a thread costs: up
     * to ~2 ms on a VM whose idle vCPU the host must wake, and two threads that kept missing
     * each other would pay that every epoch.  A team with more threads than the process
     * has cores yields between checks from GD_SPIN_NS on instead of spinning: the thread it
     * waits for may be waiting for its core.  (Yielding in every team let other processes'
     * work take the core a time slice at a time: on two busy cores, 200 epochs of 20,000 x 10
     * took 100 to 260 ms on two threads against 9 ms on one.) */
    static long long GD_SPIN_NS = 50000, GD_SLEEP_AFTER_NS = 10000000;
    /* A team whose threads keep waiting on each other far longer than an epoch's work takes
     * (the cores busy with other work: the thread waited for is off its core a time slice at
     * a time) gives up: a thread that waited more than GD_LONG_WAIT_NS in 3 of its last 16
     * epochs, on a part of under GD_GIVE_UP_MAX_WORK multiply-adds, says so with its next
     * sums; every thread sees the same votes, so all stop after the same epoch, and the
     * calling thread runs the rest on one thread, cut into the same parts (the same bits),
     * not trying a team again for GD_TEAM_RETRY_NS.  On two cores both busy, 200 epochs of
     * 20,000 x 10: two threads in a team, medians 9 to 32 ms and runs up to 900 ms. */
    static long long GD_LONG_WAIT_NS = 1000000, GD_TEAM_RETRY_NS = 100000000;
    #define GD_GIVE_UP_MAX_WORK 2000000
    static long long gd_team_give_ups = 0;
    static void gd_count_give_up(void) { __atomic_fetch_add(&gd_team_give_ups, 1, __ATOMIC_RELAXED); }
    static __thread long long gd_team_retry_at = 0;
    /* Mini-batches (batch_sums): a batch's parallel region waits the same way, and a batch
     * is microseconds of work, so on busy cores an epoch of them took seconds instead of
     * milliseconds.  A thread whose batches' regions took over GD_LONG_WAIT_NS in 3 of its
     * last 16 sums its batches on one thread, cut into the same parts (the same bits), until
     * GD_TEAM_RETRY_NS later. */
    static __thread unsigned int gd_batch_waits = 0;
    static __thread long long gd_batch_retry_at = 0;
    /* Each OS thread's record of long waits (a bit an epoch, the last one lowest), kept from
     * one call to the next (gdcore.fit calls the core every ~4M multiply-adds, a fit with a
     * callback every epoch) unless GD_LONG_WAITS_KEPT_NS old: a record that started over
     * every call could never reach 3 long waits in calls of 3 epochs or fewer. */
    #define GD_LONG_WAITS_KEPT_NS 1000000000LL
    static __thread unsigned int gd_long_waits = 0;
    static __thread long long gd_long_waits_at = 0;
    static unsigned int gd_recall_long_waits(void) {
        return gd_now_ns() - gd_long_waits_at < GD_LONG_WAITS_KEPT_NS ? gd_long_waits : 0;
    }
    static void gd_keep_long_waits(unsigned int long_waits) {
        gd_long_waits = long_waits;
        gd_long_waits_at = gd_now_ns();
    }
    /* for the tests: only this thread of a team votes (-1: any) */
    static int gd_team_voter = -1;
    /* Sleeps, and sleeps that ran out (their wake-up lost or late), for the tests. */
    static long long gd_team_sleeps = 0, gd_team_sleep_timeouts = 0;
    static long long *gd_last_count(const double *slot, Py_ssize_t n_values)
    {
        Py_ssize_t n_lines = (n_values + GD_LINE_VALUES - 1) / GD_LINE_VALUES;
        return (long long *)(slot + 8 * (n_lines - 1) + GD_LINE_VALUES);
    }
    /* The 32 bits of a count a futex watches: its low half, which changes from one epoch of
     * a slot to its next. */
    static int *gd_futex_word(long long *count)
    {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        return (int *)count + 1;
    #else
        return (int *)count;
    #endif
    }
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
    /* Wake the threads asleep waiting for a slot this thread has published (sleepers: how
     * many, on a line of its own that only they write).  Called once this thread has read
     * the other slots of the epoch, so the fence finds its stores mostly drained (a fence,
     * or a seq_cst store, right after publishing waited for the slot's lines to travel to
     * the other core: ~25% on the smallest problems).  The fence pairs with the sleeper's
     * seq_cst increment and count load (gd_add_slot): either this thread sees the sleeper,
     * or the sleeper sees the count and does not sleep.  Every thread publishes before it
     * waits, so the delay cannot deadlock. */
    static void gd_wake_sleepers(double *slot, Py_ssize_t n_values, int *sleepers)
    {
    #ifdef __linux__
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (__atomic_load_n(sleepers, __ATOMIC_RELAXED) > 0)
            syscall(SYS_futex, gd_futex_word(gd_last_count(slot, n_values)),
                    FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
    #else
        (void)slot; (void)n_values; (void)sleepers;
    #endif
    }
    /* Wait until every line of a slot has reached epoch, asking for all its lines at once
     * (one round trip between cores, not one a line), then sums[v] += the slot's values, in
     * order (GD_SPIN_NS says how it waits; yield_core: the team has more threads than
     * cores).  sleepers: the publishing thread's count of sleepers (gd_wake_sleepers).
     * Returns how long it waited, in ns (0 for under ~256 pauses). */
    static long long gd_add_slot(const double *slot, Py_ssize_t n_values, long long epoch,
                            double *sums, int *sleepers, int yield_core)
    {
        Py_ssize_t line, v, n_lines = (n_values + GD_LINE_VALUES - 1) / GD_LINE_VALUES;
        unsigned spins = 0;
        long long waited = 0, start = 0;
        for (;;) {
            int ready = 1;
            for (line = 0; line < n_lines; line++)
                ready &= __atomic_load_n((const long long *)(slot + 8 * line + GD_LINE_VALUES),
                                         __ATOMIC_ACQUIRE) >= epoch;
            if (ready)
                break;
            /* the clock every 256 pauses (a pause's length varies), and at every yield */
            if (++spins % 256 == 0 || waited >= GD_SPIN_NS) {
                if (start == 0)
                    start = gd_now_ns();
                waited = gd_now_ns() - start;
            }
            if (waited < GD_SLEEP_AFTER_NS) {
                if (yield_core && waited >= GD_SPIN_NS)
                    sched_yield();
                else
                    GD_SPIN_PAUSE();
                continue;
            }
    #ifdef __linux__
            {
                long long *last = gd_last_count(slot, n_values), seen;
                /* a lost wake-up could only cost this timeout, never a hang */
                struct timespec timeout = {0, 5000000};
                /* orders this thread's own (release) publishing before its check: two
                 * threads asleep on each other's slots, each missing the other's store, is
                 * otherwise allowed by C11 (it costs the timeout) */
                __atomic_thread_fence(__ATOMIC_SEQ_CST);
                __atomic_fetch_add(sleepers, 1, __ATOMIC_SEQ_CST);
                seen = __atomic_load_n(last, __ATOMIC_SEQ_CST);
                if (seen < epoch) {
                    long outcome = syscall(SYS_futex, gd_futex_word(last), FUTEX_WAIT_PRIVATE,
                                           (int)(unsigned int)seen, &timeout, NULL, 0);
                    __atomic_fetch_add(&gd_team_sleeps, 1, __ATOMIC_RELAXED);
                    if (outcome != 0 && errno == ETIMEDOUT)
                        __atomic_fetch_add(&gd_team_sleep_timeouts, 1, __ATOMIC_RELAXED);
                }
                __atomic_fetch_sub(sleepers, 1, __ATOMIC_SEQ_CST);
            }
    #else
            (void)sleepers;
            sched_yield();
    #endif
        }
        for (v = 0; v < n_values; v++)
            sums[v] += slot[8 * (v / GD_LINE_VALUES) + v % GD_LINE_VALUES];
        return waited;
    }
    """
    int gd_team_size() noexcept nogil
    long long GD_SPIN_NS, GD_SLEEP_AFTER_NS, gd_team_sleeps, gd_team_sleep_timeouts
    int __builtin_popcount(unsigned int) noexcept nogil
    int gd_processors() noexcept nogil
    void gd_publish_slot(double* slot, const double* values, Py_ssize_t n_values,
                         long long epoch) noexcept nogil
    void gd_wake_sleepers(double* slot, Py_ssize_t n_values, int* sleepers) noexcept nogil
    long long gd_add_slot(const double* slot, Py_ssize_t n_values, long long epoch,
                          double* sums, int* sleepers, int yield_core) noexcept nogil
    long long gd_now_ns() noexcept nogil
    long long GD_LONG_WAIT_NS, GD_TEAM_RETRY_NS, gd_team_give_ups, gd_team_retry_at
    unsigned int gd_batch_waits
    long long gd_batch_retry_at
    int gd_team_voter
    Py_ssize_t GD_GIVE_UP_MAX_WORK
    void gd_count_give_up() noexcept nogil
    unsigned int gd_recall_long_waits() noexcept nogil
    void gd_keep_long_waits(unsigned int long_waits) noexcept nogil

cdef inline Py_ssize_t team_slot_stride(Py_ssize_t d) noexcept nogil:
    """Doubles a team slot takes: its d + N_SLOTS sums and a vote to give up (see
    GD_LONG_WAIT_NS), 7 to a 64-byte line, each line ending in its count (gd_publish_slot)."""
    return (d + N_SLOTS + 1 + 6) // 7 * CACHE_LINE_DOUBLES


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
    loop; otherwise one team of options.n_threads threads runs it (team_epochs).  A team
    that gave up (GD_LONG_WAIT_NS) is followed by runs on this thread alone, in the same
    parts, of SIGNAL_CHECK_WORK multiply-adds each, until its retry time: then a team again
    (a single call can be a whole fit: the C API)."""
    global gd_team_retry_at, gd_passes_on_one_thread
    cdef Py_ssize_t m = d + 1, stride = accumulator_stride(d), done = 0, budget
    cdef long long before
    cdef int status = STATUS_OK
    cdef bint gave_up, contended = False
    cdef bint teams = gram == NULL and not on_one_thread(n, d, options.n_threads, False, True)
    # only a team that may give up waits for its retry time (see team_may_give_up)
    cdef bint may_give_up = teams and team_may_give_up(n, d, options.n_threads)
    cdef floating* scratch = NULL
    cdef double* part_buffer = NULL
    info.epochs_run = 0
    info.stop_reason = STOP_EPOCHS
    while True:
        if teams:
            contended = may_give_up and gd_now_ns() < gd_team_retry_at
            if not contended:
                gave_up = False
                before = info.epochs_run
                status = team_epochs(X, y, sample_weight, theta, state, n, d, options,
                                     max_epochs - before, max_work - done, history, info,
                                     &gave_up)
                if status != STATUS_NO_TEAM and not gave_up:
                    break
                if not gave_up:
                    teams = False     # no team to be had: block_sums threads each pass
                else:
                    gd_team_retry_at = gd_now_ns() + GD_TEAM_RETRY_NS
                    done += (info.epochs_run - before) * n * (d + 1)
                    contended = True
                    if info.epochs_run >= max_epochs:
                        break
        if scratch == NULL:
            scratch = <floating*>malloc(2 * m * sizeof(floating))
            part_buffer = <double*>calloc((<Py_ssize_t>options.n_threads + 1) * stride,
                                          sizeof(double))
            if scratch == NULL or part_buffer == NULL:
                status = STATUS_NO_MEMORY
                break
        budget = max_work - done
        if contended and budget > SIGNAL_CHECK_WORK:
            budget = SIGNAL_CHECK_WORK
        before = info.epochs_run
        # after a team gave up, the same parts on this thread alone (block_sums would
        # otherwise run them on a parallel region an epoch, waiting as the team did)
        gd_passes_on_one_thread = contended
        status = serial_epochs(X, y, sample_weight, theta, state, n, d, options, gram,
                               max_epochs - before, budget, history, info, scratch,
                               scratch + m, part_buffer + stride, part_buffer)
        gd_passes_on_one_thread = False
        if not contended:
            break
        done += (info.epochs_run - before) * n * (d + 1)     # streamed: no Gram with teams
        if (status != STATUS_OK or info.stop_reason != STOP_EPOCHS
                or info.epochs_run >= max_epochs or done >= max_work):
            break
    free(scratch)
    free(part_buffer)
    return status


cdef inline bint team_may_give_up(Py_ssize_t n, Py_ssize_t d, int n_threads) noexcept nogil:
    """Whether a team's threads may vote to give up: its largest part (thread 0's) is under
    GD_GIVE_UP_MAX_WORK multiply-adds an epoch."""
    return part_start(n, n_threads, 1) * (d + 1) < GD_GIVE_UP_MAX_WORK


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
    double* history, gd_fit_info* info, bint* gave_up,
) noexcept nogil:
    """full_batch_epochs on a team of options.n_threads threads (see the top of this file).
    Returns STATUS_NO_TEAM, having changed nothing, when the buffers cannot be had, OpenMP
    gives fewer threads or has none (a forked process); the caller then runs the epochs on
    one thread.  gave_up: the team stopped early, waiting too long (GD_LONG_WAIT_NS); info
    says how many epochs it ran, and the caller runs the rest."""
    cdef int n_threads = options.n_threads, status = STATUS_NO_TEAM
    cdef Py_ssize_t stride = team_slot_stride(d)
    # Each thread's θ, state (3 vectors), gradient and backup, on cache lines of their own.
    cdef Py_ssize_t own_size = ((6 * (d + 1) * sizeof(floating) + CACHE_LINE_BYTES - 1)
                                // CACHE_LINE_BYTES * CACHE_LINE_BYTES)
    cdef char* own = <char*>malloc(n_threads * own_size)
    # Two sets of slots (counts 0), then each thread's count of sleepers, a line each.
    cdef double* parts = <double*>calloc(2 * <Py_ssize_t>n_threads * stride
                                         + <Py_ssize_t>n_threads * CACHE_LINE_DOUBLES,
                                         sizeof(double))
    # Each thread's own sums of its rows, and of all rows: 2 × stride doubles.
    cdef double* sums = <double*>malloc(2 * <Py_ssize_t>n_threads * stride * sizeof(double))
    # gd_team_threads: fewer in a process forked after teams ran (OpenMP has no workers there)
    cdef Team team
    if (own != NULL and parts != NULL and sums != NULL
            and gd_team_threads(n_threads) == n_threads):
        team.X, team.y, team.sample_weight, team.theta, team.state = (
            X, y, sample_weight, theta, state)
        team.n, team.d, team.options, team.max_epochs, team.max_work = (
            n, d, options, max_epochs, max_work)
        team.history, team.info, team.own, team.own_size = history, info, own, own_size
        team.parts, team.sums, team.stride = parts, sums, stride
        team.n_threads, team.status, team.gave_up = n_threads, &status, gave_up
        if floating is double:
            gd_parallel_team(n_threads, team_member_f64, &team)
        else:
            gd_parallel_team(n_threads, team_member_f32, &team)
    free(own)
    free(parts)
    free(sums)
    return status


cdef struct Team:
    # team_epochs' arguments for its threads (the data's pointers as void: one struct for
    # both float types)
    const void* X
    const void* y
    const void* sample_weight
    void* theta
    void* state
    Py_ssize_t n, d, max_work, own_size, stride
    const gd_fit_options* options
    long long max_epochs
    double* history
    gd_fit_info* info
    char* own
    double* parts
    double* sums
    int n_threads
    int* status
    bint* gave_up


cdef inline void team_thread(const Team* team, int tid, const floating* kind) noexcept nogil:
    """Thread tid's call of team_member (kind: the float type)."""
    if gd_team_size() != team.n_threads:     # the same answer on every thread
        return
    team_member(tid, team.n_threads, <const floating*>team.X, <const floating*>team.y,
                <const floating*>team.sample_weight, <floating*>team.theta,
                <floating*>team.state, team.n, team.d, team.options, team.max_epochs,
                team.max_work, team.history, team.info,
                <floating*>(team.own + tid * team.own_size), team.parts,
                team.sums + 2 * tid * team.stride, team.status, team.gave_up)


cdef void team_member_f64(void* team, int tid) noexcept nogil:
    team_thread(<const Team*>team, tid, <const double*>NULL)


cdef void team_member_f32(void* team, int tid) noexcept nogil:
    team_thread(<const Team*>team, tid, <const float*>NULL)


cdef void team_member(
    int tid, int n_threads, const floating* X, const floating* y,
    const floating* sample_weight, floating* shared_theta, floating* shared_state,
    Py_ssize_t n, Py_ssize_t d, const gd_fit_options* options, long long max_epochs,
    Py_ssize_t max_work, double* history, gd_fit_info* info, floating* own, double* parts,
    double* sums, int* status_out, bint* gave_up_out,
) noexcept nogil:
    """Thread tid's share of team_epochs: every thread takes the same decisions (they are
    made from the same sums and votes), so all run the same epochs and stop at the same one;
    thread 0 alone writes history, info, θ, the state, the status and gave_up_out."""
    cdef Py_ssize_t m = d + 1, width = d + N_SLOTS, stride = team_slot_stride(d)
    # what a slot carries: the sums, then this thread's vote to give up (GD_LONG_WAIT_NS)
    cdef Py_ssize_t published = width + 1
    cdef Py_ssize_t lo = part_start(n, n_threads, tid), hi = part_start(n, n_threads, tid + 1)
    cdef Py_ssize_t work = 0, j
    cdef floating* theta = own
    cdef floating* state = own + m
    cdef floating* grad = own + 4 * m
    cdef floating* backup = own + 5 * m
    cdef double* epoch_parts
    cdef double* mine_sums = sums + stride    # this thread's rows' sums, before publishing
    cdef double* sleepers = parts + 2 * n_threads * stride    # see gd_wake_sleepers
    cdef int yield_core = n_threads > gd_processors()
    cdef bint may_give_up = (team_may_give_up(n, d, n_threads)
                             and (gd_team_voter < 0 or gd_team_voter == tid))
    cdef bint gave_up = False
    cdef unsigned int long_waits = gd_recall_long_waits()     # a bit an epoch, the last lowest
    cdef long long waited
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
        mine_sums[width] = 1.0 if may_give_up and __builtin_popcount(long_waits & 0xFFFF) >= 3 \
            else 0.0
        gd_publish_slot(epoch_parts + tid * stride, mine_sums, published, k + 1)
        memset(sums, 0, published * sizeof(double))
        waited = 0
        for part in range(n_threads):
            if part == tid:
                for j in range(published):
                    sums[j] += mine_sums[j]
            else:
                waited += gd_add_slot(epoch_parts + part * stride, published, k + 1, sums,
                                      <int*>(sleepers + part * CACHE_LINE_DOUBLES), yield_core)
        gd_wake_sleepers(epoch_parts + tid * stride, published,
                         <int*>(sleepers + tid * CACHE_LINE_DOUBLES))
        long_waits = (long_waits << 1) | (waited > GD_LONG_WAIT_NS)
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
        if sums[width] > 0.0:     # a vote to give up, seen by every thread in this epoch
            gave_up = True
            break
    gd_keep_long_waits(0 if gave_up else long_waits)
    # Every thread read the shared θ and state before it published its first slot, which
    # thread 0 has waited for: thread 0 may now write them.
    if tid == 0:
        memcpy(shared_theta, theta, m * sizeof(floating))
        memcpy(shared_state, state, 3 * m * sizeof(floating))
        info[0] = mine
        status_out[0] = status
        gave_up_out[0] = gave_up
        if gave_up:
            gd_count_give_up()


cdef void batch_sums(
    const floating* X, const floating* y, const floating* sample_weight,
    const floating* theta, Py_ssize_t d, const Py_ssize_t* rows, Py_ssize_t rows_end,
    Py_ssize_t start, Py_ssize_t stop, int n_threads, double* part_sums, double* sums,
) noexcept nogil:
    """block_sums for one mini-batch, whose threads give up waiting for busy cores (see
    gd_batch_waits): the bits do not depend on how many threads sum the parts."""
    global gd_batch_waits, gd_batch_retry_at, gd_passes_on_one_thread
    cdef long long started
    cdef bint kept = gd_passes_on_one_thread
    if on_one_thread(stop - start, d, n_threads, rows != NULL):
        block_sums(X, y, sample_weight, theta, d, rows, rows_end, start, stop, n_threads,
                   part_sums, sums)
        return
    if gd_batch_retry_at != 0 and gd_now_ns() < gd_batch_retry_at:
        gd_passes_on_one_thread = True
        block_sums(X, y, sample_weight, theta, d, rows, rows_end, start, stop, n_threads,
                   part_sums, sums)
        gd_passes_on_one_thread = kept
        return
    gd_batch_retry_at = 0
    started = gd_now_ns()
    block_sums(X, y, sample_weight, theta, d, rows, rows_end, start, stop, n_threads,
               part_sums, sums)
    gd_batch_waits = ((gd_batch_waits << 1) | (gd_now_ns() - started > GD_LONG_WAIT_NS)) & 0xFFFF
    if __builtin_popcount(gd_batch_waits) >= 3:
        gd_batch_waits = 0
        gd_batch_retry_at = gd_now_ns() + GD_TEAM_RETRY_NS
        gd_count_give_up()


def _team_waits(spin_ns=None, sleep_after_ns=None, long_wait_ns=None, retry_ns=None,
                voter=None):
    """For the tests: (sleeps, sleeps that timed out, teams that gave up) so far; and set how
    long a waiting team thread spins (ns), when it sleeps (see GD_SPIN_NS), what wait counts
    as long and how long a team is not tried again after giving up (see GD_LONG_WAIT_NS), if
    given (retry_ns also ends the calling thread's current wait for a retry, its mini-batches'
    too; voter: only that thread of a team votes, -1 any).  Mini-batches give up by the same
    long wait and retry time, and count in the same give-ups."""
    global GD_SPIN_NS, GD_SLEEP_AFTER_NS, GD_LONG_WAIT_NS, GD_TEAM_RETRY_NS, gd_team_retry_at
    global gd_team_voter, gd_batch_waits, gd_batch_retry_at
    if spin_ns is not None:
        GD_SPIN_NS = spin_ns
    if sleep_after_ns is not None:
        GD_SLEEP_AFTER_NS = sleep_after_ns
    if long_wait_ns is not None:
        GD_LONG_WAIT_NS = long_wait_ns
    if retry_ns is not None:
        GD_TEAM_RETRY_NS = retry_ns
        gd_team_retry_at = gd_batch_retry_at = 0
        gd_batch_waits = 0
    if voter is not None:
        gd_team_voter = voter
    return gd_team_sleeps, gd_team_sleep_timeouts, gd_team_give_ups
