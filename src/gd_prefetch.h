/* Software prefetches of X's rows, for reading.
 *
 * GD_PREFETCH_LOCALITY is __builtin_prefetch's locality hint for every prefetch the kernels
 * issue.  1 (prefetcht2: into L2, not L1) because on AMD Zen 4 the non-temporal hint (0,
 * prefetchnta, which the kernels used until 2026-12) and the all-levels hint (3) left one
 * thread reading rows at 0.36-0.60 of the read probe (d = 10 to 1000, float32 and float64),
 * and 1 gave 0.70-0.86 (two threads 0.53-0.71 -> 0.78-0.93); on Zen 5 the hints measured
 * alike.  -DGD_PREFETCH_LOCALITY=0..3 (GDCORE_EXTRA_CFLAGS) to try another.
 */
#ifndef GD_PREFETCH_H
#define GD_PREFETCH_H

#ifndef GD_PREFETCH_LOCALITY
#define GD_PREFETCH_LOCALITY 1
#endif

#if defined(__GNUC__) || defined(__clang__)
#define GD_PREFETCH(address) __builtin_prefetch((const void *)(address), 0, GD_PREFETCH_LOCALITY)
/* One prefetch in every 64-byte line of the nbytes at start, with the given hint (a macro,
 * not a function: __builtin_prefetch's hint must be a constant where it is written, so the
 * kernels pass GD_PREFETCH_LOCALITY and the read probe may pass another). */
#define GD_PREFETCH_SPAN(start, nbytes, hint)                                               \
    do {                                                                                    \
        const char *gd_span_ = (const char *)(start);                                       \
        Py_ssize_t gd_offset_;                                                              \
        for (gd_offset_ = 0; gd_offset_ < (nbytes); gd_offset_ += 64)                       \
            __builtin_prefetch(gd_span_ + gd_offset_, 0, hint);                             \
    } while (0)
#else
#define GD_PREFETCH(address) ((void)0)
#define GD_PREFETCH_SPAN(start, nbytes, hint) ((void)0)
#endif

#endif
