# cython: cdivision=True
# The update rules of SPEC section 3 (torch.optim's equations), one parameter vector at a time.
#
# θ = (w₀ … w_{d−1}, b) holds m = d + fit_intercept entries that move; g is the gradient,
# t the 1-based update count and lr the scheduled learning rate.  Each rule keeps its
# state in up to three vectors of the same length (state0, state1, state2), updated in
# place, and writes the new θ to `updated`: θ itself (in place) or another buffer, so that
# a caller keeping the θ before the update need not copy it.
# The caller checks the new θ with is_finite_vector (a vectorised pass over it).

from cython cimport floating
from libc.float cimport DBL_MAX
from libc.math cimport sqrt, pow, fabs, NAN
from gd_kernel cimport (ROW_DOT_LANES, SHORT_DOT_LANES, SHORT_ROW, fold_lanes,
                       fold_short_lanes, muladd, sum_of_squares)
from gd_types cimport (OptimConfig, OPT_SGD, OPT_ADAGRAD, OPT_RMSPROP, OPT_ADAM,
                       OPT_NORMALIZED)


cdef inline void sgd_step(const OptimConfig* cfg, const floating* theta, const floating* g,
                          floating* buf, Py_ssize_t m, long long t, double lr,
                          floating* updated) noexcept nogil:
    """θ ← θ − lr·g, or with momentum μ: buf ← g (t = 1) / μ·buf + (1−dampening)·g;
    nesterov: g ← g + μ·buf, else g ← buf."""
    cdef double mu = cfg.momentum, keep = 1.0 - cfg.dampening
    cdef Py_ssize_t j
    # Separate loops per case keep each one branch-free, so they vectorise.
    if mu == 0.0:
        for j in range(m):
            updated[j] = <floating>(theta[j] - lr * g[j])
        return
    if t == 1:
        for j in range(m):
            buf[j] = g[j]
    else:
        for j in range(m):
            buf[j] = <floating>(mu * buf[j] + keep * g[j])
    if cfg.nesterov:
        for j in range(m):
            updated[j] = <floating>(theta[j] - lr * (g[j] + mu * buf[j]))
    else:
        for j in range(m):
            updated[j] = <floating>(theta[j] - lr * buf[j])


cdef inline void adagrad_step(const OptimConfig* cfg, const floating* theta, const floating* g,
                              floating* sum_sq, Py_ssize_t m, long long t, double lr,
                              floating* updated) noexcept nogil:
    """clr = lr/(1 + (t−1)·lr_decay);  G ← G + g²;  θ ← θ − clr·g/(√G + eps)."""
    cdef double clr = lr / (1.0 + (t - 1) * cfg.lr_decay), eps = cfg.eps
    cdef Py_ssize_t j
    for j in range(m):
        sum_sq[j] = <floating>(sum_sq[j] + <double>g[j] * g[j])
        updated[j] = <floating>(theta[j] - clr * g[j] / (sqrt(<double>sum_sq[j]) + eps))


cdef inline double centered_variance(double v, double mean) noexcept nogil:
    """v − mean², with mean² rounded on its own, as the NumPy reference forms it.  Written as
    one expression, GCC contracted it to an FMA where the target has one (-march=native), and
    the FMA's exact product made inf − (a mean² past DBL_MAX) inf, a step of g/inf = 0, where
    the reference (and a build without FMA) has inf − inf = NaN and stops the fit as diverged.
    mean²'s second use, the test, keeps it rounded on its own."""
    cdef double square = mean * mean
    if square > DBL_MAX and v > DBL_MAX:
        return NAN
    return v - square


cdef inline void rmsprop_step(const OptimConfig* cfg, const floating* theta, const floating* g,
                              floating* sq_avg, floating* buf, floating* g_avg,
                              Py_ssize_t m, double lr, floating* updated) noexcept nogil:
    """v ← αv + (1−α)g²; centered: ḡ ← αḡ + (1−α)g, a = √(v − ḡ²) + eps, else a = √v + eps;
    momentum μ > 0: buf ← μ·buf + g/a, θ ← θ − lr·buf; else θ ← θ − lr·g/a.
    (v − ḡ² ≥ 0 in exact arithmetic; it is clipped at 0 so rounding cannot give √ of a
    negative number.)"""
    cdef double alpha = cfg.alpha, eps = cfg.eps, mu = cfg.momentum, variance
    cdef Py_ssize_t j
    for j in range(m):
        sq_avg[j] = <floating>(alpha * sq_avg[j] + (1.0 - alpha) * (<double>g[j] * g[j]))
    # v − ḡ² ≥ 0 but for rounding: negatives are taken as 0 and a NaN stays NaN (as NumPy's
    # maximum(v − ḡ², 0) has it), so an overflow is not turned into a step of g/eps.
    # a = √v + eps (or the centered form) is kept in g_avg's place only when centered;
    # otherwise it is recomputed where used, so each loop below stays branch-free.
    if cfg.centered:
        for j in range(m):
            g_avg[j] = <floating>(alpha * g_avg[j] + (1.0 - alpha) * g[j])
        if mu > 0.0:
            for j in range(m):
                variance = centered_variance(<double>sq_avg[j], <double>g_avg[j])
                buf[j] = <floating>(mu * buf[j] + g[j] / (sqrt(0.0 if variance < 0.0 else variance) + eps))
                updated[j] = <floating>(theta[j] - lr * buf[j])
        else:
            for j in range(m):
                variance = centered_variance(<double>sq_avg[j], <double>g_avg[j])
                updated[j] = <floating>(theta[j] - lr * g[j] / (sqrt(0.0 if variance < 0.0 else variance) + eps))
    elif mu > 0.0:
        for j in range(m):
            buf[j] = <floating>(mu * buf[j] + g[j] / (sqrt(<double>sq_avg[j]) + eps))
            updated[j] = <floating>(theta[j] - lr * buf[j])
    else:
        for j in range(m):
            updated[j] = <floating>(theta[j] - lr * g[j] / (sqrt(<double>sq_avg[j]) + eps))


cdef inline double bias_correction(double beta, long long t) noexcept nogil:
    """1 − βᵗ, Adam's bias correction.  βᵗ ≤ e^(−t(1−β)) (as ln β ≤ β − 1), so once
    t(1 − β) ≥ 45, βᵗ < 2⁻⁶⁰ and 1 − βᵗ rounds to exactly 1: pow, which took a quarter of a
    batch_size=1 update at d = 10 (more where βᵗ underflows), is skipped, the value the same."""
    if (1.0 - beta) * <double>t >= 45.0:
        return 1.0
    return 1.0 - pow(beta, <double>t)


cdef inline void adam_step(const OptimConfig* cfg, const floating* theta, const floating* g,
                           floating* m1, floating* m2, floating* m2_max,
                           Py_ssize_t m, long long t, double lr,
                           floating* updated) noexcept nogil:
    """m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; amsgrad: v̂ ← max(v̂, v), used for v;
    θ ← θ − lr·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + eps)."""
    cdef double b1 = cfg.beta1, b2 = cfg.beta2, eps = cfg.eps
    cdef double correction1 = bias_correction(b1, t)
    cdef double correction2 = bias_correction(b2, t)
    cdef double step_size = lr / correction1, inv_correction2 = 1.0 / correction2
    cdef Py_ssize_t j
    for j in range(m):
        m1[j] = <floating>(b1 * m1[j] + (1.0 - b1) * g[j])
        m2[j] = <floating>(b2 * m2[j] + (1.0 - b2) * (<double>g[j] * g[j]))
    if cfg.amsgrad:
        for j in range(m):
            m2_max[j] = m2[j] if m2[j] > m2_max[j] else m2_max[j]
        m2 = m2_max
    for j in range(m):
        updated[j] = <floating>(theta[j] - step_size * m1[j] / (sqrt(m2[j] * inv_correction2) + eps))


cdef inline void normalized_step(const OptimConfig* cfg, const floating* theta,
                                 const floating* g, Py_ssize_t m, double lr,
                                 floating* updated) noexcept nogil:
    """θ ← θ − lr·g / max(‖g‖₂, eps)."""
    cdef double scale, largest = 0.0
    cdef Py_ssize_t j
    scale = sqrt(sum_of_squares(g, m))
    if scale > DBL_MAX:
        # Σgⱼ² overflowed though ‖g‖ may not have: ‖g‖ = max|gⱼ|·‖g / max|gⱼ|‖ (else every
        # step would be lr/inf = 0, where this rule's point is a step of lr at any scale)
        for j in range(m):
            if fabs(<double>g[j]) > largest:
                largest = fabs(<double>g[j])
        scale = 0.0
        for j in range(m):
            scale += (g[j] / largest) * (g[j] / largest)
        scale = largest * sqrt(scale)
    if scale < cfg.eps:
        scale = cfg.eps
    scale = lr / scale
    for j in range(m):
        updated[j] = <floating>(theta[j] - scale * g[j])


cdef inline void optimizer_step(const OptimConfig* cfg, const floating* theta,
                                const floating* g, floating* state0, floating* state1,
                                floating* state2, Py_ssize_t m, long long t, double lr,
                                floating* updated) noexcept nogil:
    """One update of the configured rule, θ's new values into updated (may be θ)."""
    if cfg.kind == OPT_SGD:
        sgd_step(cfg, theta, g, state0, m, t, lr, updated)
    elif cfg.kind == OPT_ADAGRAD:
        adagrad_step(cfg, theta, g, state0, m, t, lr, updated)
    elif cfg.kind == OPT_RMSPROP:
        rmsprop_step(cfg, theta, g, state0, state1, state2, m, lr, updated)
    elif cfg.kind == OPT_ADAM:
        adam_step(cfg, theta, g, state0, state1, state2, m, t, lr, updated)
    else:
        normalized_step(cfg, theta, g, m, lr, updated)


cdef inline void l1_proximal_step(floating* w, Py_ssize_t d, double threshold) noexcept nogil:
    """wⱼ ← sign(wⱼ)·max(|wⱼ| − lr·l1, 0): the proximal map of lr·l1·‖w‖₁."""
    cdef Py_ssize_t j
    cdef double shrunk
    for j in range(d):
        shrunk = fabs(<double>w[j]) - threshold
        if shrunk <= 0.0:
            w[j] = 0
        elif w[j] > 0:
            w[j] = <floating>shrunk
        else:
            w[j] = <floating>(-shrunk)


cdef inline void sgd_row_update(
    const floating* x, floating scaled_residual, double inv_weight, const floating* theta,
    floating* updated, Py_ssize_t d, Py_ssize_t m, double l2, double l1, double lr,
) noexcept nogil:
    """Classic SGD on one row i of weight s, written to updated (θ is only read):

        θ' = θ − lr·(r·x + l2·w, r),   then the l1 proximal step on w'

    given scaled_residual = s·r and inv_weight = 1/s.  s cancels (1/S_B·s = 1) but is
    applied as gd_kernel.accumulate_rows, objective_and_gradient and sgd_step apply it, so
    this and the general path give the same update from the same residual."""
    cdef double g
    cdef Py_ssize_t j
    if inv_weight == 1.0 and l2 == 0.0:
        # The same values with the ·1 and the + 0·w left out (measured: 20% of a row).
        for j in range(d):
            updated[j] = <floating>(theta[j] - lr * (scaled_residual * x[j]))
    else:
        for j in range(d):
            g = <floating>((scaled_residual * x[j]) * inv_weight + l2 * theta[j])
            updated[j] = <floating>(theta[j] - lr * g)
    if m > d:
        g = <floating>(scaled_residual * inv_weight)
        updated[d] = <floating>(theta[d] - lr * g)
    if l1 > 0.0:
        l1_proximal_step(updated, d, lr * l1)


cdef inline floating sgd_row_update_then_dot(
    const floating* x, floating residual, const floating* theta, floating* updated,
    Py_ssize_t d, double lr, const floating* x_next,
) noexcept nogil:
    """sgd_row_update without weights, l2 or l1 (w' = w − lr·r·x, its values to the bit),
    and in the same sweep x_next·w', summed exactly as row_residual sums it: the next row's
    dot product starts while w' is still in registers instead of waiting for it to be
    stored and loaded again.  The intercept is left to the caller."""
    cdef floating lanes[ROW_DOT_LANES]
    cdef floating step[ROW_DOT_LANES]
    cdef floating short_lanes[SHORT_DOT_LANES]
    cdef floating total = 0, value
    cdef Py_ssize_t j = 0, k
    if d < SHORT_ROW:
        # short_row_dot's lanes, order and muladd
        for k in range(SHORT_DOT_LANES):
            short_lanes[k] = 0
        while j + SHORT_DOT_LANES <= d:
            for k in range(SHORT_DOT_LANES):
                value = <floating>(theta[j + k] - lr * (residual * x[j + k]))
                updated[j + k] = value
                short_lanes[k] = muladd(x_next[j + k], value, short_lanes[k])
            j = j + SHORT_DOT_LANES
        while j < d:
            value = <floating>(theta[j] - lr * (residual * x[j]))
            updated[j] = value
            total = muladd(x_next[j], value, total)
            j = j + 1
        return fold_short_lanes(short_lanes, total, d)
    for k in range(ROW_DOT_LANES):
        lanes[k] = 0
    while j + ROW_DOT_LANES <= d:
        for k in range(ROW_DOT_LANES):
            step[k] = <floating>(theta[j + k] - lr * (residual * x[j + k]))
        for k in range(ROW_DOT_LANES):
            updated[j + k] = step[k]
        for k in range(ROW_DOT_LANES):
            lanes[k] = lanes[k] + x_next[j + k] * step[k]
        j = j + ROW_DOT_LANES
    while j < d:
        value = <floating>(theta[j] - lr * (residual * x[j]))
        updated[j] = value
        total = total + x_next[j] * value
        j = j + 1
    return fold_lanes(lanes) + total
