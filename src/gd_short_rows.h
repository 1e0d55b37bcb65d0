/* The fused loss + gradient pass for short rows (float64 d <= 40, float32 d <= 64):
 * gd_kernel.accumulate_rows hands such blocks to gd_short_rows_f64 / gd_short_rows_f32 when
 * GD_SHORT_ROWS_VECTORISED is 1.
 *
 * Why C: a short row's dot product is a handful of vector multiplies and one horizontal
 * sum, and the gradient sums fit in a few vector registers for the whole block.  GCC does
 * not find that shape from plain loops over d (it keeps the sums on the stack or goes
 * scalar), so it is written here with GCC/Clang vector extensions, which compile to
 * AVX-512, AVX2 or SSE (or NEON) as the target allows.  Other compilers get
 * GD_SHORT_ROWS_VECTORISED 0 and the Cython loops (as does -DGD_SHORT_ROWS_USE_LOOPS).
 *
 * Each row is read as a padded vector of WIDTH values (8 to 64): the values past its end
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

#include "gd_prefetch.h"

#define GD_SHORT_ROWS_PARAMS(T)                                                             \
    const T *X, const T *y, const T *sample_weight, const T *theta, Py_ssize_t d,           \
    const Py_ssize_t *rows, Py_ssize_t rows_end, Py_ssize_t start, Py_ssize_t stop,          \
    double *acc, Py_ssize_t prefetch_ahead
#define GD_SHORT_ROWS_ARGS X, y, sample_weight, theta, d, rows, rows_end, start, stop, acc,   \
    prefetch_ahead

/* __builtin_shufflevector is GCC 12+ (and any Clang); older GCC takes the Cython loops. */
#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector) && __has_builtin(__builtin_convertvector)
#define GD_HAVE_SHUFFLEVECTOR 1
#endif
#endif
#if (defined(__GNUC__) || defined(__clang__)) && defined(GD_HAVE_SHUFFLEVECTOR) \
    && !defined(GD_SHORT_ROWS_USE_LOOPS)
#define GD_SHORT_ROWS_VECTORISED 1
/* The widest rows these kernels take: the four-row kernels keep four rows, w and the
 * gradient sums in vector registers (float64 40 = 5 x 8 lanes: 30 of the 32 AVX-512
 * registers; float32 64 = 4 x 16 lanes). */
#define GD_SHORT_ROWS_MAX_D_F64 40
#define GD_SHORT_ROWS_MAX_D_F32 64
#define GD_SHORT_FLOAT_BLOCK 64
/* Rows in order are also fetched this far ahead: the hardware prefetcher alone left a
 * single thread at ~70% of its read bandwidth on 10-value rows.  Measured with the four-row
 * kernel, one thread against the probe (1,000,000 x 10): 2,048 bytes 0.66, 4,096 0.76-0.80,
 * 8,192 0.87, 12,800 0.96, 25,600 0.95; two threads 0.85-0.92 from 4,096 up.  (-D to try.) */
#ifndef GD_STREAM_AHEAD_BYTES
#define GD_STREAM_AHEAD_BYTES 12800
#endif

typedef double gd_f64x8 __attribute__((vector_size(64)));
typedef double gd_f64x4 __attribute__((vector_size(32)));
typedef float gd_f32x16 __attribute__((vector_size(64)));
typedef float gd_f32x8 __attribute__((vector_size(32)));
typedef float gd_f32x4 __attribute__((vector_size(16)));

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

/* Prefetch, for reading, the bytes of a row read as a padded vector (its last line too). */
static inline void gd_prefetch_row(const void *row, Py_ssize_t bytes)
{
    GD_PREFETCH_SPAN(row, bytes, GD_PREFETCH_LOCALITY);
    GD_PREFETCH((const char *)row + bytes - 1);
}

/* lane_sums[q * LANES + j] += lanes[q][j] for the N vector sums of a block; they restart at 0. */
#define GD_SPILL_LANES(VT, LANES, N, lanes, lane_sums)                                       \
    for (q = 0; q < N; q++) {                                                                \
        for (j = 0; j < LANES; j++)                                                          \
            lane_sums[q * LANES + j] += lanes[q][j];                                         \
        lanes[q] = (VT){0};                                                                  \
    }

/* The last spill, and the lane sums of the d values into acc: the end of both kernels. */
#define GD_FINISH_SHORT_ROWS(VT, LANES, N, lanes, lane_sums)                                 \
    GD_SPILL_LANES(VT, LANES, N, lanes, lane_sums)                                           \
    for (j = 0; j < d; j++)                                                                  \
        acc[j] += lane_sums[j];

/* w = theta's d values zero-padded to N vectors (through padded), the N gradient vectors and
 * the WIDTH lane sums at 0: the start of both short-row kernels (WIDTH, j, q, d, theta theirs). */
#define GD_START_SHORT_ROWS(T, VT, N, padded, w, lanes, lane_sums)                           \
    for (j = 0; j < WIDTH; j++) {                                                            \
        padded[j] = j < d ? theta[j] : (T)0;                                                 \
        lane_sums[j] = 0.0;                                                                  \
    }                                                                                        \
    memcpy(w, padded, sizeof w);                                                             \
    for (q = 0; q < N; q++)                                                                  \
        lanes[q] = (VT){0};

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
    GD_START_SHORT_ROWS(T, VT, N_VECTORS, padded, w, lanes, lane_sums)                       \
    for (k = start; k < stop; k++) {                                                         \
        if (rows != NULL) {                                                                  \
            if (k + prefetch_ahead < rows_end)                                               \
                gd_prefetch_row(X + rows[k + prefetch_ahead] * d, sizeof row);               \
            i = rows[k];                                                                     \
        } else {                                                                             \
            i = k;                                                                           \
            GD_PREFETCH((const char *)(X + i * d) + GD_STREAM_AHEAD_BYTES);                  \
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
            GD_SPILL_LANES(VT, LANES, N_VECTORS, lanes, lane_sums)                           \
            rows_in_block = 0;                                                               \
        }                                                                                    \
    }                                                                                        \
    GD_FINISH_SHORT_ROWS(VT, LANES, N_VECTORS, lanes, lane_sums)                             \
    acc[d] += residual_sum;                                                                  \
    acc[d + 1] += square_sum;                                                                \
    acc[d + 2] += weight_sum;                                                                \
}

/* Widths 8 to 64: as few vectors as cover d, in 4- or 8-lane vectors (on a CPU that splits
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
GD_DEFINE_SHORT_ROWS(gd_short_rows_f64_40, double, gd_f64x8, 8, 5, gd_hsum_f64x8, 0)
GD_DEFINE_SHORT_ROWS(gd_short_rows_f32_48, float, gd_f32x16, 16, 3, gd_hsum_f32x16, 1)
GD_DEFINE_SHORT_ROWS(gd_short_rows_f32_64, float, gd_f32x16, 16, 4, gd_hsum_f32x16, 1)


/* A row's products folded to 4 lanes (lane k + lane k + 4 + ...), so that four rows' dot
 * products finish in one transposed sum (GD_DOTS4). */
static inline gd_f64x4 gd_fold4_f64x4(gd_f64x4 v) { return v; }
static inline gd_f64x4 gd_fold4_f64x8(gd_f64x8 v)
{
    return __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
}
static inline gd_f32x4 gd_fold4_f32x8(gd_f32x8 v)
{
    return __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
}
static inline gd_f32x4 gd_fold4_f32x16(gd_f32x16 v)
{
    return gd_fold4_f32x8(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                          __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15));
}
/* (Σa, Σb, Σc, Σe) of four 4-lane vectors, each summed (v0 + v1) + (v2 + v3). */
#define GD_DOTS4(a, b, c, e)                                                                 \
    (__builtin_shufflevector(                                                                \
         __builtin_shufflevector(a, b, 0, 4, 2, 6) + __builtin_shufflevector(a, b, 1, 5, 3, 7), \
         __builtin_shufflevector(c, e, 0, 4, 2, 6) + __builtin_shufflevector(c, e, 1, 5, 3, 7), \
         0, 1, 4, 5) +                                                                       \
     __builtin_shufflevector(                                                                \
         __builtin_shufflevector(a, b, 0, 4, 2, 6) + __builtin_shufflevector(a, b, 1, 5, 3, 7), \
         __builtin_shufflevector(c, e, 0, 4, 2, 6) + __builtin_shufflevector(c, e, 1, 5, 3, 7), \
         2, 3, 6, 7))

/* NAME: the rows four at a time, each row as N_MAIN vectors VT of LANES values; V4 is the
 * 4-lane vector of T and FOLD takes a VT to it.  A group with a row whose padded read would
 * leave X, and the last (stop - start) mod 4 rows, go to ONE_ROW (the row-at-a-time kernel
 * above), which adds its sums to acc itself.  The body is instantiated for rows given or not
 * and weights given or not: tested inside the loop, they made it ~45% slower (measured).  */
#define GD_DEFINE_SHORT_ROWS4(NAME, ONE_ROW, T, VT, LANES, N_MAIN, V4, FOLD, IS_FLOAT)          \
static inline __attribute__((always_inline)) void                                           \
NAME##_body(GD_SHORT_ROWS_PARAMS(T), const int gathered, const int weighted)                 \
{                                                                                            \
    enum { WIDTH = LANES * N_MAIN };                                                         \
    T padded[WIDTH];                                                                         \
    VT w[N_MAIN], lanes[N_MAIN], x0[N_MAIN], x1[N_MAIN], x2[N_MAIN], x3[N_MAIN];             \
    V4 p0, p1, p2, p3, r, c, targets, weights;                                               \
    gd_f64x4 residual4 = {0}, square4 = {0}, weight4 = {0}, c64;                             \
    double lane_sums[WIDTH];                                                                 \
    const Py_ssize_t last_padded_start = rows_end * d - WIDTH;                               \
    const T b = theta[d];                                                                    \
    Py_ssize_t k, i0, i1, i2, i3, j, q, rows_in_block = 0;                                   \
    GD_START_SHORT_ROWS(T, VT, N_MAIN, padded, w, lanes, lane_sums)                          \
    for (k = start; k + 4 <= stop; k += 4) {                                                 \
        if (gathered) {                                                                      \
            for (j = k + prefetch_ahead; j < k + prefetch_ahead + 4 && j < rows_end; j++)    \
                gd_prefetch_row(X + rows[j] * d, WIDTH * sizeof(T));                         \
            i0 = rows[k], i1 = rows[k + 1], i2 = rows[k + 2], i3 = rows[k + 3];              \
            if (i0 * d > last_padded_start || i1 * d > last_padded_start ||                  \
                i2 * d > last_padded_start || i3 * d > last_padded_start) {                  \
                ONE_ROW(X, y, sample_weight, theta, d, rows, rows_end, k, k + 4, acc, 0);    \
                continue;                                                                    \
            }                                                                                \
            targets = (V4){y[i0], y[i1], y[i2], y[i3]};                                      \
        } else {                                                                             \
            i0 = k, i1 = k + 1, i2 = k + 2, i3 = k + 3;                                      \
            if (i3 * d > last_padded_start)                                                  \
                break;                                                                       \
            for (q = 0; q < 4 * d * (Py_ssize_t)sizeof(T); q += 64)                          \
                GD_PREFETCH((const char *)(X + k * d) + GD_STREAM_AHEAD_BYTES + q);          \
            memcpy(&targets, y + k, sizeof targets);                                         \
        }                                                                                    \
        for (q = 0; q < N_MAIN; q++) {                                                       \
            memcpy(&x0[q], X + i0 * d + q * LANES, sizeof x0[q]);                            \
            memcpy(&x1[q], X + i1 * d + q * LANES, sizeof x1[q]);                            \
            memcpy(&x2[q], X + i2 * d + q * LANES, sizeof x2[q]);                            \
            memcpy(&x3[q], X + i3 * d + q * LANES, sizeof x3[q]);                            \
        }                                                                                    \
        p0 = FOLD(x0[0] * w[0]);                                                             \
        p1 = FOLD(x1[0] * w[0]);                                                             \
        p2 = FOLD(x2[0] * w[0]);                                                             \
        p3 = FOLD(x3[0] * w[0]);                                                             \
        for (q = 1; q < N_MAIN; q++) {                                                       \
            p0 += FOLD(x0[q] * w[q]);                                                        \
            p1 += FOLD(x1[q] * w[q]);                                                        \
            p2 += FOLD(x2[q] * w[q]);                                                        \
            p3 += FOLD(x3[q] * w[q]);                                                        \
        }                                                                                    \
        r = GD_DOTS4(p0, p1, p2, p3) + b - targets;                                          \
        if (weighted) {                                                             \
            weights = (V4){sample_weight[i0], sample_weight[i1], sample_weight[i2],           \
                           sample_weight[i3]};                                               \
            c = weights * r;                                                                 \
            weight4 += __builtin_convertvector(weights, gd_f64x4);                           \
        } else {                                                                             \
            c = r;                                                                           \
            weight4 += 1.0;                                                                  \
        }                                                                                    \
        for (q = 0; q < N_MAIN; q++)                                                         \
            lanes[q] += (c[0] * x0[q] + c[1] * x1[q]) + (c[2] * x2[q] + c[3] * x3[q]);       \
        c64 = __builtin_convertvector(c, gd_f64x4);                                          \
        residual4 += c64;                                                                    \
        square4 += c64 * __builtin_convertvector(r, gd_f64x4);                               \
        if (IS_FLOAT && (rows_in_block += 4) >= GD_SHORT_FLOAT_BLOCK) {                      \
            GD_SPILL_LANES(VT, LANES, N_MAIN, lanes, lane_sums)                              \
            rows_in_block = 0;                                                               \
        }                                                                                    \
    }                                                                                        \
    GD_FINISH_SHORT_ROWS(VT, LANES, N_MAIN, lanes, lane_sums)                                \
    acc[d] += (residual4[0] + residual4[1]) + (residual4[2] + residual4[3]);                 \
    acc[d + 1] += (square4[0] + square4[1]) + (square4[2] + square4[3]);                     \
    acc[d + 2] += (weight4[0] + weight4[1]) + (weight4[2] + weight4[3]);                     \
    if (k < stop)                                                                            \
        ONE_ROW(X, y, sample_weight, theta, d, rows, rows_end, k, stop, acc, prefetch_ahead); \
}                                                                                            \
static void NAME(GD_SHORT_ROWS_PARAMS(T))                                                    \
{                                                                                            \
    if (rows == NULL && sample_weight == NULL)                                               \
        NAME##_body(GD_SHORT_ROWS_ARGS, 0, 0);                                               \
    else if (rows == NULL)                                                                   \
        NAME##_body(GD_SHORT_ROWS_ARGS, 0, 1);                                               \
    else if (sample_weight == NULL)                                                          \
        NAME##_body(GD_SHORT_ROWS_ARGS, 1, 0);                                               \
    else                                                                                     \
        NAME##_body(GD_SHORT_ROWS_ARGS, 1, 1);                                               \
}

/* The kernels the dispatchers below use.  Four rows at a time: their dot products finish in
 * one transposed sum instead of four horizontal ones, and their gradient terms go into the
 * sums as a tree, one dependent addition per four rows (rows of 10 float64 values, in cache,
 * on Zen 5: 1.6 -> 1.2 ns a row).  Widths as the row-at-a-time kernels have them: 12 values
 * as three 4-lane vectors measured faster than as 8 + 4 lanes. */
GD_DEFINE_SHORT_ROWS4(gd_short_rows4_f64_8, gd_short_rows_f64_8, double, gd_f64x8, 8, 1,
                      gd_f64x4, gd_fold4_f64x8, 0)
GD_DEFINE_SHORT_ROWS4(gd_short_rows4_f64_12, gd_short_rows_f64_12, double, gd_f64x4, 4, 3,
                      gd_f64x4, gd_fold4_f64x4, 0)
GD_DEFINE_SHORT_ROWS4(gd_short_rows4_f64_16, gd_short_rows_f64_16, double, gd_f64x8, 8, 2,
                      gd_f64x4, gd_fold4_f64x8, 0)
GD_DEFINE_SHORT_ROWS4(gd_short_rows4_f64_24, gd_short_rows_f64_24, double, gd_f64x8, 8, 3,
                      gd_f64x4, gd_fold4_f64x8, 0)
GD_DEFINE_SHORT_ROWS4(gd_short_rows4_f64_32, gd_short_rows_f64_32, double, gd_f64x8, 8, 4,
                      gd_f64x4, gd_fold4_f64x8, 0)
GD_DEFINE_SHORT_ROWS4(gd_short_rows4_f32_8, gd_short_rows_f32_8, float, gd_f32x8, 8, 1,
                      gd_f32x4, gd_fold4_f32x8, 1)
GD_DEFINE_SHORT_ROWS4(gd_short_rows4_f32_16, gd_short_rows_f32_16, float, gd_f32x16, 16, 1,
                      gd_f32x4, gd_fold4_f32x16, 1)
GD_DEFINE_SHORT_ROWS4(gd_short_rows4_f32_24, gd_short_rows_f32_24, float, gd_f32x8, 8, 3,
                      gd_f32x4, gd_fold4_f32x8, 1)
GD_DEFINE_SHORT_ROWS4(gd_short_rows4_f32_32, gd_short_rows_f32_32, float, gd_f32x16, 16, 2,
                      gd_f32x4, gd_fold4_f32x16, 1)
GD_DEFINE_SHORT_ROWS4(gd_short_rows4_f64_40, gd_short_rows_f64_40, double, gd_f64x8, 8, 5,
                      gd_f64x4, gd_fold4_f64x8, 0)
GD_DEFINE_SHORT_ROWS4(gd_short_rows4_f32_48, gd_short_rows_f32_48, float, gd_f32x16, 16, 3,
                      gd_f32x4, gd_fold4_f32x16, 1)
GD_DEFINE_SHORT_ROWS4(gd_short_rows4_f32_64, gd_short_rows_f32_64, float, gd_f32x16, 16, 4,
                      gd_f32x4, gd_fold4_f32x16, 1)

/* Rows of 1 <= d <= GD_SHORT_ROWS_MAX_D_F64 / _F32 values, four at a time. */
static inline void gd_short_rows4_f64(GD_SHORT_ROWS_PARAMS(double))
{
    if (d <= 8)
        gd_short_rows4_f64_8(GD_SHORT_ROWS_ARGS);
    else if (d <= 12)
        gd_short_rows4_f64_12(GD_SHORT_ROWS_ARGS);
    else if (d <= 16)
        gd_short_rows4_f64_16(GD_SHORT_ROWS_ARGS);
    else if (d <= 24)
        gd_short_rows4_f64_24(GD_SHORT_ROWS_ARGS);
    else if (d <= 32)
        gd_short_rows4_f64_32(GD_SHORT_ROWS_ARGS);
    else
        gd_short_rows4_f64_40(GD_SHORT_ROWS_ARGS);
}

static inline void gd_short_rows4_f32(GD_SHORT_ROWS_PARAMS(float))
{
    if (d <= 8)
        gd_short_rows4_f32_8(GD_SHORT_ROWS_ARGS);
    else if (d <= 16)
        gd_short_rows4_f32_16(GD_SHORT_ROWS_ARGS);
    else if (d <= 24)
        gd_short_rows4_f32_24(GD_SHORT_ROWS_ARGS);
    else if (d <= 32)
        gd_short_rows4_f32_32(GD_SHORT_ROWS_ARGS);
    else if (d <= 48)
        gd_short_rows4_f32_48(GD_SHORT_ROWS_ARGS);
    else
        gd_short_rows4_f32_64(GD_SHORT_ROWS_ARGS);
}


#if defined(__AVX512F__) && defined(__GNUC__) && !defined(__clang__)
/* Rows in order, a block at a time: LANES rows of D values are D whole vectors (8 rows of
 * float64, 16 of float32, whatever D is), so a block is read with D aligned-size loads and no
 * padding.  Row i of the block covers vectors D*i/LANES .. (D*i + D - 1)/LANES; its dot
 * product is the sum of those vectors times w tiled over the block with every lane outside
 * row i zeroed (masked_w: one multiply per vector a row touches, no masking operations), and
 * the LANES dot products finish in one transposed sum (gd_sums8_f64 / gd_sums16_f32).  Gradient
 * terms: vector t gets c tiled by row (a permute of the LANES values of c) times itself, into
 * D vector sums for the whole call, folded onto the d values at the end.  Measured against the
 * four-row kernel, 20,000 rows in cache on Zen 5, X 16 bytes past a cache line as NumPy's
 * large arrays are: float64 d = 1 2.2x faster, 4 1.7x, 8 1.2x, 10 1.3x, 12 1.0x, 14 0.9x,
 * 16 0.85x (float32 about the same), so d <= GD_BLOCK_MAX_D only.  (With X aligned to 64
 * bytes the block kernel stays ahead up to d = 24: its loads then never split a line.)
 * GCC only (variable permutes through __builtin_shuffle), and AVX-512 only (without a
 * variable cross-lane permute of doubles, AVX2 gains nothing). */
#include <immintrin.h>
#define GD_BLOCK_MAX_D 12
/* A call's set-up (w tiled and masked, the lanes folded at the end) costs ~60 ns in float64,
 * ~100 in float32: on fewer rows than these the four-row kernel is as fast (measured, d = 10:
 * even at ~64 float64 and ~160 float32 rows). */
#define GD_BLOCK_MIN_ROWS_F64 64
#define GD_BLOCK_MIN_ROWS_F32 128
#define GD_UNROLL _Pragma("GCC unroll 64")
typedef long long gd_i64x8 __attribute__((vector_size(64)));
typedef int gd_i32x16 __attribute__((vector_size(64)));

/* 64 bytes from p as two 256-bit loads: single 512-bit loads of data streamed from memory
 * ran at half the read bandwidth on Zen 5 (1,000,000 x 10: 29 against 46 GB/s on one
 * thread, 17 when X is not 64-byte aligned, as NumPy's large arrays are not); in cache the
 * two loads run as fast as one. */
static inline __m512d gd_load_halves(const void *p)
{
    __m256d low, high;
    memcpy(&low, p, sizeof low);
    memcpy(&high, (const char *)p + sizeof low, sizeof high);
    return _mm512_insertf64x4(_mm512_castpd256_pd512(low), high, 1);
}

/* Lane i = the sum of q[i]'s lanes, for i < 8: halves of pairs, then quarters, then eighths
 * (each q[i] summed ((v0+v4) + (v2+v6)) + ((v1+v5) + (v3+v7)), as gd_hsum_f64x8). */
static inline gd_f64x8 gd_sums8_f64(const gd_f64x8 *q)
{
    gd_f64x8 a[4], b[2];
    int k;
    for (k = 0; k < 4; k++)
        a[k] = __builtin_shufflevector(q[2 * k], q[2 * k + 1], 0, 1, 2, 3, 8, 9, 10, 11) +
               __builtin_shufflevector(q[2 * k], q[2 * k + 1], 4, 5, 6, 7, 12, 13, 14, 15);
    for (k = 0; k < 2; k++)
        b[k] = __builtin_shufflevector(a[2 * k], a[2 * k + 1], 0, 1, 4, 5, 8, 9, 12, 13) +
               __builtin_shufflevector(a[2 * k], a[2 * k + 1], 2, 3, 6, 7, 10, 11, 14, 15);
    return __builtin_shufflevector(b[0], b[1], 0, 2, 4, 6, 8, 10, 12, 14) +
           __builtin_shufflevector(b[0], b[1], 1, 3, 5, 7, 9, 11, 13, 15);
}

/* The same for 16 float32 vectors: halves, quarters, eighths, sixteenths. */
static inline gd_f32x16 gd_sums16_f32(const gd_f32x16 *q)
{
    gd_f32x16 a[8], b[4], e[2];
    int k;
    for (k = 0; k < 8; k++)
        a[k] = __builtin_shufflevector(q[2 * k], q[2 * k + 1],
                                       0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
               __builtin_shufflevector(q[2 * k], q[2 * k + 1],
                                       8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    for (k = 0; k < 4; k++)
        b[k] = __builtin_shufflevector(a[2 * k], a[2 * k + 1],
                                       0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
               __builtin_shufflevector(a[2 * k], a[2 * k + 1],
                                       4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    for (k = 0; k < 2; k++)
        e[k] = __builtin_shufflevector(b[2 * k], b[2 * k + 1],
                                       0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
               __builtin_shufflevector(b[2 * k], b[2 * k + 1],
                                       2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
    return __builtin_shufflevector(e[0], e[1],
                                   0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
           __builtin_shufflevector(e[0], e[1],
                                   1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}

/* Sums over a block's rows kept in float64: *sum += v; *sums += c, *squares += c r. */
static inline void gd_wide_add_f64(gd_f64x8 *sum, gd_f64x8 v)
{
    *sum += v;
}
static inline void gd_block_residuals_f64(gd_f64x8 c, gd_f64x8 r, gd_f64x8 *sums,
                                          gd_f64x8 *squares)
{
    gd_wide_add_f64(sums, c);
    *squares += c * r;
}
/* Lanes 0-7 and 8-15 of v in float64 (one vcvtps2pd each: __builtin_convertvector of the
 * halves goes through 128-bit pieces in GCC 12). */
static inline gd_f64x8 gd_low_f64(gd_f32x16 v)
{
    return (gd_f64x8)_mm512_cvtps_pd(_mm512_castps512_ps256((__m512)v));
}
static inline gd_f64x8 gd_high_f64(gd_f32x16 v)
{
    return (gd_f64x8)_mm512_cvtps_pd(
        _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd((__m512)v), 1)));
}
static inline void gd_wide_add_f32(gd_f64x8 *sum, gd_f32x16 v)
{
    *sum += gd_low_f64(v) + gd_high_f64(v);
}
static inline void gd_block_residuals_f32(gd_f32x16 c, gd_f32x16 r, gd_f64x8 *sums,
                                          gd_f64x8 *squares)
{
    gd_wide_add_f32(sums, c);
    *squares += gd_low_f64(c) * gd_low_f64(r) + gd_high_f64(c) * gd_high_f64(r);
}

/* NAME_D (d = D) for rows in order: blocks of LANES rows, the rest of the rows to FALLBACK.
 * VT/IT: the vector of T and of lane indices; SUMS the transposed sum, WIDE_ADD and
 * RESIDUALS the float64 sums above. */
#define GD_DEFINE_ROW_BLOCKS(NAME, FALLBACK, T, VT, IT, LANES, SUMS, WIDE_ADD, RESIDUALS,     \
                             IS_FLOAT, D)                                                    \
static inline __attribute__((always_inline)) void                                           \
NAME##_##D##_body(GD_SHORT_ROWS_PARAMS(T), const int weighted)                               \
{                                                                                            \
    enum { SPANS = D + LANES };                                                              \
    VT w[D], masked_w[SPANS], grad[D], v[D], dots[LANES], r, c, weights;                     \
    IT row_of[D];                                                                            \
    T lanes[LANES * D];                                                                      \
    gd_f64x8 residual8 = {0}, square8 = {0}, weight8 = {0}, grad64[2 * D];                      \
    double grad_sums[LANES * D];                                                             \
    const T b = theta[D];                                                                    \
    Py_ssize_t k, i, t, l, p, blocks = 0;                                                    \
    /* w tiled over the block: LANES copies of theta[0:D] end to end, read as D vectors.    \
     * (The set-up is written so it need not be unrolled: unrolled, the instances took       \
     * minutes to compile, under AddressSanitizer over ten; only row_of, constants, is.)  */ \
    for (l = 0; l < LANES; l++)                                                              \
        memcpy(lanes + l * D, theta, D * sizeof(T));                                         \
    memcpy(w, lanes, sizeof w);                                                              \
    GD_UNROLL for (t = 0; t < D; t++) {                                                      \
        GD_UNROLL for (l = 0; l < LANES; l++)                                                \
            row_of[t][l] = (LANES * t + l) / D;                                              \
        grad[t] = (VT){0};                                                                   \
    }                                                                                        \
    for (t = 0; IS_FLOAT && t < 2 * D; t++)                                                  \
        grad64[t] = (gd_f64x8){0};                                                           \
    p = 0;                                                                                   \
    for (i = 0; i < LANES; i++)                                                              \
        for (t = D * i / LANES; t <= (D * i + D - 1) / LANES; t++, p++)                      \
            masked_w[p] = (VT)((IT)w[t] & (IT)(row_of[t] == (int)i));                        \
    for (k = start; k + LANES <= stop; k += LANES) {                                         \
        const T *block = X + k * D;                                                          \
        GD_UNROLL for (t = 0; t < D; t++) {                                                  \
            GD_PREFETCH((const char *)(block + LANES * t) + GD_STREAM_AHEAD_BYTES);          \
            v[t] = (VT)gd_load_halves(block + LANES * t);                                    \
        }                                                                                    \
        p = 0;                                                                               \
        GD_UNROLL for (i = 0; i < LANES; i++) {                                              \
            dots[i] = v[D * i / LANES] * masked_w[p++];                                      \
            GD_UNROLL for (t = D * i / LANES + 1; t <= (D * i + D - 1) / LANES; t++)         \
                dots[i] += v[t] * masked_w[p++];                                             \
        }                                                                                    \
        memcpy(&r, y + k, sizeof r);                                                         \
        r = SUMS(dots) + b - r;                                                              \
        if (weighted) {                                                                      \
            memcpy(&weights, sample_weight + k, sizeof weights);                             \
            c = weights * r;                                                                 \
            WIDE_ADD(&weight8, weights);                                                     \
        } else {                                                                             \
            c = r;                                                                           \
        }                                                                                    \
        GD_UNROLL for (t = 0; t < D; t++)                                                    \
            grad[t] += __builtin_shuffle(c, row_of[t]) * v[t];                               \
        RESIDUALS(c, r, &residual8, &square8);                                               \
        if (IS_FLOAT && ++blocks * LANES % GD_SHORT_FLOAT_BLOCK == 0) {                      \
            GD_UNROLL for (t = 0; t < D; t++) {                                              \
                /* (the casts only make the float64 instance, where this is dead, compile) */ \
                grad64[2 * t] += gd_low_f64((gd_f32x16)grad[t]);                             \
                grad64[2 * t + 1] += gd_high_f64((gd_f32x16)grad[t]);                        \
                grad[t] = (VT){0};                                                           \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    /* lane e of the block is feature e mod D: the lanes fold onto acc D at a time */        \
    memcpy(lanes, grad, sizeof lanes);                                                       \
    if (IS_FLOAT)                                                                            \
        memcpy(grad_sums, grad64, sizeof grad_sums);                                         \
    for (l = 0; l < LANES * D; l += D)                                                       \
        for (i = 0; i < D; i++)                                                              \
            acc[i] += IS_FLOAT ? grad_sums[l + i] + lanes[l + i] : (double)lanes[l + i];     \
    acc[D] += gd_hsum_f64x8(residual8);                                                      \
    acc[D + 1] += gd_hsum_f64x8(square8);                                                    \
    acc[D + 2] += weighted ? gd_hsum_f64x8(weight8) : (double)(k - start);                   \
    if (k < stop)                                                                            \
        FALLBACK(X, y, sample_weight, theta, D, NULL, rows_end, k, stop, acc, prefetch_ahead); \
}                                                                                            \
static void NAME##_##D(GD_SHORT_ROWS_PARAMS(T))                                              \
{                                                                                            \
    if (sample_weight == NULL)                                                               \
        NAME##_##D##_body(GD_SHORT_ROWS_ARGS, 0);                                            \
    else                                                                                     \
        NAME##_##D##_body(GD_SHORT_ROWS_ARGS, 1);                                            \
}

#define GD_ROW_BLOCKS_F64(D) GD_DEFINE_ROW_BLOCKS(gd_row_blocks_f64, gd_short_rows4_f64,    \
    double, gd_f64x8, gd_i64x8, 8, gd_sums8_f64, gd_wide_add_f64, gd_block_residuals_f64, 0, D)
#define GD_ROW_BLOCKS_F32(D) GD_DEFINE_ROW_BLOCKS(gd_row_blocks_f32, gd_short_rows4_f32,    \
    float, gd_f32x16, gd_i32x16, 16, gd_sums16_f32, gd_wide_add_f32, gd_block_residuals_f32, 1, D)
#define GD_FOR_BLOCK_WIDTHS(M) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12)
GD_FOR_BLOCK_WIDTHS(GD_ROW_BLOCKS_F64)
GD_FOR_BLOCK_WIDTHS(GD_ROW_BLOCKS_F32)
#define GD_CASE_F64(D) case D: gd_row_blocks_f64_##D(GD_SHORT_ROWS_ARGS); return;
#define GD_CASE_F32(D) case D: gd_row_blocks_f32_##D(GD_SHORT_ROWS_ARGS); return;
#else
#define GD_BLOCK_MAX_D 0
#define GD_BLOCK_MIN_ROWS_F64 0
#define GD_BLOCK_MIN_ROWS_F32 0
#define GD_FOR_BLOCK_WIDTHS(M)
#endif

/* Rows of 1 <= d <= GD_SHORT_ROWS_MAX_D_F64 / _F32 values: rows in order in blocks where
 * there is a block kernel, four at a time otherwise. */
static inline void gd_short_rows_f64(GD_SHORT_ROWS_PARAMS(double))
{
    if (rows == NULL && d <= GD_BLOCK_MAX_D && stop - start >= GD_BLOCK_MIN_ROWS_F64) {
        switch (d) {
        GD_FOR_BLOCK_WIDTHS(GD_CASE_F64)
        }
    }
    gd_short_rows4_f64(GD_SHORT_ROWS_ARGS);
}

static inline void gd_short_rows_f32(GD_SHORT_ROWS_PARAMS(float))
{
    if (rows == NULL && d <= GD_BLOCK_MAX_D && stop - start >= GD_BLOCK_MIN_ROWS_F32) {
        switch (d) {
        GD_FOR_BLOCK_WIDTHS(GD_CASE_F32)
        }
    }
    gd_short_rows4_f32(GD_SHORT_ROWS_ARGS);
}

#else
#define GD_SHORT_ROWS_VECTORISED 0
#define GD_SHORT_ROWS_MAX_D_F64 0
#define GD_SHORT_ROWS_MAX_D_F32 0
static inline void gd_short_rows_f64(GD_SHORT_ROWS_PARAMS(double)) {}
static inline void gd_short_rows_f32(GD_SHORT_ROWS_PARAMS(float)) {}
#endif

#endif
