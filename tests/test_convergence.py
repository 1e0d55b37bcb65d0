"""Fits converge to the least-squares solution (numpy.linalg.lstsq) on well-conditioned
problems, for every optimizer, in both backends."""

import numpy as np
import pytest

import gdcore
from gdcore.optim import SGD, Adagrad, Adam, NormalizedGD, RMSprop
from gdcore.schedules import CosineAnnealingLR, InverseScaling

from conftest import lstsq_solution, problem

# (optimizer, schedule, batch_size, epochs): settings under which each converges tightly.
CASES = {
    "gd": (SGD(lr=0.5), None, None, 300),
    "momentum": (SGD(lr=0.1, momentum=0.9), None, None, 300),
    "nesterov": (SGD(lr=0.1, momentum=0.9, nesterov=True), None, None, 300),
    "adagrad": (Adagrad(lr=0.5), None, None, 600),
    "rmsprop": (RMSprop(lr=0.01), CosineAnnealingLR(T_max=600), None, 600),
    "adam": (Adam(lr=0.05), CosineAnnealingLR(T_max=600), None, 600),
    "amsgrad": (Adam(lr=0.05, amsgrad=True), CosineAnnealingLR(T_max=600), None, 600),
    "normalized": (NormalizedGD(lr=0.1), CosineAnnealingLR(T_max=800), None, 800),
    "sgd-minibatch": (SGD(lr=0.1), InverseScaling(power_t=0.6), 20, 400),
}


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("case", CASES)
def test_converges_to_lstsq(case, backend):
    X, y, _ = problem(n=200, d=5, noise=0.3)
    optimizer, schedule, batch_size, epochs = CASES[case]
    result = gdcore.fit(X, y, optimizer=optimizer, schedule=schedule, batch_size=batch_size,
                        epochs=epochs, tol=None, seed=0, backend=backend)
    coef, intercept = lstsq_solution(X, y)
    tol = 5e-3 if batch_size else 1e-4
    np.testing.assert_allclose(result.coef, coef, atol=tol)
    assert result.intercept == pytest.approx(intercept, abs=tol)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_weighted_ridge_solution(fit_intercept, weights):
    X, y, _ = problem(n=120, d=5, noise=0.5)
    result = gdcore.fit(X, y, sample_weight=weights, l2=0.3, optimizer="gd", lr=0.5,
                        epochs=500, tol=None, gtol=1e-12, fit_intercept=fit_intercept)
    coef, intercept = lstsq_solution(X, y, weights, fit_intercept=fit_intercept, l2=0.3)
    np.testing.assert_allclose(result.coef, coef, rtol=1e-9, atol=1e-11)
    assert result.intercept == pytest.approx(intercept, rel=1e-9, abs=1e-11)
    assert result.stop_reason == "gtol" and result.converged


def test_float32_converges():
    X, y, _ = problem(n=300, d=6, dtype=np.float32)
    result = gdcore.fit(X, y, optimizer="adam", lr=0.05, epochs=400, tol=None,
                        schedule=CosineAnnealingLR(T_max=400))
    coef, intercept = lstsq_solution(X, y)
    assert result.coef.dtype == np.float32
    np.testing.assert_allclose(result.coef, coef, atol=2e-4)
    assert result.intercept == pytest.approx(intercept, abs=2e-4)


def test_mse_matches_lstsq_residual():
    X, y, _ = problem(n=500, d=4, noise=0.2)
    result = gdcore.fit(X, y, optimizer="gd", lr=0.5, epochs=200, tol=None)
    coef, intercept = lstsq_solution(X, y)
    best = np.mean((X @ coef + intercept - y) ** 2)
    # the last recorded loss is J = mse/2 at the parameters before the last update
    assert 2 * result.loss_history[-1] == pytest.approx(best, rel=1e-8)


def lasso_problem():
    """Correlated features, half of the true coefficients zero."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 6))
    X[:, 1] += 0.5 * X[:, 0]
    y = X @ [1.5, 0.0, -2.0, 0.0, 0.3, 0.0] + 0.7 + 0.3 * rng.standard_normal(100)
    return X, y, rng.uniform(0.2, 2.0, 100)


@pytest.mark.parametrize("run", [dict(backend="core", precompute=False),
                                 dict(backend="core", precompute=True),
                                 dict(backend="numpy")],
                         ids=["core-streaming", "core-gram", "numpy"])
@pytest.mark.parametrize("weighted", [False, True])
def test_l1_proximal_gd_reaches_the_lasso_solution(weighted, run):
    """SPEC §1's J = 1/(2S)·Σsᵢrᵢ² + l1‖w‖₁ is scikit-learn's Lasso objective with alpha = l1
    (Lasso rescales sample weights to sum to n, which gives the same 1/(2S)·Σsᵢrᵢ²).
    Full-batch SGD with the proximal step is ISTA: with lr = 1/L it converges linearly to
    Lasso's minimiser (coordinate descent to tol 1e-14), zeros included exactly."""
    Lasso = pytest.importorskip("sklearn.linear_model",
                                reason="checked against scikit-learn's Lasso (optional)").Lasso
    X, y, weights = lasso_problem()
    s = weights if weighted else None
    lasso = Lasso(alpha=0.1, tol=1e-14, max_iter=1_000_000).fit(X, y, sample_weight=s)
    assert 1 <= np.count_nonzero(lasso.coef_ == 0.0) < 6     # l1 zeroes some, not all
    ones = np.ones(100) if s is None else s
    A = np.column_stack([X, np.ones(100)])
    L = np.linalg.eigvalsh(A.T @ (A * ones[:, None]) / ones.sum()).max()
    result = gdcore.fit(X, y, sample_weight=s, optimizer="sgd", lr=1.0 / L, l1=0.1,
                        epochs=500, tol=None, **run)
    np.testing.assert_allclose(result.coef, lasso.coef_, rtol=0, atol=1e-10)
    assert result.intercept == pytest.approx(lasso.intercept_, abs=1e-10)
    np.testing.assert_array_equal(result.coef == 0.0, lasso.coef_ == 0.0)
