# cython: cdivision=True
# The fused loss + gradient kernel: the bottom layer, one row and one block of rows.
#
# For the rows of a block, with rᵢ = xᵢ·w + b − yᵢ, one pass accumulates
#     acc[j]         += sᵢ rᵢ xᵢⱼ     (j < d)
#     acc[d + 0]     += sᵢ rᵢ
#     acc[d + 1]     += sᵢ rᵢ²
#     acc[d + 2]     += sᵢ
# so every row of X is read from memory once and used twice while it is in cache.
# Row-level arithmetic runs in the input precision; sums over rows are float64.

from cython cimport floating
from libc.float cimport DBL_MAX
from libc.math cimport fabs
from libc.stdlib cimport calloc, free
from gd_types cimport SLOT_RESIDUAL, SLOT_SQUARES, SLOT_WEIGHT


cdef extern from "gd_fma.h":
    double GD_MULADD_F64(double a, double b, double c) noexcept nogil
    float GD_MULADD_F32(float a, float b, float c) noexcept nogil


cdef inline floating muladd(floating a, floating b, floating c) noexcept nogil:
    """a·b + c, rounded once where the machine has FMA (see gd_fma.h)."""
    if floating is double:
        return GD_MULADD_F64(a, b, c)
    else:
        return GD_MULADD_F32(a, b, c)


cdef extern from "gd_prefetch.h":
    int GD_PREFETCH_LOCALITY
    void GD_PREFETCH(const void* address) noexcept nogil
    void GD_PREFETCH_SPAN(const char* start, Py_ssize_t nbytes, int hint) noexcept nogil

ctypedef fused accumulator:
    # Where a group's gradient terms go: float64 sums, or a float32 block sum (see FLOAT_BLOCK).
    float
    double


cdef extern from "gd_short_rows.h":
    # Rows of up to GD_SHORT_ROWS_MAX_D_F64 / _F32 values, vectorised in C (see the header
    # for why); the maxima are 0 where the compiler has no vector extensions, and then the
    # loops of accumulate_rows do it.
    Py_ssize_t GD_SHORT_ROWS_MAX_D_F64
    Py_ssize_t GD_SHORT_ROWS_MAX_D_F32
    void gd_short_rows_f64(const double* X, const double* y, const double* sample_weight,
                           const double* theta, Py_ssize_t d, const Py_ssize_t* rows,
                           Py_ssize_t rows_end, Py_ssize_t start, Py_ssize_t stop, double* acc,
                           Py_ssize_t prefetch_ahead) noexcept nogil
    void gd_short_rows_f32(const float* X, const float* y, const float* sample_weight,
                           const float* theta, Py_ssize_t d, const Py_ssize_t* rows,
                           Py_ssize_t rows_end, Py_ssize_t start, Py_ssize_t stop, double* acc,
                           Py_ssize_t prefetch_ahead) noexcept nogil

# Lanes of the dot product: independent partial sums the compiler keeps in vector registers
# (16 = one 512-bit register of float32, two of float64).  Without -ffast-math the compiler
# may not reorder a single running sum, so the lanes are written out.
cdef enum:
    DOT_LANES = 16
    # Lanes of a row's dot product (rows_dot4 runs four rows' lanes side by side, so there
    # are eight float64 vector chains in flight).
    ROW_DOT_LANES = 16
    # Below this many features accumulate_rows sums a row's dot product as one running sum
    # (four rows side by side), and classic SGD in SHORT_DOT_LANES lanes (see short_row_dot).
    SHORT_ROW = 32
    SHORT_DOT_LANES = 4
    # Rows per float32 block sum: the rounding of 64 float32 terms is ~4e-6 relative.
    FLOAT_BLOCK = 64
    # Rows of a shuffled pass are fetched this many rows ahead of their use, hiding the
    # memory latency of random row access.
    PREFETCH_AHEAD = 8
    # Rows read in order are prefetched this many bytes ahead too: the hardware prefetcher
    # alone left the core waiting on memory (measured on Zen 5, d = 100: 14.6 -> 32.5 GB/s
    # on one thread, 22 -> 41 GB/s on two; 3,200 bytes was slower, 12,800 no faster).
    # Measured again on 2026-11-25, rows of 48 to 300 values read as fast without it (one
    # thread and two): kept, since it costs nothing from memory where it does not help.
    SEQUENTIAL_AHEAD_BYTES = 6400
    # float32 rows twice as far: on one thread at d = 100, 0.73 -> 0.87 of the read probe
    # (d = 200: 0.90 -> 0.97); float64 gained nothing from it (medians of 7 rounds).
    SEQUENTIAL_AHEAD_BYTES_F32 = 12800
    # Rows of this many bytes or more are prefetched as a stream that keeps pace with the
    # reads (see read_ahead): their bursts would be whole rows long.  Measured against the
    # bursts (fraction of the read probe, one thread / two): float64 d = 1000 0.70 -> 0.72 /
    # 0.88 -> 0.96; d = 400 0.65 -> 0.77 / 0.89 -> 0.87 (better when memory is fast); d = 300
    # two threads 0.93 -> 0.83, so not below; float32 d = 1000 0.75 -> 0.89 / equal.
    STREAMED_ROW_BYTES = 3200
    CACHE_LINE_BYTES = 64
    # From this many values a call, float64 gradient sums go to a buffer placed like the rows
    # (see aligned_like): below it, allocating and adding the buffer costs more than vectors
    # across cache lines do (shuffled batches of 4 rows of 48 values: +21% an epoch).
    ALIGNED_SUMS_MIN_VALUES = 65536
    # Values of the read-ahead stream prefetched per step of a sweep (a step is
    # ROW_DOT_LANES values of four rows, two sweeps a group): the stream keeps pace.
    READ_AHEAD_STEP = 2 * ROW_DOT_LANES


cdef inline floating row_dot(const floating* x, const floating* w, Py_ssize_t d) noexcept nogil:
    """x·w, summed in ROW_DOT_LANES lanes (then pairwise) plus a running sum of the tail, in
    a fixed order: the order rows_dot4 sums each of its rows in.  Lanes are only indexed by
    constants so they stay in registers."""
    cdef floating lanes[ROW_DOT_LANES]
    cdef floating tail = 0
    cdef Py_ssize_t j = 0, k
    for k in range(ROW_DOT_LANES):
        lanes[k] = 0
    while j + ROW_DOT_LANES <= d:
        for k in range(ROW_DOT_LANES):
            lanes[k] = lanes[k] + x[j + k] * w[j + k]
        j = j + ROW_DOT_LANES
    while j < d:
        tail = tail + x[j] * w[j]
        j = j + 1
    return fold_lanes(lanes) + tail


cdef inline floating fold_lanes(floating* lanes) noexcept nogil:
    """The ROW_DOT_LANES lanes of a dot product added pairwise, in a fixed order."""
    cdef Py_ssize_t k
    for k in range(8):
        lanes[k] = lanes[k] + lanes[k + 8]
    for k in range(4):
        lanes[k] = lanes[k] + lanes[k + 4]
    return (lanes[0] + lanes[2]) + (lanes[1] + lanes[3])


cdef inline const char* rows_dot4(const floating* x0, const floating* x1, const floating* x2,
                                  const floating* x3, const floating* w, Py_ssize_t d,
                                  floating* dots, const char* ahead,
                                  const char* ahead_end) noexcept nogil:
    """dots = (x0·w, x1·w, x2·w, x3·w), each summed exactly as row_dot sums it, in one sweep
    that loads each wⱼ once for four rows and keeps four rows' lanes in flight.  Moves the
    read-ahead stream (see read_ahead) along as it goes and returns where it stopped."""
    cdef floating lanes0[ROW_DOT_LANES]
    cdef floating lanes1[ROW_DOT_LANES]
    cdef floating lanes2[ROW_DOT_LANES]
    cdef floating lanes3[ROW_DOT_LANES]
    cdef floating t0 = 0, t1 = 0, t2 = 0, t3 = 0, wj
    cdef Py_ssize_t j = 0, k
    for k in range(ROW_DOT_LANES):
        lanes0[k] = 0
        lanes1[k] = 0
        lanes2[k] = 0
        lanes3[k] = 0
    while j + ROW_DOT_LANES <= d:
        ahead = read_ahead(ahead, ahead_end, READ_AHEAD_STEP * sizeof(floating))
        for k in range(ROW_DOT_LANES):
            wj = w[j + k]
            lanes0[k] = lanes0[k] + x0[j + k] * wj
            lanes1[k] = lanes1[k] + x1[j + k] * wj
            lanes2[k] = lanes2[k] + x2[j + k] * wj
            lanes3[k] = lanes3[k] + x3[j + k] * wj
        j = j + ROW_DOT_LANES
    while j < d:
        wj = w[j]
        t0 = t0 + x0[j] * wj
        t1 = t1 + x1[j] * wj
        t2 = t2 + x2[j] * wj
        t3 = t3 + x3[j] * wj
        j = j + 1
    dots[0] = fold_lanes(lanes0) + t0
    dots[1] = fold_lanes(lanes1) + t1
    dots[2] = fold_lanes(lanes2) + t2
    dots[3] = fold_lanes(lanes3) + t3
    return ahead


cdef inline void add_terms4_between(
    accumulator* acc, floating c0, floating c1, floating c2, floating c3,
    const floating* x0, const floating* x1, const floating* x2, const floating* x3,
    Py_ssize_t lo, Py_ssize_t hi,
) noexcept nogil:
    """accⱼ += (c0·x0ⱼ + c1·x1ⱼ) + (c2·x2ⱼ + c3·x3ⱼ) for lo <= j < hi."""
    cdef Py_ssize_t j
    for j in range(lo, hi):
        acc[j] += (c0 * x0[j] + c1 * x1[j]) + (c2 * x2[j] + c3 * x3[j])


cdef inline const char* add_terms4(
    accumulator* acc, floating c0, floating c1, floating c2, floating c3,
    const floating* x0, const floating* x1, const floating* x2, const floating* x3,
    Py_ssize_t d, Py_ssize_t unaligned, const char* ahead, const char* ahead_end,
) noexcept nogil:
    """accⱼ += (c0·x0ⱼ + c1·x1ⱼ) + (c2·x2ⱼ + c3·x3ⱼ) for every j, moving the read-ahead
    stream along as rows_dot4 does; returns where it stopped.  The first `unaligned` values
    go on their own, so that the vectors from there on start on cache lines (the caller
    passes 0 unless the rows and acc then do; see aligned_like)."""
    cdef Py_ssize_t j = unaligned
    if ahead >= ahead_end and unaligned == 0:
        # Nothing to prefetch: one loop from 0, which the compiler vectorises whole (faster
        # in cache at d = 100 than steps of 16, or than a loop from a variable start).
        add_terms4_between(acc, c0, c1, c2, c3, x0, x1, x2, x3, 0, d)
        return ahead
    add_terms4_between(acc, c0, c1, c2, c3, x0, x1, x2, x3, 0, unaligned)
    if ahead >= ahead_end:
        add_terms4_between(acc, c0, c1, c2, c3, x0, x1, x2, x3, unaligned, d)
        return ahead
    while j + ROW_DOT_LANES <= d:
        ahead = read_ahead(ahead, ahead_end, READ_AHEAD_STEP * sizeof(floating))
        add_terms4_between(acc, c0, c1, c2, c3, x0, x1, x2, x3, j, j + ROW_DOT_LANES)
        j = j + ROW_DOT_LANES
    add_terms4_between(acc, c0, c1, c2, c3, x0, x1, x2, x3, j, d)
    return ahead


cdef inline floating short_row_dot(const floating* x, const floating* w,
                                   Py_ssize_t d) noexcept nogil:
    """x·w for rows of d < SHORT_ROW values, as classic SGD forms it: lane k sums, by muladd,
    the products at j ≡ k (mod SHORT_DOT_LANES) over whole steps of SHORT_DOT_LANES; the rest
    go to a running sum; then ((lane 0 + lane 1) + (lane 2 + lane 3)) + rest (just the rest
    when d < SHORT_DOT_LANES).  SGD waits for each row's dot product before its update, and
    one running sum was a chain of d multiply-adds (in cache, d = 10 / 20 / 31: 14.4 / 22.1 /
    32.5 ns a row, in lanes 11.1 / 15.4 / 19.8).  The shape of row_dot, kept apart: its lanes
    must be indexed by constants to stay in registers."""
    cdef floating lanes[SHORT_DOT_LANES]
    cdef floating rest = 0
    cdef Py_ssize_t j = 0, k
    for k in range(SHORT_DOT_LANES):
        lanes[k] = 0
    while j + SHORT_DOT_LANES <= d:
        for k in range(SHORT_DOT_LANES):
            lanes[k] = muladd(x[j + k], w[j + k], lanes[k])
        j = j + SHORT_DOT_LANES
    while j < d:
        rest = muladd(x[j], w[j], rest)
        j = j + 1
    return fold_short_lanes(lanes, rest, d)


cdef inline floating fold_short_lanes(const floating* lanes, floating rest,
                                      Py_ssize_t d) noexcept nogil:
    """short_row_dot's result from its SHORT_DOT_LANES lanes and the sum of the rest."""
    if d < SHORT_DOT_LANES:
        return rest
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + rest


cdef inline floating row_residual(const floating* x, floating target, const floating* theta,
                                  Py_ssize_t d) noexcept nogil:
    """r = x·w + b − y for one row (classic SGD's): rows of d ≥ SHORT_ROW summed as
    accumulate_rows sums them; shorter ones by short_row_dot (accumulate_rows' short rows
    differ from it in the last bits)."""
    cdef floating r
    if d < SHORT_ROW:
        r = short_row_dot(x, theta, d)
    else:
        r = row_dot(x, theta, d)
    return r + theta[d] - target


cdef inline bint is_finite_vector(const floating* v, Py_ssize_t n) noexcept nogil:
    """True if no entry is NaN or ±inf: vⱼ − vⱼ is 0 exactly when vⱼ is finite, NaN
    otherwise.  The tests are or-ed, not summed, so no chain of additions waits on the one
    before: the loop vectorises, and one update's θ is checked in a few cycles (a serial
    fold of summed lanes took ~15 ns an update at d = 10)."""
    cdef bint outside = False
    cdef Py_ssize_t j
    for j in range(n):
        outside = outside | ((v[j] - v[j]) != 0)
    return not outside


cdef inline void prefetch_bytes(const char* start, Py_ssize_t nbytes) noexcept nogil:
    """Prefetch, for reading, one address in every cache line of the nbytes at start."""
    GD_PREFETCH_SPAN(start, nbytes, GD_PREFETCH_LOCALITY)


cdef inline void prefetch_lines(const floating* x, Py_ssize_t count) noexcept nogil:
    """Prefetch, for reading, the cache lines that start within the count values at x."""
    prefetch_bytes(<const char*>x, count * <Py_ssize_t>sizeof(floating))


cdef inline const char* read_ahead(const char* cursor, const char* end,
                                   Py_ssize_t nbytes) noexcept nogil:
    """Prefetch the lines of the nbytes at cursor if cursor is short of end; return the
    cursor moved past them.

    Rows read in order are prefetched as one stream running ahead of the reads at the rate
    they go, a few lines each step of both sweeps over a group, rather than in bursts: the
    hardware prefetcher stops while the second sweep re-reads rows from cache, and a burst
    fills the core's miss buffers and stalls it."""
    if cursor < end:
        prefetch_bytes(cursor, nbytes)
        return cursor + nbytes
    return cursor


cdef inline void* aligned_like(const void* like, Py_ssize_t nbytes, void** block) noexcept nogil:
    """nbytes of zeroed memory starting at the same place within a cache line as `like`, or
    NULL; *block gets what to free.

    Where every group's first row starts at one place in a cache line (see
    values_before_line), a gradient buffer placed there lets the gradient sweep load the
    rows and load and store the buffer in vectors on cache lines (see add_terms4).  Vectors
    across two lines cost the sweep ~13% from memory at d = 1000 (NumPy's large arrays start
    16 bytes into a line).  Only the loads and stores move: every sum is the same."""
    cdef char* start = <char*>calloc(nbytes + CACHE_LINE_BYTES, 1)
    block[0] = start
    if start == NULL:
        return NULL
    # Unsigned arithmetic wraps modulo a multiple of the line size, so this is the offset.
    return start + (<size_t>like - <size_t>start) % CACHE_LINE_BYTES


cdef inline Py_ssize_t values_before_line(const floating* X, const floating* first_row,
                                         Py_ssize_t d, bint gathered) noexcept nogil:
    """How many values of first_row come before a cache line starts, when every group's first
    row starts at that place in a line (rows taken in order four at a time, where four rows
    are whole lines; gathered rows, where one row is); -1 when not."""
    cdef Py_ssize_t row_bytes = d * <Py_ssize_t>sizeof(floating)
    cdef Py_ssize_t before
    if ((row_bytes if gathered else 4 * row_bytes) % CACHE_LINE_BYTES != 0
            or <size_t>X % sizeof(floating) != 0):
        return -1
    before = (CACHE_LINE_BYTES - <size_t>first_row % CACHE_LINE_BYTES) % CACHE_LINE_BYTES
    return min(before // <Py_ssize_t>sizeof(floating), d)


cdef inline void prefetch_row(const floating* x, Py_ssize_t d) noexcept nogil:
    """Prefetch a row for reading, its last line included when the row is not aligned."""
    prefetch_lines(x, d)
    GD_PREFETCH(<const char*>x + d * <Py_ssize_t>sizeof(floating) - 1)


cdef inline void accumulate_rows(
    const floating* X, const floating* y, const floating* sample_weight,
    const floating* theta, Py_ssize_t d,
    const Py_ssize_t* rows, Py_ssize_t rows_end, Py_ssize_t start, Py_ssize_t stop,
    double* acc,
) noexcept nogil:
    """Add the sums of rows[start:stop] (or rows start..stop-1 when rows is NULL) to acc.

    theta = (w₀ … w_{d−1}, b); sample_weight is NULL for unit weights; rows_end is X's
    number of rows (the permutation's length when rows is given), rows or not: the
    short-row kernels read each row as a padded vector and copy the rows whose vector would
    run past rows_end · d values, so a smaller rows_end only costs copies and a larger one
    reads past X.  Rows go four at a time: four residuals, then one sweep adding all four
    rows' terms to acc, so acc is loaded and stored once per four rows.  With rows given,
    the rows PREFETCH_AHEAD places ahead are prefetched, across batch ends.
    """
    if floating is double and d <= GD_SHORT_ROWS_MAX_D_F64:
        gd_short_rows_f64(X, y, sample_weight, theta, d, rows, rows_end, start, stop, acc,
                          PREFETCH_AHEAD)
    elif floating is float and d <= GD_SHORT_ROWS_MAX_D_F32:
        gd_short_rows_f32(X, y, sample_weight, theta, d, rows, rows_end, start, stop, acc,
                          PREFETCH_AHEAD)
    elif rows == NULL and sample_weight == NULL:
        rows_in_order_or_gathered(X, y, sample_weight, theta, d, rows, rows_end, start, stop,
                                  acc, False, False)
    elif rows == NULL:
        rows_in_order_or_gathered(X, y, sample_weight, theta, d, rows, rows_end, start, stop,
                                  acc, False, True)
    elif sample_weight == NULL:
        rows_in_order_or_gathered(X, y, sample_weight, theta, d, rows, rows_end, start, stop,
                                  acc, True, False)
    else:
        rows_in_order_or_gathered(X, y, sample_weight, theta, d, rows, rows_end, start, stop,
                                  acc, True, True)


cdef inline void rows_in_order_or_gathered(
    const floating* X, const floating* y, const floating* sample_weight,
    const floating* theta, Py_ssize_t d,
    const Py_ssize_t* rows, Py_ssize_t rows_end, Py_ssize_t start, Py_ssize_t stop,
    double* acc, const bint gathered, const bint weighted,
) noexcept nogil:
    """accumulate_rows for rows longer than the short-row C kernels take (every row where the
    compiler has no vector extensions), called with gathered (rows given) and weighted
    (sample_weight given) as constants.  GCC (-O3) keeps one copy of it for all four cases
    and tests the flags as it goes (branches that always go one way); a copy for each case,
    forced through a fused tag type, measured no faster (d = 100, one and two threads)."""
    cdef Py_ssize_t k, j, group, i0, i1, i2, i3
    cdef const floating* x0
    cdef const floating* x1
    cdef const floating* x2
    cdef const floating* x3
    cdef floating r0, r1, r2, r3, c0, c1, c2, c3
    cdef floating dots[4]
    cdef double s0, s1, s2, s3
    cdef floating b = theta[d]
    cdef floating* block_acc = NULL
    cdef Py_ssize_t rows_in_block = 0
    cdef Py_ssize_t row_bytes = d * <Py_ssize_t>sizeof(floating)
    # float64 rows' gradient terms go to grad_sums: acc, or a buffer placed like the rows
    # (see aligned_like) whose first `unaligned` values come before a cache line starts.
    cdef double* grad_sums = acc
    cdef void* buffer_block = NULL
    cdef const floating* first_row = X if gathered else X + start * d
    cdef Py_ssize_t unaligned = 0, before_line = -1
    # Rows read in order are prefetched ahead of use: short rows in two bursts a group, rows
    # ahead_rows ahead; rows of STREAMED_ROW_BYTES or more as a read-ahead stream (see
    # read_ahead), group k's share the 4 rows from the next group on.
    cdef bint streamed = not gathered and row_bytes >= STREAMED_ROW_BYTES
    cdef Py_ssize_t ahead_bytes = (SEQUENTIAL_AHEAD_BYTES_F32 if floating is float
                                   else SEQUENTIAL_AHEAD_BYTES)
    cdef Py_ssize_t ahead_rows = (ahead_bytes + row_bytes - 1) // row_bytes
    cdef const char* rows_end_address = <const char*>(X + stop * d)
    cdef const char* ahead = NULL
    cdef const char* ahead_end = NULL
    if ahead_rows < 4:
        ahead_rows = 4      # at least the next group, not rows already being read
    if floating is float:
        # float32 products are summed in float32 over blocks of rows, then in float64: the
        # conversions to float64 would otherwise cost more than reading the data.
        if stop - start >= FLOAT_BLOCK:
            block_acc = <floating*>aligned_like(first_row, row_bytes, &buffer_block)
            before_line = values_before_line(X, first_row, d, gathered)
    elif (stop - start) * d >= ALIGNED_SUMS_MIN_VALUES:
        before_line = values_before_line(X, first_row, d, gathered)
        if before_line >= 0:
            grad_sums = <double*>aligned_like(first_row, row_bytes, &buffer_block)
            if grad_sums == NULL:
                grad_sums = acc
    if buffer_block != NULL and before_line > 0:
        unaligned = before_line
    k = start
    while k < stop:
        group = stop - k if stop - k < 4 else 4
        if gathered:
            for j in range(group):
                if k + j + PREFETCH_AHEAD < rows_end:
                    prefetch_row(X + rows[k + j + PREFETCH_AHEAD] * d, d)
            i0 = rows[k]
            i1 = rows[k + 1] if group > 1 else i0
            i2 = rows[k + 2] if group > 2 else i0
            i3 = rows[k + 3] if group > 3 else i0
        else:
            # Consecutive groups cover every line: no need for prefetch_row's last one.
            if streamed and k + 4 < stop:
                # (the next group's first byte; written from this group's rows, GCC allocates
                # this function's registers so that two threads read d = 100 rows at 0.93 of
                # the probe, against 0.88 with X + (k + 4) * d: measured, four alternations)
                ahead = <const char*>(X + k * d) + 4 * row_bytes
                ahead_end = min(ahead + 4 * row_bytes, rows_end_address)
            elif streamed:
                ahead_end = ahead
            elif k + ahead_rows + group <= stop:
                # Half the group ahead now, half between the two sweeps: one burst fills
                # the core's miss buffers and stalls it (+4% at d = 100, one thread).
                prefetch_lines(X + (k + ahead_rows) * d, (group // 2) * d)
            i0 = k
            i1 = k + 1 if group > 1 else i0
            i2 = k + 2 if group > 2 else i0
            i3 = k + 3 if group > 3 else i0
        x0 = X + i0 * d
        x1 = X + i1 * d
        x2 = X + i2 * d
        x3 = X + i3 * d
        # A missing row of a short last group repeats row 0 with weight 0.
        s0 = sample_weight[i0] if weighted else 1.0
        s1 = (sample_weight[i1] if weighted else 1.0) if group > 1 else 0.0
        s2 = (sample_weight[i2] if weighted else 1.0) if group > 2 else 0.0
        s3 = (sample_weight[i3] if weighted else 1.0) if group > 3 else 0.0
        if d < SHORT_ROW:
            # Short rows: four running sums, one per row, are four independent chains.
            r0 = r1 = r2 = r3 = 0
            for j in range(d):
                r0 = r0 + x0[j] * theta[j]
                r1 = r1 + x1[j] * theta[j]
                r2 = r2 + x2[j] * theta[j]
                r3 = r3 + x3[j] * theta[j]
        elif group == 4:
            ahead = rows_dot4(x0, x1, x2, x3, theta, d, dots, ahead, ahead_end)
            r0 = dots[0]
            r1 = dots[1]
            r2 = dots[2]
            r3 = dots[3]
        else:
            r0 = row_dot(x0, theta, d)
            r1 = row_dot(x1, theta, d) if group > 1 else 0
            r2 = row_dot(x2, theta, d) if group > 2 else 0
            r3 = 0
        r0 = r0 + b - y[i0]
        r1 = r1 + b - y[i1] if group > 1 else 0
        r2 = r2 + b - y[i2] if group > 2 else 0
        r3 = r3 + b - y[i3] if group > 3 else 0
        c0 = <floating>(s0 * r0)
        c1 = <floating>(s1 * r1)
        c2 = <floating>(s2 * r2)
        c3 = <floating>(s3 * r3)
        if not gathered and not streamed and k + ahead_rows + group <= stop:
            prefetch_lines(X + (k + ahead_rows + group // 2) * d, (group - group // 2) * d)
        # The four rows' terms are added in the data's precision, then into float64 (for
        # float32 data, through a float32 block sum of up to FLOAT_BLOCK rows first).
        if block_acc != NULL:
            ahead = add_terms4(block_acc, c0, c1, c2, c3, x0, x1, x2, x3, d, unaligned,
                               ahead, ahead_end)
            rows_in_block = rows_in_block + group
            if rows_in_block >= FLOAT_BLOCK:
                for j in range(d):
                    acc[j] += block_acc[j]
                    block_acc[j] = 0
                rows_in_block = 0
        else:
            ahead = add_terms4(grad_sums, c0, c1, c2, c3, x0, x1, x2, x3, d, unaligned,
                               ahead, ahead_end)
        if ahead < ahead_end:
            prefetch_bytes(ahead, ahead_end - ahead)
        acc[d + SLOT_RESIDUAL] += (<double>c0 + c1) + (<double>c2 + c3)
        acc[d + SLOT_SQUARES] += (<double>c0 * r0 + <double>c1 * r1) + (<double>c2 * r2 + <double>c3 * r3)
        acc[d + SLOT_WEIGHT] += (s0 + s1) + (s2 + s3)
        k = k + group
    if block_acc != NULL:
        for j in range(d):
            acc[j] += block_acc[j]
    elif buffer_block != NULL:
        for j in range(d):
            acc[j] += grad_sums[j]
    if buffer_block != NULL:
        free(buffer_block)


cdef inline double sum_of_squares(const floating* w, Py_ssize_t d) noexcept nogil:
    """Σ wⱼ² in float64: ROW_DOT_LANES lanes (then pairwise) plus a running sum of the tail.
    Classic SGD adds l2's term to every row's loss, so the chain of additions is kept short
    (four lanes were d/4 long: 40.7 -> 32.9 ns a row at d = 100 in cache with l2)."""
    cdef double lanes[ROW_DOT_LANES]
    cdef double tail = 0.0
    cdef Py_ssize_t j = 0, k
    for k in range(ROW_DOT_LANES):
        lanes[k] = 0.0
    while j + ROW_DOT_LANES <= d:
        for k in range(ROW_DOT_LANES):
            lanes[k] = lanes[k] + <double>w[j + k] * w[j + k]
        j = j + ROW_DOT_LANES
    while j < d:
        tail = tail + <double>w[j] * w[j]
        j = j + 1
    return fold_lanes(lanes) + tail


cdef inline double sum_of_abs(const floating* w, Py_ssize_t d) noexcept nogil:
    """Σ |wⱼ| in float64, in the order of sum_of_squares (l1: 56 -> 41 ns a row)."""
    cdef double lanes[ROW_DOT_LANES]
    cdef double tail = 0.0
    cdef Py_ssize_t j = 0, k
    for k in range(ROW_DOT_LANES):
        lanes[k] = 0.0
    while j + ROW_DOT_LANES <= d:
        for k in range(ROW_DOT_LANES):
            lanes[k] = lanes[k] + fabs(<double>w[j + k])
        j = j + ROW_DOT_LANES
    while j < d:
        tail = tail + fabs(<double>w[j])
        j = j + 1
    return fold_lanes(lanes) + tail


cdef inline double objective_and_gradient(
    const double* sums, const floating* theta, Py_ssize_t d,
    double l2, double l1, bint fit_intercept, floating* grad,
) noexcept nogil:
    """From a block's sums, the gradient g = (∇w, ∂b) into grad and the objective

        J = 1/(2S)·Σ sᵢrᵢ² + (l2/2)·‖w‖² + l1·‖w‖₁,   ∇w = 1/S·Σ sᵢrᵢxᵢ + l2·w,   ∂b = 1/S·Σ sᵢrᵢ

    (∂b is 0 when the intercept is not fitted; the l1 term is handled by a proximal step)."""
    cdef double S = sums[d + SLOT_WEIGHT]
    cdef double inv_S = 1.0 / S
    cdef Py_ssize_t j
    if inv_S > DBL_MAX:
        # A batch of subnormal weights only (validation brings the largest weight near 1):
        # 1/S overflows, S itself divides.
        for j in range(d):
            grad[j] = <floating>(sums[j] / S + l2 * theta[j])
        grad[d] = <floating>(sums[d + SLOT_RESIDUAL] / S) if fit_intercept else 0
    else:
        for j in range(d):
            grad[j] = <floating>(sums[j] * inv_S + l2 * theta[j])
        grad[d] = <floating>(sums[d + SLOT_RESIDUAL] * inv_S) if fit_intercept else 0
    return with_penalties(sums[d + SLOT_SQUARES] / (2.0 * S), theta, d, l2, l1)


cdef inline double with_penalties(double loss, const floating* w, Py_ssize_t d, double l2,
                                  double l1) noexcept nogil:
    """loss + (l2/2)·‖w‖² + l1·‖w‖₁, added in that order.  The penalty sums are serial
    reductions: each is skipped when its weight is 0."""
    if l2 > 0.0:
        loss += 0.5 * l2 * sum_of_squares(w, d)
    if l1 > 0.0:
        loss += l1 * sum_of_abs(w, d)
    return loss


cdef inline void row_gradient(const floating* x, floating scaled_residual, double inv_weight,
                              const floating* theta, Py_ssize_t d, double l2,
                              bint fit_intercept, floating* grad) noexcept nogil:
    """∇J on the batch of one row of weight s, given s·r and 1/s:

        ∇w = (s·r·x)/s + l2·w,   ∂b = (s·r)/s   (0 when the intercept is not fitted),

    the values objective_and_gradient forms from that row's sums (s is applied and divided
    out as there; without weights and l2 the ·1 and + 0·w are left out, same values)."""
    cdef Py_ssize_t j
    if inv_weight == 1.0 and l2 == 0.0:
        for j in range(d):
            grad[j] = scaled_residual * x[j]
    else:
        for j in range(d):
            grad[j] = <floating>((scaled_residual * x[j]) * inv_weight + l2 * theta[j])
    grad[d] = <floating>(scaled_residual * inv_weight) if fit_intercept else 0


cdef inline double stationarity(const floating* grad, const floating* theta, Py_ssize_t d,
                                double l1, bint fit_intercept) noexcept nogil:
    """‖∇J‖∞; with l1 > 0, of the minimum-norm subgradient (soft-threshold where wⱼ = 0).
    NaN if an entry is NaN (so that ‖∇J‖∞ ≤ gtol is false, as for NumPy's max)."""
    cdef double worst = 0.0, g
    cdef Py_ssize_t j
    for j in range(d):
        g = grad[j]
        if g != g:
            return g
        if l1 > 0:
            if theta[j] > 0:
                g = g + l1
            elif theta[j] < 0:
                g = g - l1
            else:
                g = g - l1 if g > l1 else (g + l1 if g < -l1 else 0.0)
        if g < 0:
            g = -g
        if g > worst:
            worst = g
    if fit_intercept:
        g = grad[d]
        if g != g:
            return g
        if g < 0:
            g = -g
        if g > worst:
            worst = g
    return worst
