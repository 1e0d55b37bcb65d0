# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""gdcore._core: the compiled fit loop.

Three layers, as in scikit-learn's ``_loss``:

* ``gd_kernel.pxd``, ``gd_optimizers.pxd``, ``gd_schedules.pxd``: ``nogil`` inline functions
  for one row, one block of rows, one update, one learning rate;
* this module's ``cdef`` loops: the threaded pass over a block of rows (per-part
  accumulators reduced in a fixed order, so a given thread count gives the same bits every
  run) and the epoch loop (full-batch, or mini-batches through a permutation);
* ``def`` entry points called by ``gdcore._api`` once per fit, after it has validated
  everything: the core trusts its inputs' values, but checks that their shapes fit
  together (``check_shapes``), so no call from Python can read or write past an array.

The GIL is held only between epochs (signal check, optional callback, the next
permutation) and, every few million multiply-adds inside a long epoch, for a signal check.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.float cimport DBL_EPSILON, DBL_MAX, FLT_MAX, LDBL_EPSILON
from libc.math cimport fabs, fabsl, isfinite, isnan
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


cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int gd_openmp_enabled(void) { return 1; }
    /* OMP_THREAD_LIMIT bounds every team, though omp_get_max_threads does not say so */
    static int gd_default_threads(void) {
        int threads = omp_get_max_threads(), limit = omp_get_thread_limit();
        return threads < limit ? threads : limit;
    }
    /* the processors the process may run on as OpenMP found them when it started (taskset,
     * a container's CPU set): with OMP_PROC_BIND or OMP_PLACES set, libgomp pins the thread
     * that loads it to one place, and that thread's own affinity then shows one CPU */
    static int gd_available_procs(void) { return omp_get_num_procs(); }
    #else
    static int gd_openmp_enabled(void) { return 0; }
    static int gd_default_threads(void) { return 1; }
    static int gd_available_procs(void) { return 0; }
    #endif
    /* OpenMP's threads do not survive fork(): GCC's libgomp keeps, per thread that started a
     * team, a pool of parked workers, and a child forked from that thread inherits the pool
     * but not the workers, so its next team waits for them forever (GCC bug 60035).  So
     * before a fork the forking thread's pool is freed (gd_before_fork), and the child starts
     * a fresh one.  Where that cannot be done (a fork from inside a team, a build by Clang or
     * by GCC < 9, a libgomp without omp_pause_resource_all), a thread notes that it starts
     * teams, and a child forked from such a thread runs every pass on one thread, cut into the
     * same parts (the same bits). */
    #if defined(_OPENMP) && !defined(_WIN32)
    #include <pthread.h>
    static __thread int gd_thread_started_team = 0, gd_pool_released = 0;
    static int gd_threads_lost = 0;
    static int gd_release_pool_at_fork = 1;     /* 0 only in tests of the one-thread fallback */
    #if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 9
    /* libgomp (OpenMP 5.0, GCC 9+; weak: an older libgomp lacks it): frees the calling
     * thread's pool of parked workers, whoever's teams made it (another library, the C API
     * caller's own OpenMP), and returns -1 inside a team.  The child then starts a fresh
     * pool and keeps its threads; the parent's next team starts its workers again. */
    #pragma weak omp_pause_resource_all
    #define GD_FORK_FREES_POOLS 1
    static void gd_before_fork(void) {
        /* not in a child that lost its workers: freeing their pool would wait for them */
        gd_pool_released = gd_release_pool_at_fork && !gd_threads_lost
                           && omp_pause_resource_all != NULL
                           && omp_pause_resource_all(omp_pause_soft) == 0;
    }
    #else
    /* (Clang's libomp: a forked child of a thread that ran gdcore's teams hung at its next
     * team when scikit-learn's own libgomp was loaded too; one thread there is safe) */
    static void gd_before_fork(void) { gd_pool_released = 0; }
    #endif
    static void gd_after_fork_in_parent(void) { gd_pool_released = 0; }
    static void gd_note_fork_in_child(void) {
        if (gd_thread_started_team && !gd_pool_released) gd_threads_lost = 1;
        gd_pool_released = 0;
    }
    static int gd_watch_forks(void) {
        return pthread_atfork(gd_before_fork, gd_after_fork_in_parent, gd_note_fork_in_child);
    }
    /* a full-batch team gave up waiting: its epochs' passes go on one thread (gd_full_batch) */
    static __thread int gd_passes_on_one_thread = 0;
    static int gd_team_threads(int requested) {
        if (requested <= 1) return requested;
        if (gd_threads_lost || gd_passes_on_one_thread) return 1;
        gd_thread_started_team = 1;
        return requested;
    }
    #else
    static int gd_threads_lost = 0;
    static int gd_release_pool_at_fork = 1;
    static int gd_passes_on_one_thread = 0;
    static int gd_watch_forks(void) { return 0; }
    static int gd_team_threads(int requested) {
        return gd_passes_on_one_thread && requested > 1 ? 1 : requested;
    }
    #endif
    static int gd_threads_lost_to_fork(void) { return gd_threads_lost; }
    #ifndef GD_FORK_FREES_POOLS
    #define GD_FORK_FREES_POOLS 0
    #endif
    static int gd_fork_frees_pools(void) { return GD_FORK_FREES_POOLS; }
    /* Every OpenMP region of the core starts here, in C.  Cython wraps a parallel block in a
     * nogil function in "release the GIL if this thread holds it" (PyGILState_Check,
     * PyEval_SaveThread): that touches the interpreter, which the C API promises its calls
     * never do (a caller holding the GIL and a lock another Python thread waits for would
     * deadlock; after Py_FinalizeEx or a sub-interpreter, CPython aborts).
     * gd_parallel_parts: part(context, p) for p = 0 .. n_parts - 1, statically scheduled on
     * up to n_threads threads.  gd_parallel_team: part(context, thread number) on each thread
     * of a team of n_threads. */
    typedef void (*gd_part_fn)(void *context, int part);
    static void gd_parallel_parts(int n_parts, int n_threads, gd_part_fn part, void *context) {
        int p;
        #pragma omp parallel for schedule(static) num_threads(n_threads)
        for (p = 0; p < n_parts; p++) part(context, p);
    }
    static void gd_parallel_team(int n_threads, gd_part_fn part, void *context) {
    #ifdef _OPENMP
        #pragma omp parallel num_threads(n_threads)
        part(context, omp_get_thread_num());
    #else
        (void)n_threads;
        part(context, 0);
    #endif
    }
    """
    ctypedef void (*gd_part_fn)(void* context, int part) noexcept nogil
    void gd_parallel_parts(int n_parts, int n_threads, gd_part_fn part, void* context) noexcept nogil
    void gd_parallel_team(int n_threads, gd_part_fn part, void* context) noexcept nogil
    int gd_openmp_enabled() noexcept nogil
    int gd_default_threads() noexcept nogil
    int gd_available_procs() noexcept nogil
    int gd_watch_forks() noexcept nogil
    int gd_team_threads(int requested) noexcept nogil
    int gd_threads_lost_to_fork() noexcept nogil
    int gd_fork_frees_pools() noexcept nogil
    int gd_release_pool_at_fork
    bint gd_passes_on_one_thread

if gd_watch_forks() != 0:
    raise ImportError("gdcore._core: pthread_atfork failed (out of memory)")

cdef extern from "Python.h":
    int PyErr_CheckSignals()


# Below this many multiply-adds a block is summed on one thread: starting a parallel
# region costs a microsecond or two.  Rows gathered from random places (a shuffled
# mini-batch) cost far more each, and two threads wait on memory in parallel: for rows of
# SHORT_ROW values or more the bar is lower (measured, Adam at d = 100 with 1 vs 2 threads:
# 16 rows 0.96x, 32 rows 1.11x, 64 rows 1.33x, 128 rows 1.50x; shorter rows gained nothing
# below ~45,000 multiply-adds).
cdef Py_ssize_t PARALLEL_MIN_WORK = 16384
cdef Py_ssize_t PARALLEL_MIN_GATHER = 3072
# From this many multiply-adds an epoch (n × (d + 1)), a team of threads runs the full-batch
# epochs (gd_full_batch.pxi; measured on 2 cores, Adam: two threads beat one from ~2,000;
# rows of 10 values, 400 rows 1.27x, 1,600 rows 1.66x; rows of 40 values, 100 rows 1.23x,
# 1,600 rows 1.80x).  A full-batch epoch's pass cuts its rows into n_threads parts from here
# on, on a team or on the one thread OpenMP may leave it, so the two give the same bits, as do
# objective_gradient and the C API's loss_grad, which cut their one pass the same way.
# (block_sums_of, a chunk's or Dask block's pass, keeps PARALLEL_MIN_WORK: a parallel region
# started per call costs more than the team's barrier.)
cdef Py_ssize_t TEAM_MIN_WORK = 3072
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
# Inside a long mini-batch epoch, look for a pending signal after this much work (~ms).
cdef Py_ssize_t SIGNAL_CHECK_WORK = 1 << 22
# Per-part accumulators are padded to whole 64-byte cache lines so threads never share one.
cdef Py_ssize_t CACHE_LINE_DOUBLES = 8

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


def openmp_enabled():
    """True if the extension was compiled with OpenMP."""
    return bool(gd_openmp_enabled())


def prefetch_locality():
    """The locality hint (0-3) the kernels' software prefetches were compiled with."""
    return GD_PREFETCH_LOCALITY


# The most threads a call takes (OpenMP cannot report a team it fails to start: libgomp
# ends the process), as the C API's GDCORE_MAX_THREADS.
MAX_THREADS = GDCORE_MAX_THREADS


cdef inline int default_threads() noexcept nogil:
    """OpenMP's default team size (honours OMP_NUM_THREADS and threadpoolctl limits), at
    most MAX_THREADS."""
    return min(gd_default_threads(), GDCORE_MAX_THREADS)


def default_n_threads():
    """OpenMP's default team size, at most MAX_THREADS (default_threads)."""
    return default_threads()


def available_procs():
    """The processors OpenMP found this process may run on when it started (0 without
    OpenMP): unlike the loading thread's affinity, not narrowed by OMP_PROC_BIND's pinning."""
    return gd_available_procs()


def _release_pool_at_fork(enabled):
    """For the tests: whether a fork frees the forking thread's OpenMP pool first (as it
    always does outside tests); without it, children of threads that ran teams run on one
    thread (the fallback of a fork from inside a team)."""
    global gd_release_pool_at_fork
    gd_release_pool_at_fork = 1 if enabled else 0


def fork_frees_pools():
    """Whether this build frees the forking thread's OpenMP pool before a fork (GCC 9+ with
    libgomp), so that forked children keep their threads; other builds fall back to one
    thread in the children of threads that ran teams (see threads_lost_to_fork)."""
    return bool(gd_fork_frees_pools())


def threads_lost_to_fork():
    """True in a process forked from a thread that had run teams of threads, where its pool
    of OpenMP workers could not be freed before the fork (see gd_before_fork): here every
    pass runs on one thread, with the same results."""
    return bool(gd_threads_lost_to_fork())


cdef inline bint on_one_thread(Py_ssize_t n_rows, Py_ssize_t d, int n_threads,
                               bint gathered, bint full_pass=False) noexcept nogil:
    """Whether block_sums sums n_rows rows (gathered: through a permutation; full_pass: all
    of the data's rows, in order) on one thread."""
    cdef Py_ssize_t min_work = (TEAM_MIN_WORK if full_pass
                                else PARALLEL_MIN_GATHER if gathered and d >= SHORT_ROW
                                else PARALLEL_MIN_WORK)
    return n_threads <= 1 or n_rows < n_threads or n_rows * (d + 1) < min_work


cdef inline Py_ssize_t accumulator_stride(Py_ssize_t d) noexcept nogil:
    cdef Py_ssize_t width = d + N_SLOTS
    return (width + CACHE_LINE_DOUBLES - 1) // CACHE_LINE_DOUBLES * CACHE_LINE_DOUBLES


cdef inline Py_ssize_t part_start(Py_ssize_t n_rows, int n_parts, Py_ssize_t part) noexcept nogil:
    """Where part `part` of n_rows rows cut into n_parts contiguous parts of ⌈n_rows/n_parts⌉
    begins (n_rows for parts past the end); part + 1 gives where it ends.  One rule for every
    threaded pass: the full-batch team must cut the rows exactly as block_sums does, or its
    sums would differ in the last bits."""
    cdef Py_ssize_t start = part * ((n_rows + n_parts - 1) // n_parts)
    return start if start < n_rows else n_rows


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


# Gram mode's Σ sᵢrᵢ² is a difference of terms the size of Σ sᵢỹᵢ² (its "magnitude" below),
# and carries their rounding: measured 1e-16 to 1e-15 of them (n up to 1e6, d up to 100).
# Below this share of the magnitude it would no longer agree with a pass over X to rtol
# 1e-10 (SPEC §7), so such an epoch takes its sums from a pass over X instead.
cdef double GRAM_SQUARES_MIN_SHARE = 1e-5
# The relative error of Σ sᵢrᵢ² that the rule above allows (1e-15 of the magnitude against
# 1e-5 of it): an epoch whose bound on the error from rounding the offset e (below) is not
# within it takes the pass over X too.
cdef double GRAM_SQUARES_RTOL = 1e-10


cdef inline bint gram_squares_precise(const double* sums, Py_ssize_t d, double magnitude,
                                      double offset_error) noexcept nogil:
    """Whether sums_from_gram's Σ sᵢrᵢ² is well above its rounding (False for a NaN): the
    terms' rounding (measured, a share of their magnitude) and the bound ``offset_error``
    on what the offset's rounding adds."""
    return (sums[d + SLOT_SQUARES]
            >= GRAM_SQUARES_MIN_SHARE * magnitude + offset_error / GRAM_SQUARES_RTOL)


cdef bint gram_epoch_sums(const double* gram, const floating* theta, Py_ssize_t d,
                          double* sums) noexcept nogil:
    """sums_from_gram into sums, and whether its Σ sᵢrᵢ² is precise (gram_squares_precise).
    When only the offset's rounding leaves it in doubt (a column of X with a large mean: e
    is then a small sum of large terms), e is formed again in long double (64 bits on x86-64,
    113 on AArch64 Linux; where it is double, nothing changes) and the sums with it."""
    cdef double magnitude, offset_error
    magnitude = sums_from_gram(gram, theta, d, sums, &offset_error, False)
    if gram_squares_precise(sums, d, magnitude, offset_error):
        return True
    if not gram_squares_precise(sums, d, magnitude, 0.0):
        return False
    magnitude = sums_from_gram(gram, theta, d, sums, &offset_error, True)
    return gram_squares_precise(sums, d, magnitude, offset_error)


cdef double sums_from_gram(const double* gram, const floating* theta, Py_ssize_t d,
                           double* sums, double* offset_error, bint extended) noexcept nogil:
    """The sums of a full pass, from the data's packed means and centred moments instead of X
    (see gdcore/_precompute.py): with S = Σ sᵢ, the stored means x̄, ȳ (rounded), centred
    about them C = Σ sᵢx̃ᵢx̃ᵢᵀ, c = Σ sᵢx̃ᵢỹᵢ, yy = Σ sᵢỹᵢ², and first moments mₓ = Σ sᵢx̃ᵢ,
    m_y = Σ sᵢỹᵢ (not 0: S times the means' rounding), each residual is rᵢ = x̃ᵢ·w − ỹᵢ + e
    with e = x̄·w + b − ȳ, so with g = mₓ·w − m_y = Σ sᵢ(x̃ᵢ·w − ỹᵢ),

        Σ sᵢrᵢxᵢ = (Cw − c) + e·mₓ + x̄·Σ sᵢrᵢ,   Σ sᵢrᵢ = g + Se,
        Σ sᵢrᵢ² = wᵀ(Cw − c) − wᵀc + yy + (2g + Se)·e.

    (Without g, with y ≈ 1e6 the loss read 2e-9 off: g ≈ S·ulp(ȳ)/2 and the term 2ge is then
    that share of Se², itself most of the loss while e is large against the noise.)
    Each epoch costs O(d²), whatever n is.  Returns the magnitude of the terms summed into
    Σ sᵢrᵢ², the scale of their rounding error, and sets offset_error to a bound on the error
    that rounding e (in double, or in long double if ``extended``) adds to Σ sᵢrᵢ² (see
    gram_squares_precise)."""
    cdef Py_ssize_t width = d + 2, j, k
    cdef const double* means = gram + d + 1         # column d + 1: x̄ (rows < d), ȳ (row d)
    cdef const double* first = gram + (d + 1) * width   # row d + 1: mₓ (< d), m_y (d), S
    cdef double S = first[d + 1]
    cdef double offset, product, offset_rounding, g = -first[d], residual_sum, e_terms
    cdef double row_sum, w_u = 0.0, w_c = 0.0, squares
    cdef long double offset_long, product_long, rounding_long
    # Running error bounds (Higham, ASNA §3.3): each rounding in forming e is at most u times
    # its result (u = EPSILON / 2: EPSILON leaves room for the bound's own rounding and terms
    # of order u²).  A contracted multiply-add rounds less, within the same bound.
    if extended:
        offset_long = <long double>theta[d] - <long double>means[d * width]
        rounding_long = fabsl(offset_long)
        for j in range(d):
            product_long = <long double>means[j * width] * <long double>theta[j]
            offset_long += product_long
            rounding_long += fabsl(product_long) + fabsl(offset_long)
        offset = <double>offset_long
        offset_rounding = <double>(rounding_long * LDBL_EPSILON) + DBL_EPSILON * fabs(offset)
    else:
        offset = theta[d] - means[d * width]
        offset_rounding = fabs(offset)
        for j in range(d):
            product = means[j * width] * theta[j]
            offset += product
            offset_rounding += fabs(product) + fabs(offset)
        offset_rounding *= DBL_EPSILON
    for j in range(d):
        g += first[j] * theta[j]
    residual_sum = g + S * offset                      # Σ sᵢrᵢ
    for j in range(d):
        row_sum = 0.0
        for k in range(d):
            row_sum += gram[j * width + k] * theta[k]
        row_sum = row_sum - gram[j * width + d]              # (Cw − c)ⱼ
        w_u += theta[j] * row_sum
        w_c += theta[j] * gram[j * width + d]
        sums[j] = row_sum + offset * first[j] + means[j * width] * residual_sum
    sums[d] = residual_sum
    e_terms = (g + residual_sum) * offset                # (2g + Se)·e
    squares = (w_u - w_c) + gram[d * width + d] + e_terms
    # Σ sᵢrᵢ² ≥ 0; the subtraction above can round an exact fit to a tiny negative number.
    # (Written so that a NaN, from inf − inf when θ overflows the sums, stays NaN: the loss
    # is then not finite, as the streaming pass finds it.)
    sums[d + SLOT_SQUARES] = 0.0 if squares < 0.0 else squares
    sums[d + SLOT_WEIGHT] = S
    # (2g + Se)·e moves by at most (2|g| + S(2|e| + δ))·δ when e is off by δ
    offset_error[0] = ((2.0 * fabs(g) + S * (2.0 * fabs(offset) + offset_rounding))
                       * offset_rounding)
    return fabs(w_u) + fabs(w_c) + gram[d * width + d] + fabs(e_terms)


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


cdef int mini_batch_epoch(
    const floating* X, const floating* y, const floating* sample_weight,
    floating* theta, floating* grad, floating* state0, floating* state1, floating* state2,
    floating* backup, Py_ssize_t n, Py_ssize_t d, const Py_ssize_t* rows,
    Py_ssize_t batch_size, const OptimConfig* optim, const ScheduleConfig* schedule,
    long long epoch, long long* t, double l2, double l1, bint fit_intercept,
    int n_threads, double* part_sums, double* sums, double* loss, bint check_signals,
) noexcept nogil:
    """One update per batch of consecutive entries of rows (the epoch's permutation, or NULL
    for rows in order); the epoch's loss is the mean of each batch's J before its update.
    A batch whose weights sum to 0 has no defined gradient: it is skipped."""
    cdef Py_ssize_t start, stop, work = 0
    cdef double batch_loss, loss_sum = 0.0, lr
    cdef long long n_batches = 0
    cdef int status = STATUS_OK
    cdef Py_ssize_t next_start = 0
    if batch_size == 1 and optim.kind == OPT_SGD and optim.momentum == 0.0:
        return single_row_sgd_epoch(X, y, sample_weight, theta, backup, grad, n, d, rows,
                                    optim, schedule, epoch, t, l2, l1, fit_intercept, loss,
                                    check_signals)
    if batch_size == 1 and single_row_path:
        return single_row_epoch(X, y, sample_weight, theta, grad, state0, state1, state2,
                                backup, n, d, rows, optim, schedule, epoch, t, l2, l1,
                                fit_intercept, loss, check_signals)
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
    return status


cdef bint signal_pending() noexcept nogil:
    """Run Python's signal handlers (a long epoch calls this every few ms); True if one
    raised (Ctrl-C): the exception is set, and the epoch stops.  Kept out of line, so the
    loops that call it keep their registers."""
    cdef int raised
    with gil:
        raised = PyErr_CheckSignals()
    return raised != 0


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


def all_finite(const floating[::1] values, int n_threads=0):
    """True if no entry is NaN or ±inf: one threaded pass (n_threads threads, 0 for OpenMP's
    default), no temporary array.  Each thread checks a contiguous part with
    is_finite_vector (x − x is 0 exactly when x is finite; the tests or-ed, so the loop
    vectorises), so the
    pass runs at the read bandwidth."""
    cdef Py_ssize_t n = values.shape[0], part, lo, hi
    cdef int n_parts = ((n_threads if n_threads > 0 else default_threads())
                        if n > PARALLEL_MIN_WORK else 1)
    cdef int bad_parts = 0
    if n == 0:
        return True
    with nogil:
        for part in prange(n_parts, schedule="static", num_threads=gd_team_threads(n_parts)):
            lo = part_start(n, n_parts, part)
            hi = part_start(n, n_parts, part + 1)
            if lo < hi and not is_finite_vector(&values[lo], hi - lo):
                bad_parts += 1
    return bad_parts == 0


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


cdef extern from "gd_probe.h":
    double gd_probe_sum_f64(const double* values, Py_ssize_t n, Py_ssize_t ahead,
                            int nontemporal) nogil
    double gd_probe_sum_f32(const float* values, Py_ssize_t n, Py_ssize_t ahead,
                            int nontemporal) nogil


cdef inline double lane_sum(const floating* values, Py_ssize_t n,
                            Py_ssize_t prefetch_bytes, bint nontemporal) noexcept nogil:
    """Σ values in vector registers (see gd_probe.h); with prefetch_bytes > 0, each step's
    lines are prefetched that far ahead as well (within the values), with the kernels'
    locality hint or, if nontemporal, the non-temporal one."""
    cdef Py_ssize_t ahead = prefetch_bytes // <Py_ssize_t>sizeof(floating)
    if floating is double:
        return gd_probe_sum_f64(values, n, ahead, nontemporal)
    else:
        return gd_probe_sum_f32(values, n, ahead, nontemporal)


def stream_sum(const floating[::1] values, int n_threads, Py_ssize_t prefetch_bytes=0,
               bint nontemporal=False):
    """Σ values with n_threads threads, each summing its contiguous part in vector registers: a
    read-bandwidth probe, the yardstick of a full-batch epoch, which must read X once.  With
    prefetch_bytes > 0 the reads are also prefetched that far ahead (on this project's CI
    machine, two threads read ~10% more that way when the memory is slow), with the kernels'
    locality hint (GD_PREFETCH_LOCALITY) or, if nontemporal, the non-temporal hint."""
    cdef Py_ssize_t n = values.shape[0], part, lo, hi
    cdef int n_parts = max(n_threads, 1)
    cdef double total = 0.0
    partials = np.zeros(n_parts * CACHE_LINE_DOUBLES, dtype=np.float64)
    cdef double[::1] partial = partials
    with nogil:
        for part in prange(n_parts, schedule="static", num_threads=gd_team_threads(n_parts)):
            lo = part_start(n, n_parts, part)
            hi = part_start(n, n_parts, part + 1)
            if lo < hi:
                partial[part * CACHE_LINE_DOUBLES] = lane_sum(&values[lo], hi - lo,
                                                              prefetch_bytes, nontemporal)
        for part in range(n_parts):
            total += partial[part * CACHE_LINE_DOUBLES]
    return total


def gram_sums(const double[:, ::1] gram, const floating[::1] theta):
    """(sums, precise): the sums of a full pass (as block_sums_of returns them) from the packed
    (d+2)² means and centred moments of (X, y), what Gram mode computes each epoch (see
    sums_from_gram), and whether their Σ sᵢrᵢ² is well above its rounding (else an epoch
    takes the sums from a pass over the data; see gram_squares_precise)."""
    cdef Py_ssize_t d = theta.shape[0] - 1
    check_parameters(theta.shape[0], theta.shape[0], -1, 0)
    check_gram_shape(gram.shape[0], gram.shape[1], d)
    out = np.zeros(d + N_SLOTS, dtype=np.float64)
    cdef double[::1] sums = out
    return out, gram_epoch_sums(&gram[0, 0], &theta[0], d, &sums[0])


include "gd_full_batch.pxi"
include "gd_capi.pxi"
