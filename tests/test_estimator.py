"""GDRegressor: scikit-learn's own estimator checks, pipelines, search, pickling, warm starts
and partial_fit, each against gdcore.fit or numpy.linalg.lstsq."""

import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="GDRegressor needs the optional scikit-learn")

from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402
from sklearn.utils.validation import check_is_fitted  # noqa: E402

import gdcore  # noqa: E402
from gdcore import GDRegressor  # noqa: E402
from gdcore.schedules import StepLR  # noqa: E402

from conftest import lstsq_solution, problem, subprocess_env  # noqa: E402


def _mini_batch_exceptions(estimator):
    """With batches a sample weight of 2 is not a repeated row (the batches differ), which
    this check demands; the others hold, random_state making every fit the same."""
    if estimator.batch_size is None:
        return {}
    return {"check_sample_weight_equivalence_on_dense_data":
            "a weight of 2 is not a repeated row when rows are drawn into mini-batches"}


@parametrize_with_checks([GDRegressor(), GDRegressor(optimizer="adam", lr=0.05),
                          GDRegressor(optimizer="adam", lr=0.05, batch_size=8)],
                         expected_failed_checks=_mini_batch_exceptions)
def test_scikit_learn_checks(estimator, check):
    check(estimator)


def test_random_state_is_seed():
    X, y, _ = problem(n=90, d=3)
    options = dict(optimizer="adam", lr=0.05, batch_size=8, epochs=4, tol=None)
    by_seed = GDRegressor(seed=7, **options).fit(X, y)
    by_state = GDRegressor(random_state=7, **options).fit(X, y)
    np.testing.assert_array_equal(by_seed.coef_, by_state.coef_)
    drawn = GDRegressor(random_state=np.random.RandomState(0), **options).fit(X, y)
    again = GDRegressor(random_state=np.random.RandomState(0), **options).fit(X, y)
    np.testing.assert_array_equal(drawn.coef_, again.coef_)
    # both: random_state wins, as scikit-learn's ensembles set it on copies given a seed
    both = GDRegressor(seed=1, random_state=7, **options).fit(X, y)
    np.testing.assert_array_equal(both.coef_, by_seed.coef_)


def test_seeded_estimator_in_ensembles():
    """BaggingRegressor sets random_state on each copy of a model given a seed: each copy is
    then the fit of its own stream, and the ensemble's average is theirs."""
    from sklearn.ensemble import BaggingRegressor
    X, y, _ = problem(n=120, d=3)
    options = dict(optimizer="adam", lr=0.05, batch_size=8, epochs=3, tol=None)
    bag = BaggingRegressor(GDRegressor(seed=0, **options), n_estimators=3,
                           random_state=5).fit(X, y)
    seeds = [member.random_state for member in bag.estimators_]
    assert len(set(seeds)) == 3
    for member, rows in zip(bag.estimators_, bag.estimators_samples_):
        # scikit-learn passes a bootstrap sample as counts in sample_weight
        counts = np.bincount(rows, minlength=len(y)).astype(np.float64)
        alone = GDRegressor(random_state=member.random_state, **options).fit(X, y, counts)
        np.testing.assert_array_equal(member.coef_, alone.coef_)
    expected = np.mean([m.predict(X) for m in bag.estimators_], axis=0)
    np.testing.assert_allclose(bag.predict(X), expected, rtol=1e-12)


def test_warm_start_refuses_other_columns():
    """The coefficients belong to the first fit's columns: reordered, renamed or unnamed
    columns are refused (the model kept), the same names in the same order continue."""
    pd = pytest.importorskip("pandas", reason="column names come from the optional pandas")
    X, y, _ = problem(n=60, d=3)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    model = GDRegressor(optimizer="gd", lr=0.5, epochs=20, tol=None, warm_start=True)
    model.fit(frame, y)
    coef = model.coef_.copy()
    for other in (frame[["c", "b", "a"]], frame.set_axis(["a", "b", "z"], axis=1)):
        with pytest.raises(ValueError, match="previous fit that warm_start=True continues had "
                                             r"columns \['a', 'b', 'c'\]"):
            model.fit(other, y)
        np.testing.assert_array_equal(model.coef_, coef)
        assert list(model.feature_names_in_) == ["a", "b", "c"]
    model.fit(frame, y)
    longer = GDRegressor(optimizer="gd", lr=0.5, epochs=40, tol=None).fit(frame, y)
    np.testing.assert_array_equal(model.coef_, longer.coef_)
    # names on one side only: scikit-learn's warning, and the earlier fit's names kept
    with pytest.warns(UserWarning, match="X has no column names, but the previous fit"):
        model.fit(X, y)
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    unnamed = GDRegressor(optimizer="gd", lr=0.5, epochs=5, tol=None, warm_start=True).fit(X, y)
    with pytest.warns(UserWarning, match=r"X has columns \['a', 'b', 'c'\], but the previous "
                                         "fit that warm_start=True continues had none"):
        unnamed.fit(frame, y)
    assert not hasattr(unnamed, "feature_names_in_")


def test_float32_weight_that_float32_makes_zero_is_refused():
    """scikit-learn's weight check would cast to X's float32 first, turning 1e-46 into 0 and
    dropping its row silently; the estimator refuses it as gdcore.fit does."""
    X, y, _ = problem(n=40, d=2)
    weights = np.ones(40)
    weights[5] = 1e-46
    with pytest.raises(ValueError, match=r"sample_weight\[5\] = 1e-46 is 0 in float32"):
        GDRegressor(epochs=3).fit(X.astype(np.float32), y.astype(np.float32), weights)
    with pytest.raises(ValueError, match=r"sample_weight\[5\] = 1e-46 is 0 in float32"):
        GDRegressor().partial_fit(X.astype(np.float32), y.astype(np.float32), weights)


@pytest.mark.parametrize("setting, message", [
    (dict(precompute="bogus"), "precompute must be one of"),
    (dict(tol=-5.0), "tol must be >= 0"),
    (dict(tol=float("nan")), "tol must be finite"),
    (dict(n_iter_no_change=0), "n_iter_no_change must be >= 1"),
    (dict(gtol="x"), "gtol must be a real number"),
    (dict(gtol=-1.0), "gtol must be >= 0"),
    (dict(epochs=0), "epochs must be >= 1"),
    (dict(epochs=2.5), "epochs must be an integer"),
])
def test_partial_fit_checks_every_setting(setting, message):
    X, y, _ = problem(n=30, d=2)
    with pytest.raises((ValueError, TypeError), match=message):
        GDRegressor(**setting).partial_fit(X, y)
    # fit checks batch_size before using it (a string was an int() error)
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        GDRegressor(batch_size="abc").fit(X, y)


def test_partial_fit_takes_gtol_with_batches_of_any_chunk():
    """gtol stops full-batch fits; partial_fit runs one epoch and ignores it, so a stream's
    chunks around batch_size in length are all taken."""
    X, y, _ = problem(n=100, d=2)
    model = GDRegressor(gtol=1e-6, batch_size=32, seed=0)
    model.partial_fit(X[:10], y[:10])
    model.partial_fit(X, y)
    assert model.n_iter_ == 1


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


@pytest.mark.parametrize("how", ["assigned", "in place", "intercept only"])
def test_warm_start_and_partial_fit_start_from_coefficients_set_by_hand(how):
    """As scikit-learn's warm starts start from coef_ and intercept_, a warm start (or
    partial_fit) after they were set by hand starts from them, afresh: the optimizer's state,
    schedule and loss curve from the start, as gdcore.fit(init=(coef, intercept)) does.  It
    continued the earlier fit's state and dropped the values set by hand."""
    X, y, _ = problem(n=80, d=3)
    options = dict(optimizer="adam", lr=0.02, batch_size=8, seed=2, tol=None, epochs=5)
    for method in ("fit", "partial_fit"):
        model = GDRegressor(warm_start=True, **options).fit(X, y)
        if how == "assigned":
            model.coef_ = np.array([0.5, -1.0, 2.0])
        elif how == "in place":
            model.coef_[1] += 1.0
        else:
            model.intercept_ = model.intercept_ + 0.25
        start = (model.coef_.copy(), float(model.intercept_))
        getattr(model, method)(X, y)
        expected = gdcore.fit(X, y, init=start, **dict(
            options, epochs=options["epochs"] if method == "fit" else 1))
        np.testing.assert_array_equal(model.coef_, expected.coef)
        assert model.intercept_ == expected.intercept
        assert model.loss_curve_ == list(expected.loss_history)
        assert model.n_iter_ == len(model.loss_curve_) and model.result_.n_epochs == model.n_iter_
    # a warm start that nobody touched continues, as before (the test above, exactly)
    model = GDRegressor(warm_start=True, **options).fit(X, y)
    model.coef_ = model.coef_.copy()     # the same values, another array: nothing set
    model.fit(X, y)
    assert len(model.loss_curve_) == 10


@pytest.mark.parametrize("coef, intercept, error, message", [
    (np.zeros(2), 0.0, ValueError, r"^coef_, set by hand .* must be 3 finite numbers"),
    (np.array([np.nan, 0.0, 0.0]), 0.0, ValueError, r"^coef_, set by hand .* 3 finite"),
    ("abc", 0.0, ValueError, r"^coef_, set by hand .* 3 finite numbers, one a feature, got"),
    (np.zeros(3), "a", TypeError, r"^intercept_ must be a real number"),
    (np.zeros(3), np.inf, ValueError, r"^intercept_ must be finite"),
])
def test_coefficients_set_by_hand_are_checked_naming_the_attribute(coef, intercept, error,
                                                                   message):
    X, y, _ = problem(n=60, d=3)
    model = GDRegressor(epochs=3, warm_start=True).fit(X, y)
    model.coef_, model.intercept_ = coef, intercept
    for method in ("fit", "partial_fit"):
        with pytest.raises(error, match=message):
            getattr(model, method)(X, y)
        assert model.coef_ is coef and model.intercept_ is intercept    # kept as they were


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_an_intercept_without_fit_intercept_is_refused_naming_intercept_(method):
    """A start from coef_ and intercept_ with fit_intercept=False and intercept_ not 0 was
    refused by gdcore.fit naming its init argument ("init: intercept must be 0"), which the
    caller never gave."""
    X, y, _ = problem(n=60, d=3)
    model = GDRegressor(epochs=3, warm_start=True, fit_intercept=False).fit(X, y)
    model.intercept_ = 1.0
    with pytest.raises(ValueError, match=r"^intercept_ is 1.0, but fit_intercept=False") as error:
        getattr(model, method)(X, y)
    assert "init" not in str(error.value) and model.intercept_ == 1.0
    model.intercept_ = 0.0      # the advice works
    getattr(model, method)(X, y)
    # coef_ set by hand after a fit with an intercept, then fit_intercept=False: the same
    model = GDRegressor(epochs=3, warm_start=True).fit(X, y)
    model.coef_ = np.zeros(3)
    with pytest.raises(ValueError, match=r"^intercept_ is .* set intercept_ = 0.0, or "):
        getattr(model.set_params(fit_intercept=False), method)(X, y)


def test_a_warm_start_from_coefficients_set_by_hand_may_switch_optimizer():
    """Starting afresh from coef_ (set by hand), the earlier fit's optimizer is not continued,
    so another optimizer is not refused as it is for a continuation."""
    X, y, _ = problem(n=60, d=3)
    model = GDRegressor(epochs=5, warm_start=True).fit(X, y)
    model.coef_ = np.zeros(3)
    model.set_params(optimizer="adam").fit(X, y)
    assert type(model.result_.optimizer).__name__ == "Adam" and model.n_iter_ == 5


def test_warm_start_on_data_of_another_width_is_refused_and_the_model_kept():
    X, y, _ = problem(n=60, d=3)
    model = GDRegressor(epochs=4, warm_start=True, lr=0.05).fit(X, y)
    coef, n_iter, curve = model.coef_.copy(), model.n_iter_, list(model.loss_curve_)
    with pytest.raises(ValueError, match="X has 2 features, but the previous fit that "
                                         "warm_start=True continues had 3"):
        model.fit(X[:, :2], y)
    np.testing.assert_array_equal(model.coef_, coef)
    assert model.n_features_in_ == 3 and model.n_iter_ == n_iter
    assert model.loss_curve_ == curve
    np.testing.assert_array_equal(model.predict(X), X @ coef + model.intercept_)
    # without warm_start, other data start afresh, as any fit does
    model.set_params(warm_start=False).fit(X[:, :2], y)
    assert model.n_features_in_ == 2


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
    with pytest.raises(ValueError, match="X has 2 features, but GDRegressor is expecting 3"):
        model.partial_fit(X[:, :2], y)


def test_feature_names():
    pd = pytest.importorskip("pandas", reason="feature names come from a pandas DataFrame")
    X, y, _ = problem(n=50, d=3)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    model = GDRegressor(epochs=5).fit(frame, y)
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    assert model.n_features_in_ == 3


def _with_nan(X):
    X = X.copy()
    X[3, 1] = np.nan
    return X


def _one_negative(y):
    weights = np.ones_like(y)
    weights[0] = -1.0
    return weights


# Calls that fail on bad input whether or not the model was fitted before, each with the
# exception it must raise and what its message must say (the argument and what was wrong).
def _other_width(model, X):
    """X less a column, unless the model would continue a fit (warm_start), which refuses
    data of another width before anything else."""
    return X if model.warm_start else X[:, :2]


DIVERGED = r"stopped being finite in epoch \d+ \(lr=1e\+308, SGD\); try a smaller lr"
BAD_CALLS = [
    # (on data of another width, where a warm start would refuse the width first)
    pytest.param(lambda m, X, y: m.set_params(lr=-1.0).fit(_other_width(m, X), y), ValueError,
                 r"lr must be > 0(\.0)?, got -1\.0", id="fit-lr"),
    pytest.param(lambda m, X, y: m.set_params(optimizer="adamw").fit(X, y), ValueError,
                 "optimizer: unknown name 'adamw'; .*known names are 'gd', 'sgd'",
                 id="fit-optimizer"),
    pytest.param(lambda m, X, y: m.set_params(schedule="nope").fit(X, y), ValueError,
                 "schedule: unknown name 'nope'; known names are 'constant'",
                 id="fit-schedule"),
    pytest.param(lambda m, X, y: m.set_params(epochs=0).fit(X, y), ValueError,
                 "epochs must be >= 1, got 0", id="fit-epochs"),
    pytest.param(lambda m, X, y: m.fit(X, y, sample_weight=_one_negative(y)), ValueError,
                 r"sample_weight must be >= 0; sample_weight\[0\] = -1", id="fit-sample_weight"),
    pytest.param(lambda m, X, y: m.fit(_with_nan(X), y), ValueError, "Input X contains NaN",
                 id="fit-nan"),
    pytest.param(lambda m, X, y: m.fit(X, y[:-1]), ValueError,
                 r"inconsistent numbers of samples: \[60, 59\]", id="fit-len-y"),
    pytest.param(lambda m, X, y: m.set_params(warm_start="yes").fit(X, y), TypeError,
                 "warm_start must be True or False, got 'yes'", id="fit-warm_start"),
    pytest.param(lambda m, X, y: m.set_params(verbose="x").fit(X, y), TypeError,
                 "verbose must be True, False or an int >= 0 .*, got 'x'", id="fit-verbose"),
    pytest.param(lambda m, X, y: m.set_params(verbose=-1).partial_fit(X, y), TypeError,
                 "verbose must be True, False or an int >= 0 .*, got -1",
                 id="partial_fit-verbose"),
    pytest.param(lambda m, X, y: m.set_params(lr=0.0).partial_fit(X, y), ValueError,
                 r"lr must be > 0(\.0)?, got 0\.0", id="partial_fit-lr"),
    pytest.param(lambda m, X, y: m.set_params(schedule="cosine").partial_fit(X, y), ValueError,
                 "schedule='cosine' takes its sizes from the number of epochs, which "
                 "partial_fit does not know", id="partial_fit-cosine"),
    pytest.param(lambda m, X, y: m.partial_fit(_with_nan(X), y), ValueError,
                 "Input X contains NaN", id="partial_fit-nan"),
    # a first update of ~1e308 per unit gradient overflows: DivergenceError in epoch 1
    pytest.param(lambda m, X, y: m.set_params(lr=1e308, tol=None).fit(_other_width(m, X), y),
                 gdcore.DivergenceError, DIVERGED, id="fit-diverges"),
    pytest.param(lambda m, X, y: m.set_params(lr=1e308).partial_fit(X * 1e3, y),
                 gdcore.DivergenceError, DIVERGED, id="partial_fit-diverges"),
]
# Calls that fail only because of what an earlier fit left.
BAD_AFTER_A_FIT = [
    pytest.param(lambda m, X, y: m.set_params(warm_start=True, optimizer="adam").fit(X, y),
                 ValueError, "optimizer: the previous fit used SGD and cannot be continued "
                 "with Adam", id="warm_start-optimizer"),
    pytest.param(lambda m, X, y: m.set_params(optimizer="adam").partial_fit(X, y), ValueError,
                 "optimizer: the previous fit used SGD and cannot be continued with Adam",
                 id="partial_fit-optimizer"),
    pytest.param(lambda m, X, y: m.partial_fit(X[:, :2], y), ValueError,
                 "X has 2 features, but GDRegressor is expecting 3 features",
                 id="partial_fit-features"),
    pytest.param(lambda m, X, y: m.set_params(warm_start=True).fit(X[:, :2], y), ValueError,
                 "X has 2 features, but the previous fit that warm_start=True continues had 3",
                 id="warm_start-features"),
]


def _fitted_state(model):
    """Every fitted attribute, arrays as bytes, so that equal means bitwise equal."""
    state = {name: value for name, value in vars(model).items() if name.endswith("_")}
    state["coef_"] = (state["coef_"].dtype, state["coef_"].tobytes())
    state["loss_curve_"] = np.array(state["loss_curve_"]).tobytes()
    return state


@pytest.mark.parametrize("bad_call, error, pattern", BAD_CALLS + BAD_AFTER_A_FIT)
@pytest.mark.parametrize("warm_start", [False, True])
def test_failed_call_keeps_the_earlier_fit(bad_call, error, pattern, warm_start):
    X, y, _ = problem(n=60, d=3)
    model = GDRegressor(epochs=20, warm_start=warm_start).fit(X, y)
    before, predicted = _fitted_state(model), model.predict(X)
    with pytest.raises(error, match=pattern):
        bad_call(model, X, y)
    assert _fitted_state(model) == before
    assert model.predict(X).tobytes() == predicted.tobytes()


@pytest.mark.parametrize("bad_call, error, pattern", BAD_CALLS)
def test_failed_call_leaves_an_unfitted_model_unfitted(bad_call, error, pattern):
    X, y, _ = problem(n=60, d=3)
    model = GDRegressor(epochs=20)
    with pytest.raises(error, match=pattern):
        bad_call(model, X, y)
    with pytest.raises(NotFittedError):
        check_is_fitted(model)
    assert not any(name.endswith("_") for name in vars(model))


def test_failed_fit_keeps_feature_names():
    pd = pytest.importorskip("pandas", reason="feature names come from a pandas DataFrame")
    X, y, _ = problem(n=50, d=3)
    model = GDRegressor(epochs=5).fit(pd.DataFrame(X, columns=["a", "b", "c"]), y)
    with pytest.raises(ValueError, match=r"lr must be > 0(\.0)?, got -1\.0"):
        model.set_params(lr=-1.0).fit(pd.DataFrame(X[:, :2], columns=["p", "q"]), y)
    assert list(model.feature_names_in_) == ["a", "b", "c"] and model.n_features_in_ == 3


def test_warm_start_with_another_optimizer_says_what_to_do():
    X, y, _ = problem(n=60, d=3)
    model = GDRegressor(epochs=5, warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="SGD.*Adam.*warm_start=False") as error:
        model.set_params(optimizer="adam").fit(X, y)
    assert "init=" not in str(error.value)
    model.set_params(warm_start=False).fit(X, y)  # the advice works
    assert type(model.result_.optimizer).__name__ == "Adam"


def test_warm_start_with_another_intercept_setting_says_what_to_do():
    X, y, _ = problem(n=60, d=3)
    model = GDRegressor(epochs=5, warm_start=True).fit(X, y)
    coef = model.coef_.copy()
    with pytest.raises(ValueError, match="fit_intercept=True.*False.*warm_start=False") as error:
        model.set_params(fit_intercept=False).fit(X, y)
    assert "init" not in str(error.value)
    np.testing.assert_array_equal(model.coef_, coef)     # the earlier fit is kept
    model.set_params(warm_start=False).fit(X, y)  # the advice works
    assert model.intercept_ == 0.0


@pytest.mark.parametrize("name", ["cosine", "CosineAnnealingLR", "step", "steplr"])
def test_partial_fit_refuses_schedule_names_sized_to_a_run(name):
    X, y, _ = problem(n=60, d=3)
    with pytest.raises(ValueError, match=r"schedule.*CosineAnnealingLR\(T_max="):
        GDRegressor(schedule=name).partial_fit(X, y)


@pytest.mark.parametrize("name", ["constant", "exponential", "invscaling", "linear"])
def test_partial_fit_accepts_schedule_names_not_sized_to_a_run(name):
    X, y, _ = problem(n=60, d=3)
    model = GDRegressor(schedule=name)
    model.partial_fit(X, y).partial_fit(X, y)
    assert model.n_iter_ == 1 and len(model.loss_curve_) == 2


def test_partial_fit_continues_a_schedule_object():
    X, y, _ = problem(n=60, d=3)
    model = GDRegressor(lr=0.1, schedule=StepLR(step_size=2, gamma=0.5), shuffle=False)
    for _ in range(5):
        model.partial_fit(X, y)
    # full-batch gradient steps by hand with lr, lr, lr/2, lr/2, lr/4; each epoch's loss is
    # that of the parameters it starts from
    coef, intercept, losses = np.zeros(3), 0.0, []
    for lr in [0.1, 0.1, 0.05, 0.05, 0.025]:
        residual = X @ coef + intercept - y
        losses.append(residual @ residual / (2 * len(y)))
        coef = coef - lr * X.T @ residual / len(y)
        intercept = intercept - lr * residual.mean()
    np.testing.assert_allclose(model.loss_curve_, losses, rtol=1e-12)
    np.testing.assert_allclose(model.coef_, coef, rtol=1e-12)
    assert model.intercept_ == pytest.approx(intercept, rel=1e-12)


def test_running_out_of_epochs_warns_as_scikit_learn_does():
    from sklearn.exceptions import ConvergenceWarning
    X, y, _ = problem(n=60, d=3)
    with pytest.warns(ConvergenceWarning, match="3 epochs ran out"):
        GDRegressor(optimizer="gd", lr=0.1, epochs=3).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        GDRegressor(optimizer="gd", lr=0.1, epochs=3, tol=None).fit(X, y)   # no rule to meet
        model = GDRegressor(optimizer="gd", lr=0.5, epochs=10_000).fit(X, y)
        assert model.result_.stop_reason == "tol"


def test_optimizer_and_schedule_objects_clone_and_search():
    """Objects from gdcore.optim / gdcore.schedules as parameters: clone copies them,
    set_params reaches into them (checked as their constructors check), grid searches over
    them or their arguments fit as gdcore.fit does with the same objects."""
    from sklearn.base import clone
    from sklearn.model_selection import cross_val_score
    from gdcore.optim import SGD, Adam
    from gdcore.schedules import CosineAnnealingLR
    X, y, _ = problem(n=90, d=3)
    model = GDRegressor(optimizer=Adam(lr=0.05), schedule=CosineAnnealingLR(T_max=30),
                        epochs=30, tol=None)
    twin = clone(model)
    assert twin.optimizer == model.optimizer and twin.optimizer is not model.optimizer
    assert twin.schedule == model.schedule and twin.schedule is not model.schedule
    assert model.get_params()["optimizer__betas"] == (0.9, 0.999)
    assert np.all(np.isfinite(cross_val_score(model, X, y, cv=3)))
    model.set_params(optimizer__lr=0.2, schedule__eta_min=0.01)
    assert model.optimizer == Adam(lr=0.2) and model.schedule == CosineAnnealingLR(30, 0.01)
    assert twin.optimizer == Adam(lr=0.05)      # the clone is independent
    with pytest.raises(ValueError, match="Adam has no parameter 'momentum'"):
        model.set_params(optimizer__momentum=0.9)
    with pytest.raises(ValueError, match="lr must be > 0"):
        model.set_params(optimizer__lr=-1.0)
    assert model.optimizer == Adam(lr=0.2)      # a refused change leaves it as it was
    search = GridSearchCV(GDRegressor(epochs=30, tol=None),
                          {"optimizer": [SGD(lr=0.1), Adam(lr=0.1)]}, cv=3).fit(X, y)
    best = search.best_params_["optimizer"]
    expected = gdcore.fit(X, y, optimizer=best, epochs=30, tol=None)
    np.testing.assert_array_equal(search.best_estimator_.coef_, expected.coef)
    search = GridSearchCV(GDRegressor(optimizer=Adam(), epochs=30, tol=None),
                          {"optimizer__lr": [0.01, 0.1]}, cv=3).fit(X, y)
    expected = gdcore.fit(X, y, optimizer=Adam(lr=search.best_params_["optimizer__lr"]),
                          epochs=30, tol=None)
    np.testing.assert_array_equal(search.best_estimator_.coef_, expected.coef)


def test_a_fit_keeps_its_own_copy_of_the_optimizer():
    from gdcore.optim import Adam
    X, y, _ = problem(n=40, d=2)
    optimizer = Adam(lr=0.05)
    result = gdcore.fit(X, y, optimizer=optimizer, epochs=3)
    optimizer.set_params(lr=0.5)
    assert result.optimizer == Adam(lr=0.05)


@pytest.mark.parametrize("warm_start", [False, True])
@pytest.mark.parametrize("call", ["fit", "partial_fit"])
def test_ctrl_c_before_an_epoch_finishes_leaves_the_model_as_it_was(monkeypatch, warm_start,
                                                                    call):
    """Ctrl-C keeps the last epoch the call finished; with none finished the model is as it
    was (it lost coef_ and result_ but took the new n_features_in_)."""
    import gdcore.estimator
    X, y, _ = problem(n=60, d=3)
    model = GDRegressor(epochs=5, warm_start=warm_start).fit(X, y)
    before = _fitted_state(model)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(gdcore.estimator, "_fit", interrupted)
    # a fit without warm_start may take wider data (a warm start refuses them)
    wider = np.column_stack([X, X[:, :2]]) if call == "fit" and not warm_start else X
    with pytest.raises(KeyboardInterrupt):
        getattr(model, call)(wider, y)
    assert _fitted_state(model) == before
    fresh = GDRegressor(epochs=5)
    with pytest.raises(KeyboardInterrupt):
        getattr(fresh, call)(wider, y)
    assert not any(name.endswith("_") for name in vars(fresh))


def test_grid_search_over_an_optimizer_flag():
    """Grids hold numpy values: np.True_ is a bool to the optimizers as to the estimator."""
    X, y, _ = problem(n=90, d=3)
    search = GridSearchCV(GDRegressor(optimizer=gdcore.optim.Adam(lr=0.1), epochs=30, tol=None),
                          {"optimizer__amsgrad": np.array([True, False])}, cv=3).fit(X, y)
    assert search.best_estimator_.optimizer.amsgrad in (True, False)
    amsgrad = GDRegressor(optimizer=gdcore.optim.Adam(lr=0.1, amsgrad=True), epochs=30,
                          tol=None).fit(X, y)
    from_grid = GDRegressor(optimizer=gdcore.optim.Adam(lr=0.1, amsgrad=np.True_), epochs=30,
                            tol=None).fit(X, y)
    np.testing.assert_array_equal(from_grid.coef_, amsgrad.coef_)


def test_a_warm_start_after_the_tol_rule_stopped_runs_n_iter_no_change_epochs():
    """As a warm-started scikit-learn estimator: the second fit gets n_iter_no_change epochs
    to improve (test_stopping has the hand-derived losses of this problem)."""
    X, y = np.zeros((8, 1)), np.full(8, 4.0)
    model = GDRegressor(optimizer="sgd", lr=0.5, tol=1.5, n_iter_no_change=2, epochs=20,
                        warm_start=True).fit(X, y)
    assert model.n_iter_ == 4 and model.result_.stop_reason == "tol"
    model.fit(X, y)
    assert model.n_iter_ == 2
    assert model.loss_curve_ == [8.0, 2.0, 0.5, 0.125, 0.03125, 0.0078125]


def test_either_convergence_warning_class_catches_every_convergence_warning():
    """Pipelines filter scikit-learn's ConvergenceWarning; gdcore's users gdcore's: the
    epochs running out (the estimator's warning) and a loss that did not settle (gdcore.fit's)
    are both, once scikit-learn is loaded."""
    from sklearn.exceptions import ConvergenceWarning as SklearnWarning
    X, y, _ = problem(n=60, d=4)
    for category in (SklearnWarning, gdcore.ConvergenceWarning):
        with pytest.warns(category, match="3 epochs ran out"):
            GDRegressor(optimizer="gd", lr=0.1, epochs=3).fit(X, y)
        with pytest.warns(category, match="rose to"):     # lr = 3: the loss grows ~9-fold
            GDRegressor(optimizer="gd", lr=3.0, epochs=100).fit(X, y)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            warnings.simplefilter("ignore", category)
            GDRegressor(optimizer="gd", lr=3.0, epochs=100).fit(X, y)


@pytest.mark.parametrize("verbose", [0, 1, 2, np.int64(0), False])
def test_verbose_takes_scikit_learns_integer_levels(verbose):
    X, y, _ = problem(n=40, d=2)
    model = GDRegressor(epochs=3, tol=None, verbose=verbose).fit(X, y)
    assert model.n_iter_ == 3


def test_the_convergence_warning_pickles():
    """Warnings cross process boundaries pickled (joblib, multiprocessing)."""
    from gdcore._result import convergence_warning_category
    category = convergence_warning_category()
    assert pickle.loads(pickle.dumps(category)) is category and category.__name__ == \
        "ConvergenceWarning"
    again = pickle.loads(pickle.dumps(category("the loss rose")))
    assert type(again) is category and str(again) == "the loss rose"
    script = ("import pickle, sys; c = pickle.loads(sys.stdin.buffer.read()); "
              "import gdcore, sklearn.exceptions; "
              "assert issubclass(c, gdcore.ConvergenceWarning) and "
              "issubclass(c, sklearn.exceptions.ConvergenceWarning)")
    import subprocess
    import sys
    subprocess.run([sys.executable, "-c", script], input=pickle.dumps(category), check=True,
                   env=subprocess_env())


def test_nested_parameters_of_a_named_optimizer_are_explained():
    model = GDRegressor(optimizer="adam")
    with pytest.raises(ValueError, match="optimizer__lr: optimizer is 'adam', a name, which has "
                                         "no parameters to set; lr=... sets the rate"):
        model.set_params(optimizer__lr=0.1)
    with pytest.raises(ValueError, match="schedule__gamma: schedule is 'constant', a name"):
        model.set_params(schedule__gamma=0.5)
    # None (no schedule, or the default optimizer) is no name: it was called one
    with pytest.raises(ValueError, match=r"schedule is None, which has no parameters to set"):
        GDRegressor(schedule=None).set_params(schedule__gamma=0.5)
    assert model.set_params(optimizer=gdcore.optim.Adam(), optimizer__lr=0.2).optimizer.lr == 0.2


@pytest.mark.parametrize("call", ["fit", "partial_fit"])
@pytest.mark.parametrize("setting, error, message", [
    (dict(epochs=0), ValueError, "epochs must be >= 1"),
    (dict(lr=-1.0), ValueError, "lr must be > 0"),
    (dict(optimizer="adamw"), ValueError, "optimizer: unknown name 'adamw'"),
    (dict(n_threads=0), ValueError, "n_threads must be None"),
    (dict(l1=0.1, optimizer="adam"), ValueError, "l1 > 0 needs an SGD-family optimizer"),
    (dict(seed="abc"), TypeError, "seed must be None"),
    # named seed, which the caller did not give, without the RandomState random_state takes
    (dict(random_state="abc"), TypeError, "^random_state must be None, .* RandomState"),
    (dict(random_state=-1), ValueError, "^random_state must be None"),
])
def test_a_bad_setting_is_refused_before_the_data_are_read(monkeypatch, call, setting, error,
                                                           message):
    """validate_data copied X (float16, integers, a DataFrame) and checked it for NaN before
    gdcore.fit refused the setting: 0.3 s for a 2,000,000 × 50 float16 X that gdcore.fit
    refuses at once."""
    import gdcore.estimator
    read = []
    monkeypatch.setattr(gdcore.estimator, "validate_data",
                        lambda *args, **kwargs: read.append(1) or (args[1], args[2]))
    X, y = np.ones((10, 2)), np.ones(10)
    with pytest.raises(error, match=message):
        getattr(GDRegressor(**setting), call)(X, y)
    assert read == []


@pytest.mark.parametrize("coef, intercept, error, message", [
    ([1.0, 2.0, 3.0], 0.5, None, None),     # a list set by hand: an AttributeError
    (np.ones(4), 0.0, ValueError, r"coef_ must be 3 finite numbers"),
    (np.array([1.0, np.nan, 1.0]), 0.0, ValueError, r"coef_ must be 3 finite numbers"),
    (np.ones(3), None, TypeError, "intercept_ must be a real number"),     # NaN predictions
    (np.ones(3), "1", TypeError, "intercept_ must be a real number"),      # read as 1.0
])
def test_predict_checks_coefficients_set_by_hand(coef, intercept, error, message):
    """predict used coef_ and intercept_ as set by hand unchecked, where a warm start checks
    them naming the attribute."""
    X, y, _ = problem(n=30, d=3)
    model = GDRegressor(epochs=2).fit(X, y)
    model.coef_, model.intercept_ = coef, intercept
    if error is None:
        np.testing.assert_array_equal(model.predict(X), X @ np.asarray(coef) + intercept)
    else:
        with pytest.raises(error, match=message):
            model.predict(X)
