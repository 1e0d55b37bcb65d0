"""check_grad: the core's analytic gradient against central finite differences of J."""

from __future__ import annotations

import math
import warnings

import numpy as np

from . import _core
from ._reference import finite_in_data_precision
from ._validation import (FINITE_CHECK_BLOCK, _as_array, check_all_finite, check_bool,
                          check_data, check_float, resolve_n_threads)


def check_grad(X, y, coef, intercept=0.0, *, sample_weight=None, l2=0.0, l1=0.0,
               fit_intercept=True, step=None, n_threads=None):
    """Relative error ‖g − g_fd‖₂ / max(‖g‖₂, ‖g_fd‖₂, tiny) between the gradient the core
    computes at (coef, intercept) and central differences (J(θ + hₖeₖ) − J(θ − hₖeₖ)) / 2hₖ
    of the objective J the core computes, with hₖ = step·max(1, |θₖ|).

    ``step`` defaults to ε^(1/3) of the data's dtype (about 6e-6 for float64, 5e-3 for
    float32), which balances truncation and rounding error.  With l1 > 0 the subgradient
    l1·sign(w) is added to g (J is not differentiable where a wⱼ is 0), and for a wⱼ nearer 0
    than its step, whose differences would cross that kink, the differences are of J without
    its l1 term, plus l1·sign(wⱼ), its exact derivative there.
    Expect ~1e-8 or less in float64 and ~1e-3 in float32 for a correct gradient, at a point
    where the gradient is well above the differences' rounding error (J's rounding, about
    ε·(Σ sᵢ|rᵢ|(|xᵢ·w| + |b| + |yᵢ|)/S + |J|), over h): near a minimum, or with large offsets
    in float32, the ratio compares rounding with rounding, and a RuntimeWarning says so when
    the ratio is above √ε (a smaller one is a pass).
    """
    # the settings first, as gdcore.fit checks them: a bad one is not reported only after a
    # pass over the data; n_threads bounds the data's NaN/inf check too
    l2 = check_float("l2", l2)
    l1 = check_float("l1", l1)
    fit_intercept = check_bool("fit_intercept", fit_intercept)
    n_threads = resolve_n_threads(n_threads)
    problem = check_data(X, y, sample_weight, n_threads=n_threads)
    d, dtype = problem.d, problem.dtype
    coef = _as_array("coef", coef)
    if coef.shape != (d,):
        raise ValueError(f"coef must have shape ({d},), got {coef.shape}")
    coef = coef.astype(np.float64)
    check_all_finite("coef", coef, n_threads=n_threads)
    intercept = check_float("intercept", intercept, low=-math.inf)
    if not fit_intercept and intercept != 0.0:
        raise ValueError(f"intercept must be 0 when fit_intercept=False, got {intercept}")
    eps = float(np.finfo(dtype).eps)
    if step is None:
        step = eps ** (1 / 3)
    step = check_float("step", step, low=-math.inf)
    if step <= 0:
        raise ValueError(f"step must be > 0, got {step}")
    with np.errstate(over="ignore"):
        theta = np.append(coef, float(intercept) if fit_intercept else 0.0).astype(dtype)
    if not np.isfinite(theta).all():
        raise ValueError(f"coef and intercept must be within the data's dtype ({np.dtype(dtype)}"
                         f", largest {np.finfo(dtype).max:.4g}); got a largest |value| of "
                         f"{np.max(np.abs(np.append(coef, intercept))):.4g}")
    weights = problem.sample_weight if problem.sample_weight is not None else np.empty(0, dtype)

    largest_loss = [0.0]    # the largest |J| the differences take: their rounding's scale

    def objective(point, l1=l1):
        loss, _ = _core.objective_gradient(problem.X, problem.y, weights, point, l2, l1,
                                           fit_intercept, n_threads)
        largest_loss[0] = max(largest_loss[0], abs(loss))
        return loss

    loss, grad = _core.objective_gradient(problem.X, problem.y, weights, theta, l2, l1,
                                          fit_intercept, n_threads)
    grad = grad.astype(np.float64)
    # as a fit would call it diverged: J past the data type's range, or g not finite
    if not (finite_in_data_precision(loss, dtype) and np.isfinite(grad).all()):
        raise ValueError(f"the objective or its gradient overflows {np.dtype(dtype)} at this "
                         "coef and intercept: check the gradient at a smaller point")
    if l1 > 0:
        grad[:d] += l1 * np.sign(theta[:d])
    m = d + 1 if fit_intercept else d
    numeric = np.zeros(m)
    steps = np.zeros(d + 1)     # hₖ as taken (0 for an unfitted b)
    for k in range(m):
        h = step * max(1.0, abs(float(theta[k])))
        near_kink = l1 > 0 and k < d and 0.0 < abs(float(theta[k])) < h
        plus, minus = theta.copy(), theta.copy()
        with np.errstate(over="ignore"):
            plus[k] += h
            minus[k] -= h
        if not (np.isfinite(plus[k]) and np.isfinite(minus[k])):
            raise ValueError(f"step={step} takes θ[{k}] = {float(theta[k]):.6g} past "
                             f"{np.dtype(dtype)}'s range (h = {h:.4g}); use a smaller step")
        taken = float(plus[k]) - float(minus[k])
        if taken == 0.0:
            raise ValueError(f"step={step} is below the spacing of {np.dtype(dtype)} at "
                             f"θ[{k}] = {float(theta[k]):.6g}: θ did not move; use a larger step "
                             f"(e.g. 1e-6, or 1e-3 for float32)")
        # divide by the step actually taken after rounding to the dtype
        penalty = 0.0 if near_kink else l1
        j_plus, j_minus = objective(plus, penalty), objective(minus, penalty)
        if not (finite_in_data_precision(j_plus, dtype)
                and finite_in_data_precision(j_minus, dtype)):
            # J(θ ± h) past the dtype's range: the difference would be inf − inf, a NaN ratio
            raise ValueError(f"step={step}: the objective overflows {np.dtype(dtype)} at "
                             f"θ[{k}] ± {h:.4g}, so no finite difference can be taken; use a "
                             f"smaller step")
        numeric[k] = (j_plus - j_minus) / taken
        if near_kink:
            numeric[k] += l1 * np.sign(theta[k])
        steps[k] = taken / 2
    analytic = grad[:m]
    scale = max(_norm(analytic), _norm(numeric), np.finfo(np.float64).tiny)
    error = float(_norm(analytic - numeric) / scale)
    # J's rounding at θ, and at θ ± h, where it can be far larger (data near 0: J(θ) ~ 0
    # while the step's own h²/2 is not)
    rounding = math.sqrt(m) * max(_loss_rounding(problem, theta, loss, eps, steps),
                                  eps * largest_loss[0]) / float(steps[:m].min())
    # A ratio below √ε is a pass whatever the rounding could have been (rounding adds to the
    # ratio, it does not hide a wrong gradient): the warning is for a large ratio that
    # rounding alone may explain.  (The estimate sums the rows' rounding sizes: identical
    # rows round alike, so their errors add up, not as √n; on ordinary data the ratio is
    # far below it, and a warning there, beside a ratio of 1e-6, only misled.)
    if error > math.sqrt(eps) and rounding > math.sqrt(eps) * scale:
        warnings.warn(f"check_grad: the gradient here (norm {scale:.3g}) is only "
                      f"{scale / rounding:.3g}x the finite differences' rounding error "
                      f"(~{rounding:.3g}: near a minimum, with a small step, with values large "
                      f"for the dtype, or with data near 0, where the step's own h²/2 in J "
                      f"swamps g·h): even a correct "
                      f"gradient can show a relative error up to ~{min(1.0, rounding / scale):.2g}"
                      f"; check it at a point away from the minimum, or with a larger step",
                      RuntimeWarning, stacklevel=2)
    return error


def _norm(values):
    """‖values‖₂ without overflow (a finite gradient near 1e200 squared is not finite)."""
    largest = float(np.max(np.abs(values))) if len(values) else 0.0
    if largest == 0.0 or not math.isfinite(largest):
        return largest
    return largest * float(np.linalg.norm(values / largest))


def _loss_rounding(problem, theta, loss, eps, steps):
    """About how far J computed in the data's precision at θ ± hₖeₖ is from the exact J: each
    residual rᵢ ± hₖxᵢₖ is off by ~ε·(|xᵢ·w| + |b| + |yᵢ|), so its square by twice that times
    |rᵢ| + maxₖ hₖ|xᵢₖ| (with large values the step's own residual can be far above rᵢ's), plus
    the rounding of the sum itself (~ε·|J|).  One pass over X, a finite check's block of
    values at a time."""
    X, y, weights = problem.X, problem.y, problem.sample_weight
    w, b = theta[:-1], abs(float(theta[-1]))
    rows = max(1, FINITE_CHECK_BLOCK // X.shape[1])
    total = 0.0
    for start in range(0, X.shape[0], rows):
        block = X[start:start + rows]
        predicted = (block @ w).astype(np.float64)
        residual = np.abs(predicted + float(theta[-1]) - y[start:start + rows])
        residual += np.maximum(np.max(np.abs(block) * steps[:-1], axis=1), steps[-1])
        size = np.abs(predicted) + b + np.abs(y[start:start + rows])
        terms = residual * size
        total += float(terms @ weights[start:start + rows] if weights is not None
                       else terms.sum())
    count = float(weights.sum()) if weights is not None else float(X.shape[0])
    return eps * (total / count + abs(loss))
