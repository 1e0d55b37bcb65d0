# cython: cdivision=True
# Learning-rate schedules of SPEC section 4 (closed forms of torch.optim.lr_scheduler),
# evaluated once per update from the 0-based epoch e and the 1-based update count t.

from libc.math cimport pow, cos, floor, M_PI
from gd_types cimport (ScheduleConfig, SCHED_CONSTANT, SCHED_STEP, SCHED_EXPONENTIAL,
                       SCHED_COSINE, SCHED_LINEAR, SCHED_INVSCALING)


cdef inline double scheduled_lr(const ScheduleConfig* cfg, double lr, long long epoch,
                                long long t) noexcept nogil:
    """StepLR: lr·γ^⌊e/step_size⌋; ExponentialLR: lr·γ^e;
    CosineAnnealingLR: eta_min + (lr − eta_min)(1 + cos(π·e/T_max))/2;
    LinearLR: lr·(start + (end − start)·min(e, total_iters)/total_iters);
    InverseScaling: lr / t^power_t."""
    cdef double e = <double>epoch, progress
    if cfg.kind == SCHED_STEP:
        return lr * pow(cfg.gamma, floor(e / cfg.step_size))
    if cfg.kind == SCHED_EXPONENTIAL:
        return lr * pow(cfg.gamma, e)
    if cfg.kind == SCHED_COSINE:
        return cfg.eta_min + (lr - cfg.eta_min) * (1.0 + cos(M_PI * e / cfg.T_max)) / 2.0
    if cfg.kind == SCHED_LINEAR:
        progress = e if e < cfg.total_iters else cfg.total_iters
        return lr * (cfg.start_factor
                     + (cfg.end_factor - cfg.start_factor) * progress / cfg.total_iters)
    if cfg.kind == SCHED_INVSCALING:
        return lr / pow(<double>t, cfg.power_t)
    return lr
