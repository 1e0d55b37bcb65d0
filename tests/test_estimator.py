"""GDRegressor: scikit-learn's own estimator checks, pipelines, search, pickling, warm starts
and partial_fit, each against gdcore.fit or numpy.linalg.lstsq."""

import pickle

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="GDRegressor needs the optional scikit-learn")

from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import gdcore  # noqa: E402
from gdcore import GDRegressor  # noqa: E402

from conftest import lstsq_solution, problem  # noqa: E402


# Mini-batch fits are checked below rather than here: with batches, a sample weight of 2 is
# not the same as a repeated row (the batches differ), which one of these checks demands.
@parametrize_with_checks([GDRegressor(), GDRegressor(optimizer="adam", lr=0.05)])
def test_scikit_learn_checks(estimator, check):
    check(estimator)


def test_matches_fit_and_lstsq():
    X, y, _ = problem(n=200, d=4)
    model = GDRegressor(optimizer="gd", lr=0.5, epochs=300, tol=None).fit(X, y)
    direct = gdcore.fit(X, y, optimizer="gd", lr=0.5, epochs=300, tol=None)
    np.testing.assert_array_equal(model.coef_, direct.coef)
    assert model.intercept_ == direct.intercept
    assert model.n_iter_ == 300 and len(model.loss_curve_) == 300
    coef, intercept = lstsq_solution(X, y)
    np.testing.assert_allclose(model.coef_, coef, atol=1e-8)
    np.testing.assert_allclose(model.predict(X), X @ coef + intercept, atol=1e-7)


def test_pipeline_and_grid_search():
    X, y, _ = problem(n=300, d=5)
    X = X * np.array([1.0, 100.0, 0.01, 10.0, 1.0]) + 50.0  # badly scaled raw features
    pipe = make_pipeline(StandardScaler(), GDRegressor(optimizer="gd", epochs=200))
    search = GridSearchCV(pipe, {"gdregressor__lr": [0.001, 0.1, 0.5]}, cv=3)
    search.fit(X, y)
    assert search.best_params_["gdregressor__lr"] == 0.5
    assert search.best_score_ > 0.95
    assert search.score(X, y) > 0.95


def test_pickle_round_trip():
    X, y, _ = problem(n=100, d=3)
    model = GDRegressor(optimizer="adam", lr=0.05, epochs=30, batch_size=10, seed=1).fit(X, y)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))


def test_warm_start_continues_exactly():
    X, y, _ = problem(n=80, d=3)
    options = dict(optimizer="adam", lr=0.02, batch_size=8, seed=2, tol=None)
    twice = GDRegressor(epochs=5, warm_start=True, **options)
    twice.fit(X, y).fit(X, y)
    once = GDRegressor(epochs=10, **options).fit(X, y)
    np.testing.assert_array_equal(twice.coef_, once.coef_)
    assert twice.loss_curve_ == once.loss_curve_ and twice.n_iter_ == 5
    cold = GDRegressor(epochs=5, **options)
    cold.fit(X, y).fit(X, y)  # without warm_start, each fit starts afresh
    np.testing.assert_array_equal(cold.coef_, GDRegressor(epochs=5, **options).fit(X, y).coef_)


def test_partial_fit_is_one_epoch_per_chunk():
    X, y, _ = problem(n=90, d=3)
    model = GDRegressor(optimizer="adam", lr=0.05, shuffle=False)
    for chunk in np.array_split(np.arange(90), 3):
        model.partial_fit(X[chunk], y[chunk])
    # the same three updates, made by hand from one continued fit per chunk
    result = None
    for chunk in np.array_split(np.arange(90), 3):
        result = gdcore.fit(X[chunk], y[chunk], optimizer="adam", lr=0.05, epochs=1,
                            tol=None, init=result, shuffle=False, precompute=False)
    np.testing.assert_array_equal(model.coef_, result.coef)
    assert len(model.loss_curve_) == 3
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(X[:, :2], y)


def test_feature_names():
    pd = pytest.importorskip("pandas", reason="feature names come from a pandas DataFrame")
    X, y, _ = problem(n=50, d=3)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    model = GDRegressor(epochs=5).fit(frame, y)
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    assert model.n_features_in_ == 3
