/* a*b + c rounded once (fused multiply-add) where the target has FMA, else rounded twice.
 *
 * Classic SGD's short-row dot product is formed in two places that must agree to the bit
 * (row_residual, and the update sweep that also forms the next row's x.w): written as
 * `s + x*w`, GCC contracted it to an FMA in one and not in the other, where it computed the
 * products as vectors first.  Spelled out, every compiler rounds both alike.  Without FMA
 * hardware (a portable build's baseline x86-64 core) nothing is contracted, so a*b + c is
 * the same there.
 */
#ifndef GD_FMA_H
#define GD_FMA_H

#if defined(__FMA__) || defined(__aarch64__)
#define GD_MULADD_F64(a, b, c) __builtin_fma((a), (b), (c))
#define GD_MULADD_F32(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define GD_MULADD_F64(a, b, c) ((a) * (b) + (c))
#define GD_MULADD_F32(a, b, c) ((a) * (b) + (c))
#endif

#endif
