/* Classic SGD's row (batch_size=1, no momentum, weights or penalties) for float64 rows of
 * 32 to 135 values, where AVX-512 is there: gdcore._core's sgd_rows hands such rows to
 * gd_sgd_row_f64.
 *
 * Why C: a shuffled epoch waits on random rows, and how many of them the core has in flight
 * depends on how much code stands between one row's reads and the next's.  With the row's
 * width known at compile time GCC loads the whole row at once, keeps it in registers for the
 * update and has no loop left to run: a shuffled 1,000,000 x 100 epoch in C took 70 to 86 ms
 * that way against 130 to 150 ms with the width a run-time value (Zen 4; gdcore's own loops
 * 135 to 150 ms).  So there is one copy of the row for each number of whole 8-value vectors
 * in it (4 to 16), chosen per row; the values past the last whole vector go one at a time.
 *
 * The values are those of the Cython loops, bit for bit: x.w summed in 16 lanes over whole
 * steps of 16 values (two vectors), the rest in one running sum, the lanes folded pairwise
 * (gd_kernel.row_dot and fold_lanes); r = (x.w + b) - y; then w' = w - lr*(r*x), written with
 * the same expressions, so GCC contracts them to the same FMAs.  A test holds the two to the
 * same bits.
 */
#ifndef GD_SGD_ROWS_H
#define GD_SGD_ROWS_H

#include <math.h>
#include <stddef.h>
#include <string.h>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__AVX512F__) \
    && !defined(GD_SGD_ROWS_USE_LOOPS)
#define GD_SGD_WIDE_MIN_D 32
#define GD_SGD_WIDE_MAX_D 135

typedef double gd_sgd_f64x8 __attribute__((vector_size(64)));

static inline gd_sgd_f64x8 gd_sgd_load(const double *p)
{
    gd_sgd_f64x8 v;
    memcpy(&v, p, sizeof v);        /* an unaligned vector load */
    return v;
}

/* r = x.w + b - y for a row of d values (8*NF <= d < 8*NF + 8), and, if its loss r^2/2 is
 * finite, w_next[j] = w[j] - lr*(r*x[j]) for j < d (the intercept is left to the caller).
 * With a non-finite loss nothing is written: the caller stops there and may still need the
 * buffer's contents (the parameters before the last update). */
#define GD_SGD_ROW(NF)                                                                      \
static inline __attribute__((always_inline)) double gd_sgd_row_##NF(                       \
    const double *x, double target, const double *w, double *w_next, Py_ssize_t d,         \
    double lr)                                                                              \
{                                                                                           \
    gd_sgd_f64x8 xv[NF];                                                                    \
    gd_sgd_f64x8 lanes_lo = {0}, lanes_hi = {0}, folded, scaled, rate;                      \
    double tail = 0, r;                                                                     \
    Py_ssize_t j;                                                                           \
    _Pragma("GCC unroll 16")                                                                \
    for (int v = 0; v < NF; v++)                                                            \
        xv[v] = gd_sgd_load(x + 8 * v);                                                     \
    _Pragma("GCC unroll 8")                                                                 \
    for (int step = 0; step < NF / 2; step++) {                                             \
        lanes_lo = lanes_lo + xv[2 * step] * gd_sgd_load(w + 16 * step);                   \
        lanes_hi = lanes_hi + xv[2 * step + 1] * gd_sgd_load(w + 16 * step + 8);           \
    }                                                                                       \
    for (j = 16 * (NF / 2); j < d; j++)                                                     \
        tail = tail + x[j] * w[j];                                                          \
    folded = lanes_lo + lanes_hi;                                                           \
    r = ((folded[0] + folded[4]) + (folded[2] + folded[6]))                                 \
        + ((folded[1] + folded[5]) + (folded[3] + folded[7]));                              \
    r = r + tail;                                                                           \
    r = r + w[d] - target;                                                                  \
    if (!isfinite((r * r) * 0.5))                                                           \
        return r;                                                                           \
    scaled = (gd_sgd_f64x8){0} + r;                                                         \
    rate = (gd_sgd_f64x8){0} + lr;                                                          \
    _Pragma("GCC unroll 16")                                                                \
    for (int v = 0; v < NF; v++) {                                                          \
        gd_sgd_f64x8 updated = gd_sgd_load(w + 8 * v) - rate * (scaled * xv[v]);            \
        memcpy(w_next + 8 * v, &updated, sizeof updated);                                   \
    }                                                                                       \
    for (j = 8 * NF; j < d; j++)                                                            \
        w_next[j] = w[j] - lr * (r * x[j]);                                                 \
    return r;                                                                               \
}

GD_SGD_ROW(4) GD_SGD_ROW(5) GD_SGD_ROW(6) GD_SGD_ROW(7) GD_SGD_ROW(8) GD_SGD_ROW(9)
GD_SGD_ROW(10) GD_SGD_ROW(11) GD_SGD_ROW(12) GD_SGD_ROW(13) GD_SGD_ROW(14) GD_SGD_ROW(15)
GD_SGD_ROW(16)

static inline double gd_sgd_row_f64(const double *x, double target, const double *w,
                                    double *w_next, Py_ssize_t d, double lr)
{
    switch (d >> 3) {
    case 4: return gd_sgd_row_4(x, target, w, w_next, d, lr);
    case 5: return gd_sgd_row_5(x, target, w, w_next, d, lr);
    case 6: return gd_sgd_row_6(x, target, w, w_next, d, lr);
    case 7: return gd_sgd_row_7(x, target, w, w_next, d, lr);
    case 8: return gd_sgd_row_8(x, target, w, w_next, d, lr);
    case 9: return gd_sgd_row_9(x, target, w, w_next, d, lr);
    case 10: return gd_sgd_row_10(x, target, w, w_next, d, lr);
    case 11: return gd_sgd_row_11(x, target, w, w_next, d, lr);
    case 12: return gd_sgd_row_12(x, target, w, w_next, d, lr);
    case 13: return gd_sgd_row_13(x, target, w, w_next, d, lr);
    case 14: return gd_sgd_row_14(x, target, w, w_next, d, lr);
    case 15: return gd_sgd_row_15(x, target, w, w_next, d, lr);
    default: return gd_sgd_row_16(x, target, w, w_next, d, lr);
    }
}

#else
/* No AVX-512 (or not GCC/Clang): the Cython loops take every row. */
#define GD_SGD_WIDE_MIN_D 1
#define GD_SGD_WIDE_MAX_D 0
static inline double gd_sgd_row_f64(const double *x, double target, const double *w,
                                    double *w_next, Py_ssize_t d, double lr)
{
    (void)x; (void)w; (void)w_next; (void)d; (void)lr;
    return target;
}
#endif

#endif /* GD_SGD_ROWS_H */
