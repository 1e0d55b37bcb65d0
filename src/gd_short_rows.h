/* The fused loss + gradient pass for short rows (d < 32): gd_kernel.accumulate_rows hands
 * such blocks to gd_short_rows_f64 / gd_short_rows_f32 when GD_SHORT_ROWS_VECTORISED is 1.
 *
 * Why C: a short row's dot product is a handful of vector multiplies and one horizontal
 * sum, and the gradient sums fit in a few vector registers for the whole block.  GCC does
 * not find that shape from plain loops over d (it keeps the sums on the stack or goes
 * scalar), so it is written here with GCC/Clang vector extensions, which compile to
 * AVX-512, AVX2 or SSE (or NEON) as the target allows.  Other compilers get
 * GD_SHORT_ROWS_VECTORISED 0 and the Cython loops (as does -DGD_SHORT_ROWS_USE_LOOPS).
 *
 * Each row is read as a padded vector of WIDTH values (8, 16 or 32): the values past its end
 * are the next row's, and they meet zeros in the padded w (X is finite, so 0*x = 0 exactly)
 * and land in lanes >= d of the gradient sums, which are dropped.  A row whose padded
 * vector would run past the end of X is copied, zero-padded, first, so nothing outside X is
 * read.  Sums are those of accumulate_rows: acc[j] += s_i r_i x_ij (j < d), then
 * acc[d] += s_i r_i, acc[d+1] += s_i r_i^2, acc[d+2] += s_i; row arithmetic in the data's
 * precision, sums over rows in float64 (float32 gradient sums go through float32 block sums
 * of GD_SHORT_FLOAT_BLOCK rows first).
 */
#ifndef GD_SHORT_ROWS_H
#define GD_SHORT_ROWS_H

#include <stddef.h>
#include <string.h>

#define GD_SHORT_ROWS_PARAMS(T)                                                             \
    const T *X, const T *y, const T *sample_weight, const T *theta, Py_ssize_t d,           \
    const Py_ssize_t *rows, Py_ssize_t rows_end, Py_ssize_t start, Py_ssize_t stop,          \
    double *acc, Py_ssize_t prefetch_ahead
#define GD_SHORT_ROWS_ARGS X, y, sample_weight, theta, d, rows, rows_end, start, stop, acc,   \
    prefetch_ahead

#if (defined(__GNUC__) || defined(__clang__)) && !defined(GD_SHORT_ROWS_USE_LOOPS)
#define GD_SHORT_ROWS_VECTORISED 1
#define GD_SHORT_FLOAT_BLOCK 64
/* Rows in order are also fetched this far ahead: the hardware prefetcher alone left a
 * single thread at ~70% of its read bandwidth on 10-value rows (measured: ~85% with it). */
#define GD_STREAM_AHEAD_BYTES 4096

typedef double gd_f64x8 __attribute__((vector_size(64)));
typedef double gd_f64x4 __attribute__((vector_size(32)));
typedef float gd_f32x16 __attribute__((vector_size(64)));
typedef float gd_f32x8 __attribute__((vector_size(32)));

/* Horizontal sums in a fixed pairwise order: for 8 lanes ((v0+v4) + (v2+v6)) +
 * ((v1+v5) + (v3+v7)), the same pattern for 4 and 16.  (Written with subscripts they run
 * as fast as the same sums through __builtin_shufflevector, measured, on any GCC.) */
static inline double gd_hsum_f64x4(gd_f64x4 v)
{
    return (v[0] + v[2]) + (v[1] + v[3]);
}

static inline double gd_hsum_f64x8(gd_f64x8 v)
{
    return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

static inline float gd_hsum_f32x8(gd_f32x8 v)
{
    return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

static inline float gd_hsum_f32x16(gd_f32x16 v)
{
    float a = (v[0] + v[8]) + (v[4] + v[12]), b = (v[2] + v[10]) + (v[6] + v[14]);
    float c = (v[1] + v[9]) + (v[5] + v[13]), e = (v[3] + v[11]) + (v[7] + v[15]);
    return (a + b) + (c + e);
}

/* One function per (type, number of vectors per row); N_VECTORS is a constant in each. */
#define GD_DEFINE_SHORT_ROWS(NAME, T, VT, LANES, N_VECTORS, HSUM, IS_FLOAT)                  \
static void NAME(GD_SHORT_ROWS_PARAMS(T))                                                    \
{                                                                                            \
    enum { WIDTH = LANES * N_VECTORS };                                                      \
    T padded[WIDTH];                                                                         \
    VT w[N_VECTORS], lanes[N_VECTORS], row[N_VECTORS], products;                             \
    double lane_sums[WIDTH];                                                                 \
    double residual_sum = 0.0, square_sum = 0.0, weight_sum = 0.0, s;                        \
    const Py_ssize_t last_padded_start = rows_end * d - WIDTH;                               \
    const T b = theta[d];                                                                    \
    const T *source;                                                                         \
    Py_ssize_t k, i, j, q, rows_in_block = 0;                                                \
    T r, c;                                                                                  \
    for (j = 0; j < WIDTH; j++) {                                                            \
        padded[j] = j < d ? theta[j] : (T)0;                                                 \
        lane_sums[j] = 0.0;                                                                  \
    }                                                                                        \
    memcpy(w, padded, sizeof w);                                                             \
    for (q = 0; q < N_VECTORS; q++)                                                          \
        lanes[q] = (VT){0};                                                                  \
    for (k = start; k < stop; k++) {                                                         \
        if (rows != NULL) {                                                                  \
            if (k + prefetch_ahead < rows_end) {                                             \
                const char *ahead = (const char *)(X + rows[k + prefetch_ahead] * d);        \
                for (j = 0; j < (Py_ssize_t)sizeof row; j += 64)                             \
                    __builtin_prefetch(ahead + j, 0, 0);                                     \
                __builtin_prefetch(ahead + sizeof row - 1, 0, 0);                            \
            }                                                                                \
            i = rows[k];                                                                     \
        } else {                                                                             \
            i = k;                                                                           \
            __builtin_prefetch((const char *)(X + i * d) + GD_STREAM_AHEAD_BYTES, 0, 0);     \
        }                                                                                    \
        source = X + i * d;                                                                  \
        if (i * d > last_padded_start) {                                                     \
            for (j = 0; j < WIDTH; j++)                                                      \
                padded[j] = j < d ? source[j] : (T)0;                                        \
            source = padded;                                                                 \
        }                                                                                    \
        for (q = 0; q < N_VECTORS; q++)                                                      \
            memcpy(&row[q], source + q * LANES, sizeof row[q]);                              \
        products = row[0] * w[0];                                                            \
        for (q = 1; q < N_VECTORS; q++)                                                      \
            products += row[q] * w[q];                                                       \
        r = HSUM(products) + b - y[i];                                                       \
        s = sample_weight != NULL ? (double)sample_weight[i] : 1.0;                          \
        c = (T)(s * r);                                                                      \
        for (q = 0; q < N_VECTORS; q++)                                                      \
            lanes[q] += c * row[q];                                                          \
        residual_sum += c;                                                                   \
        square_sum += (double)c * r;                                                         \
        weight_sum += s;                                                                     \
        if (IS_FLOAT && ++rows_in_block == GD_SHORT_FLOAT_BLOCK) {                           \
            for (q = 0; q < N_VECTORS; q++) {                                                \
                for (j = 0; j < LANES; j++)                                                  \
                    lane_sums[q * LANES + j] += lanes[q][j];                                 \
                lanes[q] = (VT){0};                                                          \
            }                                                                                \
            rows_in_block = 0;                                                               \
        }                                                                                    \
    }                                                                                        \
    for (q = 0; q < N_VECTORS; q++)                                                          \
        for (j = 0; j < LANES; j++)                                                          \
            lane_sums[q * LANES + j] += lanes[q][j];                                         \
    for (j = 0; j < d; j++)                                                                  \
        acc[j] += lane_sums[j];                                                              \
    acc[d] += residual_sum;                                                                  \
    acc[d + 1] += square_sum;                                                                \
    acc[d + 2] += weight_sum;                                                                \
}

/* Widths 8 to 32: as few vectors as cover d, in 4- or 8-lane vectors (on a CPU that splits
 * 512-bit operations in two, a 12-value row in three 4-lane vectors costs 3 halves, not 4). */
GD_DEFINE_SHORT_ROWS(gd_short_rows_f64_8, double, gd_f64x8, 8, 1, gd_hsum_f64x8, 0)
GD_DEFINE_SHORT_ROWS(gd_short_rows_f64_12, double, gd_f64x4, 4, 3, gd_hsum_f64x4, 0)
GD_DEFINE_SHORT_ROWS(gd_short_rows_f64_16, double, gd_f64x8, 8, 2, gd_hsum_f64x8, 0)
GD_DEFINE_SHORT_ROWS(gd_short_rows_f64_24, double, gd_f64x8, 8, 3, gd_hsum_f64x8, 0)
GD_DEFINE_SHORT_ROWS(gd_short_rows_f64_32, double, gd_f64x8, 8, 4, gd_hsum_f64x8, 0)
GD_DEFINE_SHORT_ROWS(gd_short_rows_f32_8, float, gd_f32x8, 8, 1, gd_hsum_f32x8, 1)
GD_DEFINE_SHORT_ROWS(gd_short_rows_f32_16, float, gd_f32x16, 16, 1, gd_hsum_f32x16, 1)
GD_DEFINE_SHORT_ROWS(gd_short_rows_f32_24, float, gd_f32x8, 8, 3, gd_hsum_f32x8, 1)
GD_DEFINE_SHORT_ROWS(gd_short_rows_f32_32, float, gd_f32x16, 16, 2, gd_hsum_f32x16, 1)

/* Rows of d < 32 values (d >= 1). */
static inline void gd_short_rows_f64(GD_SHORT_ROWS_PARAMS(double))
{
    if (d <= 8)
        gd_short_rows_f64_8(GD_SHORT_ROWS_ARGS);
    else if (d <= 12)
        gd_short_rows_f64_12(GD_SHORT_ROWS_ARGS);
    else if (d <= 16)
        gd_short_rows_f64_16(GD_SHORT_ROWS_ARGS);
    else if (d <= 24)
        gd_short_rows_f64_24(GD_SHORT_ROWS_ARGS);
    else
        gd_short_rows_f64_32(GD_SHORT_ROWS_ARGS);
}

static inline void gd_short_rows_f32(GD_SHORT_ROWS_PARAMS(float))
{
    if (d <= 8)
        gd_short_rows_f32_8(GD_SHORT_ROWS_ARGS);
    else if (d <= 16)
        gd_short_rows_f32_16(GD_SHORT_ROWS_ARGS);
    else if (d <= 24)
        gd_short_rows_f32_24(GD_SHORT_ROWS_ARGS);
    else
        gd_short_rows_f32_32(GD_SHORT_ROWS_ARGS);
}

#else
#define GD_SHORT_ROWS_VECTORISED 0
static inline void gd_short_rows_f64(GD_SHORT_ROWS_PARAMS(double)) {}
static inline void gd_short_rows_f32(GD_SHORT_ROWS_PARAMS(float)) {}
#endif

#endif
