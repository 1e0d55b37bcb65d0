/* The read-bandwidth probe's sum (gdcore._core.stream_sum): four vector accumulators of 8
 * doubles or 16 floats, so that the additions never limit the read.  Written as Cython
 * lanes (a loop over 16 scalars) GCC left them scalar, ~49 GB/s a thread from L2: about
 * what two threads get from this project's machines' memory, so the yardstick could read
 * low just when the memory is fast.  Without AVX-512 the compiler splits the vectors.
 *
 * ahead > 0 (in values): each step's lines are also prefetched that far ahead, with the
 * kernels' hint (GD_PREFETCH_LOCALITY) or, if nontemporal, the non-temporal one.
 */
#ifndef GD_PROBE_H
#define GD_PROBE_H

#include <string.h>
#include "gd_prefetch.h"

typedef double gd_probe_f64x8 __attribute__((vector_size(64)));
typedef float gd_probe_f32x16 __attribute__((vector_size(64)));

#define GD_PROBE_SUM(NAME, T, VT, LANES)                                                    \
static inline double NAME(const T *values, Py_ssize_t n, Py_ssize_t ahead, int nontemporal) \
{                                                                                           \
    VT a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, v;                                           \
    const Py_ssize_t step = 4 * LANES, step_bytes = 4 * LANES * (Py_ssize_t)sizeof(T);      \
    Py_ssize_t i = 0;                                                                       \
    int k;                                                                                  \
    double total = 0.0;                                                                     \
    for (; i + step <= n; i += step) {                                                      \
        if (ahead > 0 && i + ahead + step <= n) {                                           \
            if (nontemporal)                                                                \
                GD_PREFETCH_SPAN(values + i + ahead, step_bytes, 0);                        \
            else                                                                            \
                GD_PREFETCH_SPAN(values + i + ahead, step_bytes, GD_PREFETCH_LOCALITY);     \
        }                                                                                   \
        memcpy(&v, values + i, sizeof v);             a0 += v;                              \
        memcpy(&v, values + i + LANES, sizeof v);     a1 += v;                              \
        memcpy(&v, values + i + 2 * LANES, sizeof v); a2 += v;                              \
        memcpy(&v, values + i + 3 * LANES, sizeof v); a3 += v;                              \
    }                                                                                       \
    a0 = (a0 + a1) + (a2 + a3);                                                             \
    for (k = 0; k < LANES; k++)                                                             \
        total += a0[k];                                                                     \
    for (; i < n; i++)                                                                      \
        total += values[i];                                                                 \
    return total;                                                                           \
}

GD_PROBE_SUM(gd_probe_sum_f64, double, gd_probe_f64x8, 8)
GD_PROBE_SUM(gd_probe_sum_f32, float, gd_probe_f32x16, 16)

#endif
