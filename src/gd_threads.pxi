# Included by _core.pyx: OpenMP and fork glue (teams, thread counts, pools freed at
# fork) and the rules that cut a pass among threads (when to, and where each part begins).

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

# Per-part accumulators are padded to whole 64-byte cache lines so threads never share one.
cdef Py_ssize_t CACHE_LINE_DOUBLES = 8


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
