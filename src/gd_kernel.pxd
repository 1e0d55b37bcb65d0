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
from gd_types cimport SLOT_RESIDUAL, SLOT_SQUARES, SLOT_WEIGHT


cdef inline floating row_dot(const floating* x, const floating* w, Py_ssize_t d) noexcept nogil:
    """x·w with four independent partial sums, so the loop pipelines (and the
    compiler may vectorise it) without -ffast-math, which would break NaN checks."""
    cdef floating s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t j = 0
    while j + 4 <= d:
        s0 = s0 + x[j] * w[j]
        s1 = s1 + x[j + 1] * w[j + 1]
        s2 = s2 + x[j + 2] * w[j + 2]
        s3 = s3 + x[j + 3] * w[j + 3]
        j = j + 4
    while j < d:
        s0 = s0 + x[j] * w[j]
        j = j + 1
    return (s0 + s1) + (s2 + s3)


cdef inline void accumulate_rows(
    const floating* X, const floating* y, const floating* sample_weight,
    const floating* theta, Py_ssize_t d,
    const Py_ssize_t* rows, Py_ssize_t start, Py_ssize_t stop,
    double* acc,
) noexcept nogil:
    """Add the sums of rows[start:stop] (or rows start..stop-1 when rows is NULL) to acc.

    theta = (w₀ … w_{d−1}, b); sample_weight is NULL for unit weights.
    """
    cdef Py_ssize_t k, i, j
    cdef const floating* x
    cdef floating residual
    cdef double weighted, s
    cdef floating b = theta[d]
    for k in range(start, stop):
        i = rows[k] if rows != NULL else k
        x = X + i * d
        residual = row_dot(x, theta, d) + b - y[i]
        s = sample_weight[i] if sample_weight != NULL else 1.0
        weighted = s * residual
        for j in range(d):
            acc[j] += weighted * x[j]
        acc[d + SLOT_RESIDUAL] += weighted
        acc[d + SLOT_SQUARES] += weighted * residual
        acc[d + SLOT_WEIGHT] += s


cdef inline double objective_and_gradient(
    const double* sums, const floating* theta, Py_ssize_t d,
    double l2, double l1, bint fit_intercept, floating* grad,
) noexcept nogil:
    """From a block's sums, the gradient g = (∇w, ∂b) into grad and the objective

        J = 1/(2S)·Σ sᵢrᵢ² + (l2/2)·‖w‖² + l1·‖w‖₁,   ∇w = 1/S·Σ sᵢrᵢxᵢ + l2·w,   ∂b = 1/S·Σ sᵢrᵢ

    (∂b is 0 when the intercept is not fitted; the l1 term is handled by a proximal step)."""
    cdef double S = sums[d + SLOT_WEIGHT]
    cdef double penalty = 0.0, abs_sum = 0.0, w
    cdef Py_ssize_t j
    for j in range(d):
        w = theta[j]
        grad[j] = <floating>(sums[j] / S + l2 * w)
        penalty += w * w
        abs_sum += w if w >= 0 else -w
    grad[d] = <floating>(sums[d + SLOT_RESIDUAL] / S) if fit_intercept else 0
    return sums[d + SLOT_SQUARES] / (2.0 * S) + 0.5 * l2 * penalty + l1 * abs_sum


cdef inline double stationarity(const floating* grad, const floating* theta, Py_ssize_t d,
                                double l1, bint fit_intercept) noexcept nogil:
    """‖∇J‖∞; with l1 > 0, of the minimum-norm subgradient (soft-threshold where wⱼ = 0)."""
    cdef double worst = 0.0, g
    cdef Py_ssize_t j
    for j in range(d):
        g = grad[j]
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
        if g < 0:
            g = -g
        if g > worst:
            worst = g
    return worst
