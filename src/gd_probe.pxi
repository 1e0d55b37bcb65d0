# Included by _core.pyx: the read-bandwidth probe of gdcore bench (stream_sum).

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
