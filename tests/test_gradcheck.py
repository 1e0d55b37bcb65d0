"""check_grad: the core's gradient against central finite differences, and the gradient the
core reports against an independent NumPy computation."""

import re
import warnings

import numpy as np
import pytest

import gdcore
from gdcore import _core

from conftest import problem


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_check_grad_small_in_float64(fit_intercept, weighted, l2):
    X, y, coef = problem(n=100, d=6)
    rng = np.random.default_rng(3)
    s = rng.uniform(0, 2, 100) if weighted else None
    point = coef + rng.standard_normal(6)
    err = gdcore.check_grad(X, y, point, 0.4 if fit_intercept else 0.0, sample_weight=s, l2=l2,
                            fit_intercept=fit_intercept)
    assert err < 1e-7


def test_check_grad_with_l1_away_from_zero():
    X, y, coef = problem(n=80, d=4)
    point = np.array([0.5, -1.0, 2.0, 0.3])
    assert gdcore.check_grad(X, y, point, 0.0, l1=0.1) < 1e-7


def test_check_grad_with_l1_and_a_weight_nearer_zero_than_the_step():
    # w₀ = 1e-7 is inside the default step (6e-6): differences over ±6e-6 crossed the kink of
    # l1·|w₀| and reported ~0.1 for a correct gradient; they are now taken over |w₀|/2
    X, y, coef = problem(n=80, d=4)
    for tiny in (1e-7, 1e-12, 1e-300, 5e-324):
        # the smooth part is differenced there, l1·sign(w₀) added: no step crosses the kink
        point = np.array([tiny, -1.0, 2.0, 0.3])
        assert gdcore.check_grad(X, y, point, 0.0, l1=0.1) < 1e-7, tiny


def test_check_grad_warns_where_rounding_dominates():
    """At the least-squares minimum the gradient is ~1e-13, the size of the finite
    differences' rounding: the ratio is ~1 for a correct gradient, and a RuntimeWarning says
    why; away from the minimum the same call is quiet and small."""
    X, y, _ = problem(n=200, d=5, noise=0.1)
    solution = np.linalg.lstsq(np.c_[X, np.ones(len(y))], y, rcond=None)[0]
    with pytest.warns(RuntimeWarning, match="rounding error .*away from the minimum"):
        gdcore.check_grad(X, y, solution[:5], solution[5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gdcore.check_grad(X, y, solution[:5] + 0.3, solution[5]) < 1e-8


def test_check_grad_warns_where_float32_rounding_of_large_values_dominates():
    """float32 data with y around 1e4: each residual is a difference of values near 1e4, so
    J's rounding (not the gradient) sets the ratio; the warning must say so."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20000, 5)).astype(np.float32)
    w = rng.standard_normal(5)
    y = (X @ w + 1e4 + 0.1 * rng.standard_normal(20000)).astype(np.float32)
    with pytest.warns(RuntimeWarning, match="values large for the dtype"):
        gdcore.check_grad(X, y, w + 0.01, 1e4)


def test_ordinary_float32_data_checks_quietly_and_warns_at_the_minimum():
    """README-sized float32 data (100,000 × 20, noise 0.1): a correct gradient measures
    ~1e-6 at points far from the minimum, where check_grad warned that rounding might reach
    1e-3 to 0.08 (its estimate summed the rows' rounding sizes, ~√n times their typical
    sum); at the float32 minimum, where the gradient is rounding, it still warns."""
    X, y, coef = gdcore.make_regression(100_000, 20, noise=0.1, seed=0)
    X32, y32 = X.astype(np.float32), y.astype(np.float32)
    far = coef + 5 * np.random.default_rng(0).standard_normal(20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for point in (np.zeros(20), coef + 1.0, far):
            assert gdcore.check_grad(X32, y32, point, 0.0) < 1e-4
    fitted = gdcore.fit(X32, y32, optimizer="gd", lr=1.0, epochs=200, tol=None,
                        precompute=False)
    with pytest.warns(RuntimeWarning, match="rounding error"):
        gdcore.check_grad(X32, y32, fitted.coef, fitted.intercept)


def test_float32_rows_that_repeat_warn_with_a_bound_above_the_ratio():
    """Integer features with an exact y around 1e4 in float32: identical rows round alike (no
    √n cancelling), and the residuals at θ ± h (h = 5 at θ = 1000) are far above those at θ.
    A correct gradient measures 2e-2 to 6e-2; the warning must come, with an "up to" above
    that (a root-sum-square estimate stayed silent; the estimate at θ alone said 6e-4)."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 3, (1000, 2)).astype(np.float32)
    y = (X @ [1000.0, 2000.0] + 5000).astype(np.float32)
    for coef in ([1000.01, 2000.0], [1000.003, 2000.0]):
        with pytest.warns(RuntimeWarning, match="rounding error") as caught:
            error = gdcore.check_grad(X, y, np.array(coef), 5000.0)
        bound = float(re.search(r"relative error up to ~(\S+);", str(caught[0].message))[1])
        assert 1e-3 < error < bound


def test_check_grad_float32():
    # a correct float32 gradient measures ~3e-6 here; one row left out of it measured 5e-3
    X, y, coef = problem(n=100, d=5, dtype=np.float32)
    assert gdcore.check_grad(X, y, coef + 0.5, 0.2) < 1e-4


def test_core_gradient_equals_numpy():
    X, y, coef = problem(n=300, d=7)
    s = np.random.default_rng(1).uniform(0, 1, 300)
    theta = np.append(coef * 0.3, -0.2)
    loss, grad = _core.objective_gradient(X, y, s, theta, 0.1, 0.0, True, 2)
    r = X @ theta[:7] + theta[7] - y
    np.testing.assert_allclose(grad[:7], X.T @ (s * r) / s.sum() + 0.1 * theta[:7], rtol=1e-12)
    assert grad[7] == pytest.approx((s * r).sum() / s.sum(), rel=1e-12)
    assert loss == pytest.approx((s * r * r).sum() / (2 * s.sum()) + 0.05 * theta[:7] @ theta[:7],
                                 rel=1e-13)


@pytest.mark.parametrize("coef, intercept, error, message", [
    (np.zeros(4), 0.0, ValueError, "coef must have shape"),
    ([np.nan, 0.0, 0.0], 0.0, ValueError, "coef contains NaN"),
    ([[1.0, 2.0], [3.0]], 0.0, TypeError, "coef could not be converted"),
    (np.zeros(3), np.inf, ValueError, "intercept must be finite"),
    (np.zeros(3), "a", TypeError, "intercept must be a real number"),
])
def test_check_grad_rejects_bad_coef(coef, intercept, error, message):
    X, y, _ = problem(n=10, d=3)
    with pytest.raises(error, match=message):
        gdcore.check_grad(X, y, coef, intercept)


@pytest.mark.parametrize("coef, message", [
    ([1e39, 1.0], "coef and intercept must be within the data's dtype \\(float32"),
    ([1e30, 1.0], "the objective or its gradient overflows float32"),
])
def test_check_grad_refuses_a_point_past_the_dtype(coef, message):
    """float32 data: a coef that does not fit in float32, or a J past its range, used to give
    NaN (with RuntimeWarnings) or a meaningless error instead of saying so."""
    X, y = np.ones((5, 2), np.float32), np.ones(5, np.float32)
    with pytest.raises(ValueError, match=message):
        gdcore.check_grad(X, y, np.array(coef))


@pytest.mark.parametrize("options, message", [
    (dict(step=-1.0), "step must be > 0, got -1.0"),
    (dict(step=0.0), "step must be > 0, got 0.0"),
    (dict(intercept=5.0, fit_intercept=False),
     "intercept must be 0 when fit_intercept=False, got 5.0"),
])
def test_check_grad_rejects_bad_step_and_intercept(options, message):
    X, y, _ = problem(n=10, d=3)
    with pytest.raises(ValueError, match=message):
        gdcore.check_grad(X, y, np.zeros(3), **options)


@pytest.mark.parametrize("scale", [1e-20, 1e-100])
def test_data_near_zero_warns_instead_of_a_silent_wrong_ratio(scale):
    """With X and y near 0, J(θ) is ~0 while J(θ ± h) holds the step's own h²/2: the
    differences' rounding is that of J(θ ± h), and the warning says the ratio means little."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((200, 4))
    y = X @ np.ones(4) + 2.0
    with pytest.warns(RuntimeWarning, match="data near 0"):
        gdcore.check_grad(X * scale, y * scale, np.zeros(4), 0.0)


@pytest.mark.parametrize("scale", [1e120, 1e150])
def test_a_huge_but_finite_gradient_is_checked(scale):
    """‖g‖₂ of a gradient near 1e150 overflowed its squares (the ratio came out NaN)."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((200, 4))
    y = X @ np.ones(4) + 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        error = gdcore.check_grad(X * scale, y * scale, np.zeros(4), 0.0)
    assert error < 1e-8


def test_check_grad_checks_its_settings_first_and_its_data_on_n_threads(monkeypatch):
    """As gdcore.fit: a bad setting is named before any pass over the data (here, data a
    pass would refuse), and the data's NaN/inf check runs on the n_threads given."""
    X, y, _ = problem(n=10, d=3)
    X_bad = X.copy()
    X_bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="l2 must be >= 0"):
        gdcore.check_grad(X_bad, y, np.zeros(3), l2=-1.0)
    with pytest.raises(ValueError, match="n_threads must be"):
        gdcore.check_grad(X_bad, y, np.zeros(3), n_threads=0)
    threads = []
    real_all_finite = _core.all_finite

    def all_finite(values, n_threads=0):
        threads.append(n_threads)
        return real_all_finite(values, n_threads)

    monkeypatch.setattr(_core, "all_finite", all_finite)
    gdcore.check_grad(X, y, np.zeros(3), n_threads=1)
    assert threads and set(threads) == {1}


@pytest.mark.parametrize("dtype, step", [(np.float64, 1e300), (np.float64, 1e200),
                                         (np.float32, 1e30), (np.float32, 1e39)])
def test_a_step_whose_differences_overflow_is_refused_naming_it(dtype, step):
    # J(θ ± h) past the dtype's range made the ratio inf − inf = NaN, returned without an
    # error (float32 θ ± h past its range, too)
    X = np.array([[0.5, 0.25], [0.75, 1.0]], dtype=dtype)
    y = np.array([1.0, 2.0], dtype=dtype)
    with pytest.raises(ValueError, match="step"):
        gdcore.check_grad(X, y, np.zeros(2), 0.0, step=step)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", [dict(), dict(l2=0.3, l1=0.1), dict(fit_intercept=False)])
def test_check_grad_reports_a_wrong_gradient(monkeypatch, dtype, options):
    """check_grad can fail: a core gradient 0.1% too large (or with one entry off) measures
    about that, quietly, where every other test here asserts only a small ratio."""
    X, y, coef = problem(n=200, d=5, dtype=dtype)
    point = coef.astype(np.float64) + 0.5
    intercept = 0.0 if options.get("fit_intercept") is False else 0.3
    real = _core.objective_gradient
    assert gdcore.check_grad(X, y, point, intercept, **options) < 1e-4

    def wrong(scale, shift):
        def objective_gradient(*args):
            loss, grad = real(*args)
            grad = np.array(grad) * scale
            grad[1] += shift * np.abs(grad).max()
            return loss, grad
        return objective_gradient

    for scale, shift, expected in [(1.001, 0.0, 1e-3), (1.0, 0.01, 1e-2)]:
        monkeypatch.setattr(_core, "objective_gradient", wrong(scale, shift))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            error = gdcore.check_grad(X, y, point, intercept, **options)
        assert expected / 3 < error < expected * 3, (scale, shift, error)
