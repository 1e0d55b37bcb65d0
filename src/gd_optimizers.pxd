# The update rules of SPEC section 3 (torch.optim's equations), one parameter vector at a time.
#
# θ = (w₀ … w_{d−1}, b) holds m = d + fit_intercept entries that move; g is the gradient,
# t the 1-based update count and lr the scheduled learning rate.  Each rule keeps its
# state in up to three vectors of the same length (state0, state1, state2).
# Every rule returns Σ θⱼ·0 over the new values: 0 when they are all finite, NaN otherwise,
# which costs nothing in the loop and keeps it vectorisable.

from cython cimport floating
from libc.math cimport sqrt, pow, fabs
from gd_types cimport (OptimConfig, OPT_SGD, OPT_ADAGRAD, OPT_RMSPROP, OPT_ADAM,
                       OPT_NORMALIZED)


cdef inline double sgd_step(const OptimConfig* cfg, floating* theta, const floating* g,
                            floating* buf, Py_ssize_t m, long long t, double lr) noexcept nogil:
    """θ ← θ − lr·g, or with momentum μ: buf ← g (t = 1) / μ·buf + (1−dampening)·g;
    nesterov: g ← g + μ·buf, else g ← buf."""
    cdef double mu = cfg.momentum, keep = 1.0 - cfg.dampening, check = 0.0
    cdef Py_ssize_t j
    # Separate loops per case keep each one branch-free, so they vectorise.
    if mu == 0.0:
        for j in range(m):
            theta[j] = <floating>(theta[j] - lr * g[j])
            check += theta[j] * 0.0
        return check
    if t == 1:
        for j in range(m):
            buf[j] = g[j]
    else:
        for j in range(m):
            buf[j] = <floating>(mu * buf[j] + keep * g[j])
    if cfg.nesterov:
        for j in range(m):
            theta[j] = <floating>(theta[j] - lr * (g[j] + mu * buf[j]))
            check += theta[j] * 0.0
    else:
        for j in range(m):
            theta[j] = <floating>(theta[j] - lr * buf[j])
            check += theta[j] * 0.0
    return check


cdef inline double adagrad_step(const OptimConfig* cfg, floating* theta, const floating* g,
                                floating* sum_sq, Py_ssize_t m, long long t,
                                double lr) noexcept nogil:
    """clr = lr/(1 + (t−1)·lr_decay);  G ← G + g²;  θ ← θ − clr·g/(√G + eps)."""
    cdef double clr = lr / (1.0 + (t - 1) * cfg.lr_decay), check = 0.0
    cdef Py_ssize_t j
    for j in range(m):
        sum_sq[j] = <floating>(sum_sq[j] + <double>g[j] * g[j])
        theta[j] = <floating>(theta[j] - clr * g[j] / (sqrt(<double>sum_sq[j]) + cfg.eps))
        check += theta[j] * 0.0
    return check


cdef inline double rmsprop_step(const OptimConfig* cfg, floating* theta, const floating* g,
                                floating* sq_avg, floating* buf, floating* g_avg,
                                Py_ssize_t m, double lr) noexcept nogil:
    """v ← αv + (1−α)g²; centered: ḡ ← αḡ + (1−α)g, a = √(v − ḡ²) + eps, else a = √v + eps;
    momentum μ > 0: buf ← μ·buf + g/a, θ ← θ − lr·buf; else θ ← θ − lr·g/a.
    (v − ḡ² ≥ 0 in exact arithmetic; it is clipped at 0 so rounding cannot give √ of a
    negative number.)"""
    cdef double alpha = cfg.alpha, variance, a, check = 0.0
    cdef Py_ssize_t j
    for j in range(m):
        sq_avg[j] = <floating>(alpha * sq_avg[j] + (1.0 - alpha) * (<double>g[j] * g[j]))
        if cfg.centered:
            g_avg[j] = <floating>(alpha * g_avg[j] + (1.0 - alpha) * g[j])
            variance = <double>sq_avg[j] - <double>g_avg[j] * g_avg[j]
            a = sqrt(variance if variance > 0.0 else 0.0) + cfg.eps
        else:
            a = sqrt(<double>sq_avg[j]) + cfg.eps
        if cfg.momentum > 0.0:
            buf[j] = <floating>(cfg.momentum * buf[j] + g[j] / a)
            theta[j] = <floating>(theta[j] - lr * buf[j])
        else:
            theta[j] = <floating>(theta[j] - lr * g[j] / a)
        check += theta[j] * 0.0
    return check


cdef inline double adam_step(const OptimConfig* cfg, floating* theta, const floating* g,
                             floating* m1, floating* m2, floating* m2_max,
                             Py_ssize_t m, long long t, double lr) noexcept nogil:
    """m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; amsgrad: v̂ ← max(v̂, v), used for v;
    θ ← θ − lr·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + eps)."""
    cdef double b1 = cfg.beta1, b2 = cfg.beta2
    cdef double correction1 = 1.0 - pow(b1, <double>t)
    cdef double correction2 = 1.0 - pow(b2, <double>t)
    cdef double second, check = 0.0
    cdef Py_ssize_t j
    for j in range(m):
        m1[j] = <floating>(b1 * m1[j] + (1.0 - b1) * g[j])
        m2[j] = <floating>(b2 * m2[j] + (1.0 - b2) * (<double>g[j] * g[j]))
        second = m2[j]
        if cfg.amsgrad:
            if m2[j] > m2_max[j]:
                m2_max[j] = m2[j]
            second = m2_max[j]
        theta[j] = <floating>(theta[j] - lr * (m1[j] / correction1)
                              / (sqrt(second / correction2) + cfg.eps))
        check += theta[j] * 0.0
    return check


cdef inline double normalized_step(const OptimConfig* cfg, floating* theta, const floating* g,
                                   Py_ssize_t m, double lr) noexcept nogil:
    """θ ← θ − lr·g / max(‖g‖₂, eps)."""
    cdef double norm_sq = 0.0, scale, check = 0.0
    cdef Py_ssize_t j
    for j in range(m):
        norm_sq += <double>g[j] * g[j]
    scale = sqrt(norm_sq)
    if scale < cfg.eps:
        scale = cfg.eps
    scale = lr / scale
    for j in range(m):
        theta[j] = <floating>(theta[j] - scale * g[j])
        check += theta[j] * 0.0
    return check


cdef inline double optimizer_step(const OptimConfig* cfg, floating* theta, const floating* g,
                                  floating* state0, floating* state1, floating* state2,
                                  Py_ssize_t m, long long t, double lr) noexcept nogil:
    """One update of the configured rule; returns 0 if the new θ is finite, else NaN."""
    if cfg.kind == OPT_SGD:
        return sgd_step(cfg, theta, g, state0, m, t, lr)
    if cfg.kind == OPT_ADAGRAD:
        return adagrad_step(cfg, theta, g, state0, m, t, lr)
    if cfg.kind == OPT_RMSPROP:
        return rmsprop_step(cfg, theta, g, state0, state1, state2, m, lr)
    if cfg.kind == OPT_ADAM:
        return adam_step(cfg, theta, g, state0, state1, state2, m, t, lr)
    return normalized_step(cfg, theta, g, m, lr)


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
