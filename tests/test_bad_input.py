"""SPEC §8: every bad input raises ValueError/TypeError naming the argument, before any work,
leaving the caller's arrays (and an earlier result) untouched."""

import sys
import warnings
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

import gdcore
from gdcore import optim, schedules
from gdcore.optim import SGD, Adagrad, Adam, NormalizedGD, RMSprop

from conftest import problem


def good():
    X, y, _ = problem(n=20, d=3)
    return X, y


def with_nan(index, array):
    array = array.copy()
    array[index] = np.nan
    return array


def with_inf(index, array):
    array = array.copy()
    array[index] = -np.inf
    return array


class OwnAdam(Adam):
    def _own_config(self):
        return {**super()._own_config(), "eps": 0.5}


class HalfRate(gdcore.schedules.Schedule):
    def factor(self, epoch, step):
        return 0.5


X0, Y0 = good()
W0 = np.ones(20)

# (case id, arguments to fit, expected exception, pattern the message must contain)
CASES = [
    ("nan-X", dict(X=with_nan((3, 1), X0)), ValueError,
     r"X contains NaN or infinity \(first at index \[3, 1\]: nan\)"),
    ("inf-X", dict(X=with_inf((0, 0), X0)), ValueError,
     r"X contains NaN or infinity \(first at index \[0, 0\]: -inf\)"),
    ("nan-y", dict(y=with_nan(5, Y0)), ValueError,
     r"y contains NaN or infinity \(first at index \[5\]: nan\)"),
    ("inf-y", dict(y=with_inf(5, Y0)), ValueError,
     r"y contains NaN or infinity \(first at index \[5\]: -inf\)"),
    ("nan-weight", dict(sample_weight=with_nan(2, W0)), ValueError,
     r"sample_weight contains NaN or infinity \(first at index \[2\]: nan\)"),
    ("inf-weight", dict(sample_weight=with_inf(2, -W0) * -1), ValueError,
     r"sample_weight contains NaN or infinity \(first at index \[2\]: inf\)"),
    ("X-1d", dict(X=X0[:, 0]), ValueError, "X must be 2-D"),
    ("X-3d", dict(X=X0[None]), ValueError, "X must be 2-D"),
    ("y-length", dict(y=Y0[:-1]), ValueError, "len\\(y\\)"),
    ("y-2d", dict(y=np.ones((20, 2))), ValueError, "y must be 1-D"),
    ("n-zero", dict(X=np.empty((0, 3)), y=np.empty(0)), ValueError, "X has 0 samples"),
    ("d-zero", dict(X=np.empty((20, 0))), ValueError, "X has 0 features"),
    ("complex-X", dict(X=X0.astype(complex)), TypeError, "X has complex dtype"),
    ("object-X", dict(X=X0.astype(object)), TypeError, "X has dtype object"),
    ("string-X", dict(X=X0.astype(str)), TypeError, "X has dtype <U.*not a real number type"),
    ("bool-X", dict(X=X0 > 0), TypeError, "X has boolean dtype"),
    ("bool-y", dict(y=Y0 > 0), TypeError, "y has boolean dtype"),
    ("complex-weight", dict(sample_weight=W0.astype(complex)), TypeError,
     "sample_weight has complex dtype"),
    ("negative-weight", dict(sample_weight=np.where(np.arange(20) == 4, -1.0, 1.0)),
     ValueError, "sample_weight must be >= 0"),
    ("zero-weights", dict(sample_weight=np.zeros(20)), ValueError, "sample_weight sums to 0"),
    ("weight-length", dict(sample_weight=np.ones(19)), ValueError,
     r"sample_weight must be 1-D of length n_samples=20, got shape \(19,\)"),
    ("lr-zero", dict(lr=0.0), ValueError, r"lr must be > 0(\.0)?, got 0\.0"),
    ("lr-negative", dict(lr=-1.0), ValueError, r"lr must be > 0(\.0)?, got -1\.0"),
    ("lr-nan", dict(lr=float("nan")), ValueError, "lr must be finite, got nan"),
    ("lr-inf", dict(lr=float("inf")), ValueError, "lr must be finite, got inf"),
    ("seed-string", dict(seed="a"), TypeError, "seed must be None, an int"),
    ("seed-negative", dict(seed=-1), ValueError, "seed must be None, an int >= 0"),
    ("seed-float", dict(seed=1.5), TypeError, r"seed must be None, an int >= 0.*got 1\.5"),
    # NumPy took True as the seed 1, silently
    ("seed-bool", dict(seed=True), TypeError, r"seed must be None, an int >= 0.*got the bool True"),
    ("lr-string", dict(lr="0.1"), TypeError, "lr must be a real number, got str '0.1'"),
    ("epochs-zero", dict(epochs=0), ValueError, "epochs must be >= 1"),
    ("epochs-float", dict(epochs=2.5), TypeError, "epochs must be an integer"),
    ("batch-zero", dict(batch_size=0), ValueError, "batch_size must be >= 1"),
    ("betas-one", dict(optimizer=None, _opt=lambda: Adam(betas=(0.9, 1.0))), ValueError,
     r"betas\[1\] must be < 1(\.0)?, got 1\.0"),
    ("betas-negative", dict(_opt=lambda: Adam(betas=(-0.1, 0.9))), ValueError,
     r"betas\[0\] must be >= 0(\.0)?, got -0\.1"),
    ("betas-shape", dict(_opt=lambda: Adam(betas=0.9)), TypeError,
     "betas must be a pair of numbers, got 0.9"),
    # a set has no order: {0.999, 0.9} was read as (0.999, 0.9), the betas swapped
    ("betas-set", dict(_opt=lambda: Adam(betas={0.999, 0.9})), TypeError,
     "betas must be a pair \\(beta1, beta2\\) in order"),
    ("eps-zero", dict(_opt=lambda: Adam(eps=0.0)), ValueError, r"eps must be > 0(\.0)?, got 0\.0"),
    ("eps-adagrad", dict(_opt=lambda: Adagrad(eps=-1.0)), ValueError,
     r"eps must be > 0(\.0)?, got -1\.0"),
    ("eps-rmsprop", dict(_opt=lambda: RMSprop(eps=0)), ValueError, r"eps must be > 0(\.0)?, got 0"),
    ("eps-normalized", dict(_opt=lambda: NormalizedGD(eps=0)), ValueError,
     r"eps must be > 0(\.0)?, got 0"),
    ("momentum-negative", dict(_opt=lambda: SGD(momentum=-0.1)), ValueError,
     r"momentum must be >= 0(\.0)?, got -0\.1"),
    ("rmsprop-momentum", dict(_opt=lambda: RMSprop(momentum=-1)), ValueError,
     r"momentum must be >= 0(\.0)?, got -1"),
    ("nesterov-no-momentum", dict(_opt=lambda: SGD(nesterov=True)), ValueError,
     "nesterov=True requires momentum > 0.*got momentum=0"),
    ("threads-zero", dict(n_threads=0), ValueError,
     r"n_threads must be None, -1 \(all cores\) or 1 to 1024, got 0"),
    ("threads-minus-two", dict(n_threads=-2), ValueError,
     r"n_threads must be None, -1 \(all cores\) or 1 to 1024, got -2"),
    ("threads-huge", dict(n_threads=2**31), ValueError,
     r"n_threads must be None, -1 \(all cores\) or 1 to 1024, got 2147483648"),
    # a team OpenMP cannot start ends the process (libgomp), so past any machine is refused
    ("threads-past-the-limit", dict(n_threads=1025), ValueError,
     r"n_threads must be None, -1 \(all cores\) or 1 to 1024, got 1025"),
    ("threads-float", dict(n_threads=1.5), TypeError,
     r"n_threads must be an integer or None, got 1\.5"),
    ("unknown-optimizer", dict(optimizer="adamw"), ValueError,
     "optimizer: unknown name 'adamw'; AdamW's decoupled weight decay is not offered .*"
     "did you mean 'adam'\\? known names are 'gd', 'sgd'.*'adam'"),
    ("misspelt-optimizer", dict(optimizer="sgd_momentum"), ValueError,
     "optimizer: unknown name 'sgd_momentum'; did you mean 'momentum'\\? known names are"),
    ("optimizer-with-spaces", dict(optimizer=" SGD "), ValueError,
     "optimizer: unknown name ' SGD '; did you mean 'sgd' \\(without the whitespace around "
     "it\\)\\? known names are"),
    ("optimizer-class", dict(optimizer=optim.Adam), TypeError,
     r"optimizer=Adam is the class; pass an instance, e\.g\. Adam\(\) or Adam\(lr=0\.01\)"),
    ("schedule-as-optimizer", dict(optimizer=schedules.StepLR(3)), TypeError,
     "got StepLR: StepLR is a schedule, pass it as schedule="),
    ("optimizer-type", dict(optimizer=3), TypeError,
     "optimizer must be a name .*or a gdcore.optim.Optimizer, got int"),
    ("unknown-schedule", dict(schedule="warmup"), ValueError,
     "schedule: unknown name 'warmup'; known names are 'constant', 'step', .*'exponential'"
     ".*'cosine'.*'linear'.*'invscaling'"),
    ("misspelt-schedule", dict(schedule="cosin"), ValueError,
     "schedule: unknown name 'cosin'; did you mean 'cosine'\\? known names are"),
    ("schedule-class", dict(schedule=schedules.StepLR), TypeError,
     r"schedule=StepLR is the class; pass an instance, e\.g\. StepLR\(\.\.\.\)"),
    ("init-shape", dict(init=np.zeros(4)), ValueError, "init: coef must have shape \\(3,\\)"),
    ("init-pair-shape", dict(init=(np.zeros(2), 0.0)), ValueError,
     r"init: coef must have shape \(3,\) to match X's 3 features, got shape \(2,\)"),
    ("init-ragged", dict(init=[[1.0, 2.0], [3.0], 1.0]), TypeError, "init: coef must be an array"),
    ("l1-with-adam", dict(optimizer="adam", l1=0.1), ValueError,
     "l1 > 0 needs an SGD-family optimizer.*got Adam"),
    ("l2-negative", dict(l2=-0.1), ValueError, r"l2 must be >= 0(\.0)?, got -0\.1"),
    ("gtol-mini-batch", dict(gtol=1e-3, batch_size=5), ValueError,
     "gtol applies to full-batch fits only"),
    ("tol-negative", dict(tol=-1.0), ValueError, r"^tol must be >= 0(\.0)?, got -1\.0"),
    ("patience-zero", dict(n_iter_no_change=0), ValueError, "n_iter_no_change must be >= 1, got 0"),
    ("backend", dict(backend="torch"), ValueError,
     r"backend must be one of 'core', 'numpy'; got 'torch'"),
    ("callback", dict(callback=3), TypeError, "callback must be callable or None, got int"),
    ("fit-intercept", dict(fit_intercept="yes"), TypeError,
     "fit_intercept must be True or False, got 'yes'"),
    # SPEC §8's dtypes for y and sample_weight, not only X's
    ("complex-y", dict(y=Y0.astype(complex)), TypeError, "y has complex dtype"),
    ("object-y", dict(y=Y0.astype(object)), TypeError, "y has dtype object.*not a real number"),
    ("string-y", dict(y=Y0.astype(str)), TypeError, "y has dtype <U.*not a real number"),
    ("bool-weight", dict(sample_weight=W0 > 0), TypeError, "sample_weight has boolean dtype"),
    ("object-weight", dict(sample_weight=W0.astype(object)), TypeError,
     "sample_weight has dtype object.*not a real number"),
    ("string-weight", dict(sample_weight=W0.astype(str)), TypeError,
     "sample_weight has dtype <U.*not a real number"),
    ("batch-negative", dict(batch_size=-3), ValueError, "batch_size must be >= 1, got -3"),
    ("batch-float", dict(batch_size=4.0), TypeError,
     r"batch_size must be an integer, got float 4\.0"),
    ("epochs-negative", dict(epochs=-2), ValueError, "epochs must be >= 1, got -2"),
    # l1 > 0 with every optimizer outside the SGD family (SPEC §2)
    ("l1-with-amsgrad", dict(optimizer="amsgrad", l1=0.1), ValueError,
     "l1 > 0 needs an SGD-family optimizer.*got Adam"),
    ("l1-with-adagrad", dict(optimizer="adagrad", l1=0.1), ValueError,
     "l1 > 0 needs an SGD-family optimizer.*got Adagrad"),
    ("l1-with-rmsprop", dict(optimizer="rmsprop", l1=0.1), ValueError,
     "l1 > 0 needs an SGD-family optimizer.*got RMSprop"),
    ("l1-with-normalized", dict(optimizer="normalized", l1=0.1), ValueError,
     "l1 > 0 needs an SGD-family optimizer.*got NormalizedGD"),
    # float64 y, weights or init that float32 X cannot hold: named for what they are, not as
    # the infinity or 0 they would become
    ("y-past-float32", dict(X=X0.astype(np.float32), y=np.where(np.arange(20) == 2, 1e39, Y0)),
     ValueError, "y\\[2\\] = 1e\\+39 is too large for float32"),
    ("weight-below-float32", dict(X=X0.astype(np.float32),
                                  sample_weight=np.where(np.arange(20) == 3, 1e-50, 1.0)),
     ValueError, "sample_weight\\[3\\] = 1e-50 is 0 in float32"),
    ("weights-sum-overflow", dict(sample_weight=np.full(20, 1e307)), ValueError,
     "sample_weight sums to infinity"),
    # (float32 X: the float64 weights' own sum, though they are scaled before narrowing)
    ("weights-sum-overflow-float32-x", dict(X=X0.astype(np.float32),
                                            sample_weight=np.full(20, 1e307)),
     ValueError, "sample_weight sums to infinity"),
    # weights are scaled by one power of two to bring the largest near 1: a positive weight
    # that becomes 0 would silently count as none
    ("weights-span-past-float64", dict(sample_weight=np.r_[1e300, np.full(19, 1e-30)]),
     ValueError, r"sample_weight\[1\] = 1e-30 is 0 in float64 once the weights are scaled by "
                 r"2\^-997"),
    ("weights-span-past-float32", dict(X=X0.astype(np.float32),
                                       sample_weight=np.r_[np.full(19, 1e-10), 1e38]),
     ValueError, r"sample_weight\[0\] = 1e-10 is 0 in float32 once the weights are scaled"),
    ("init-past-float32", dict(X=X0.astype(np.float32), init=(np.array([1e39, 0.0, 0.0]), 0.0)),
     ValueError, "init: coef and intercept must fit in float32"),
    # the core runs its rules by kind: another class would silently run as another rule
    ("optimizer-base-class", dict(_opt=lambda: gdcore.optim.Optimizer(0.1)), TypeError,
     "optimizer must be a name or one of SGD, .*; got gdcore.optim.Optimizer, whose methods"),
    ("optimizer-subclass", dict(_opt=OwnAdam), TypeError,
     "optimizer must be a name or one of .*; got test_bad_input.OwnAdam"),
    ("schedule-base-class", dict(schedule=gdcore.schedules.Schedule()), TypeError,
     "schedule must be a name or one of Constant, .*; got gdcore.schedules.Schedule"),
    ("schedule-subclass", dict(schedule=HalfRate()), TypeError,
     "schedule must be a name or one of .*; got test_bad_input.HalfRate"),
    # choices compared by type: 1 is not True, an array is not asked for its truth value
    ("precompute-one", dict(precompute=1), ValueError,
     "precompute must be one of True, False, 'auto'; got 1"),
    ("precompute-array", dict(precompute=np.array([True, False])), ValueError,
     "precompute must be one of True, False, 'auto'; got array"),
    ("backend-array", dict(backend=np.array(["core"])), ValueError,
     "backend must be one of 'core', 'numpy'; got array"),
]



@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, backend, monkeypatch):
    def work_started(*args, **kwargs):
        raise AssertionError("the fit started before the input was rejected")
    # before any work: no epoch loop on either backend, no Gram matrix
    monkeypatch.setattr(gdcore._core, "run_fit", work_started)
    monkeypatch.setattr(gdcore._reference, "run", work_started)
    monkeypatch.setattr(gdcore._api, "augmented_gram", work_started)
    _, changes, error, pattern = case
    changes = dict(changes)
    make_optimizer = changes.pop("_opt", None)
    arguments = dict(X=X0.copy(), y=Y0.copy(), sample_weight=None)
    arguments.update(changes)
    arguments.setdefault("backend", backend)
    originals = {k: v.copy() for k, v in arguments.items() if isinstance(v, np.ndarray)}
    inputs = dict(arguments)
    X, y = arguments.pop("X"), arguments.pop("y")
    with pytest.raises(error, match=pattern):
        if make_optimizer is not None:
            arguments["optimizer"] = make_optimizer()
        gdcore.fit(X, y, **arguments)
    for name, original in originals.items():
        np.testing.assert_array_equal(inputs[name], original, err_msg=f"{name} was modified")


# Optimizer hyper-parameters reach fit on an optimizer object (fit takes no betas=, eps=...
# keywords): one made valid and then given a bad value directly, so the constructor never
# saw it.  fit's own path must refuse it, before any work, leaving the arrays as they were.
BAD_OPTIMIZER_ATTRIBUTES = [
    ("adam-betas0", Adam, "betas", (1.0, 0.9), ValueError,
     r"betas\[0\] must be < 1(\.0)?, got 1\.0"),
    ("adam-betas1", Adam, "betas", (0.9, -0.5), ValueError,
     r"betas\[1\] must be >= 0(\.0)?, got -0\.5"),
    ("adam-betas-shape", Adam, "betas", 0.9, TypeError, "betas must be a pair of numbers"),
    ("adam-eps", Adam, "eps", 0.0, ValueError, r"eps must be > 0(\.0)?, got 0\.0"),
    ("adagrad-eps", Adagrad, "eps", -1.0, ValueError, r"eps must be > 0(\.0)?, got -1\.0"),
    ("rmsprop-eps", RMSprop, "eps", 0.0, ValueError, r"eps must be > 0(\.0)?, got 0\.0"),
    ("normalized-eps", NormalizedGD, "eps", float("nan"), ValueError, "eps must be finite"),
    ("sgd-momentum", SGD, "momentum", -0.1, ValueError,
     r"momentum must be >= 0(\.0)?, got -0\.1"),
    ("rmsprop-momentum", RMSprop, "momentum", -1.0, ValueError,
     r"momentum must be >= 0(\.0)?, got -1\.0"),
    ("sgd-nesterov", SGD, "nesterov", True, ValueError,
     "nesterov=True requires momentum > 0.*got momentum=0"),
    ("sgd-lr", SGD, "lr", 0.0, ValueError, r"lr must be > 0(\.0)?, got 0\.0"),
]


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("case, with_lr", [
    pytest.param(case, with_lr, id=case[0] + ("-lr-keyword" if with_lr else ""))
    for case in BAD_OPTIMIZER_ATTRIBUTES for with_lr in (False, True)
    # fit's lr= replaces a bad lr (the "lr-*" cases above pass a bad one through lr=)
    if not (with_lr and case[2] == "lr")])
def test_bad_optimizer_values_are_refused_by_fit(case, with_lr, backend, monkeypatch):
    _, cls, name, value, error, pattern = case

    def work_started(*args, **kwargs):
        raise AssertionError("the fit started before the input was rejected")
    monkeypatch.setattr(gdcore._core, "run_fit", work_started)
    monkeypatch.setattr(gdcore._reference, "run", work_started)
    monkeypatch.setattr(gdcore._api, "augmented_gram", work_started)
    optimizer = cls()
    setattr(optimizer, name, value)             # past the constructor's checks
    X, y, w = X0.copy(), Y0.copy(), np.linspace(0.5, 1.5, 20)
    with pytest.raises(error, match=pattern):
        gdcore.fit(X, y, sample_weight=w, optimizer=optimizer, backend=backend,
                   **({"lr": 0.05} if with_lr else {}))
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, Y0)
    np.testing.assert_array_equal(w, np.linspace(0.5, 1.5, 20))


def test_arrays_never_modified_by_a_fit():
    X, y, _ = problem(n=30, d=3)
    X_int = (X * 10).astype(np.int64)
    X_f = np.asfortranarray(X)
    w = np.linspace(0, 1, 30)
    saved = [a.copy() for a in (X, y, X_int, X_f, w)]
    for data in (X, X_int, X_f, X[::-1]):
        gdcore.fit(data, y, sample_weight=w, epochs=3, batch_size=4, optimizer="adam")
        gdcore.fit(data, y, sample_weight=w, epochs=3, backend="numpy")
    for before, after in zip(saved, (X, y, X_int, X_f, w)):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("changes, error, pattern", [
    (dict(lr=-1.0), ValueError, r"lr must be > 0"),
    (dict(epochs=0), ValueError, "epochs must be >= 1"),
    (dict(optimizer="adamw"), ValueError, "optimizer: unknown name"),
    (dict(init=np.zeros(2)), ValueError, r"init: coef must have shape \(3,\)"),
    (dict(precompute="yes"), ValueError, "precompute must be one of"),
    (dict(backend="torch"), ValueError, "backend must be one of"),
    (dict(batch_size=5, gtol=1e-3), ValueError, "gtol applies to full-batch fits only"),
])
def test_settings_are_checked_before_the_data_is_read(changes, error, pattern, monkeypatch):
    """A bad setting is reported before X is copied or scanned for NaN (minutes, for a large
    memmap): a Fortran-ordered X with NaN in it still gets the setting's error."""
    def read(*args, **kwargs):
        raise AssertionError("the data was read before the settings were checked")
    monkeypatch.setattr(gdcore._validation, "check_all_finite", read)
    monkeypatch.setattr(gdcore._validation, "_in_dtype", read)
    X = np.asfortranarray(with_nan((0, 0), X0))
    with pytest.raises(error, match=pattern):
        gdcore.fit(X, Y0, **changes)


def test_naming_the_first_nan_takes_no_array_the_size_of_x(monkeypatch):
    """The error names the first non-finite entry from the block the check found it in: a
    mask (and list) of every NaN in a large memmap ran out of memory instead."""
    import tracemalloc
    monkeypatch.setattr(gdcore._validation, "FINITE_CHECK_BLOCK", 1 << 14)
    X = np.full((20_000, 100), np.nan)      # 16 MB, every entry bad
    X[:300] = 1.0
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"X contains NaN or infinity \(first at index "
                                             r"\[300, 0\]: nan\)"):
            gdcore.fit(X, np.zeros(20_000), epochs=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000     # a mask of X alone would be 2 MB, its argwhere 32 MB


def test_sparse_input_is_named_as_such():
    sparse = pytest.importorskip("scipy.sparse", reason="scipy (with scikit-learn) makes one")
    with pytest.raises(TypeError, match=r"X is a scipy.sparse csr_matrix; gdcore fits dense "
                                        r"arrays: pass X.toarray\(\)"):
        gdcore.fit(sparse.csr_matrix(X0), Y0)
    with pytest.raises(TypeError, match="sample_weight is a scipy.sparse"):
        gdcore.fit(X0, Y0, sample_weight=sparse.csr_array(W0[None, :]))


def test_numpy_strings_from_a_grid_are_choices():
    X, y = good()
    for precompute in (np.str_("auto"), np.bool_(False)):
        gdcore.fit(X, y, epochs=2, precompute=precompute, backend=np.str_("numpy"))


def test_numpy_bools_are_bools_to_the_optimizers():
    assert SGD(momentum=0.9, nesterov=np.True_) == SGD(momentum=0.9, nesterov=True)
    assert Adam(amsgrad=np.bool_(True)).amsgrad is True
    assert RMSprop(centered=np.False_).centered is False
    with pytest.raises(TypeError, match="amsgrad must be a bool, got 'yes'"):
        Adam(amsgrad="yes")


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_integers_past_64_bits_mean_what_they_say(backend):
    """A batch of 2^63 rows is the full batch, a patience of 2^64 epochs never runs out: the
    core's C integers are not asked to hold them."""
    X, y = good()
    options = dict(epochs=6, backend=backend, precompute=False)
    full = gdcore.fit(X, y, tol=None, **options)
    huge = gdcore.fit(X, y, tol=None, batch_size=2 ** 63, **options)
    np.testing.assert_array_equal(huge.coef, full.coef)
    np.testing.assert_array_equal(huge.loss_history, full.loss_history)
    patient = gdcore.fit(X, y, tol=1e9, n_iter_no_change=2 ** 64, **options)
    np.testing.assert_array_equal(patient.coef, full.coef)
    assert patient.stop_reason == "epochs"


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_a_result_continued_in_a_narrower_dtype_must_fit_it(backend):
    """As init=(coef, intercept) is refused: a float64 result past float32's range continued on
    float32 data would start from infinities (and be reported as the data's overflow)."""
    X, _ = good()
    big = gdcore.fit(X, X @ np.array([1e39, 2e39, 0.0]), lr=0.5, epochs=50, tol=None)
    assert np.abs(big.coef).max() > np.finfo(np.float32).max
    with pytest.raises(ValueError, match="init: the FitResult's coef and intercept must fit in "
                                         "float32"):
        gdcore.fit(X.astype(np.float32), X[:, 0], init=big, epochs=1, backend=backend)
    small = gdcore.fit(X, X[:, 0], optimizer="adagrad", lr=0.5, epochs=3, tol=None)
    small.state.optimizer_state[0, 0] = 1e300      # an accumulator past float32's range
    with pytest.raises(ValueError, match="init: the FitResult's optimizer state must fit in "
                                         "float32"):
        gdcore.fit(X.astype(np.float32), X[:, 0], init=small, epochs=1, backend=backend)


def test_schedule_arguments_are_checked():
    from gdcore.schedules import CosineAnnealingLR, ExponentialLR, LinearLR, StepLR
    with pytest.raises(ValueError, match="step_size must be >= 1, got 0"):
        StepLR(step_size=0)
    with pytest.raises(ValueError, match=r"gamma must be > 0(\.0)?, got 0\.0"):
        ExponentialLR(gamma=0.0)
    with pytest.raises(ValueError, match="T_max must be >= 1, got 0"):
        CosineAnnealingLR(T_max=0)
    with pytest.raises(ValueError, match=r"start_factor must be > 0(\.0)?, got 0\.0"):
        LinearLR(start_factor=0.0)



@pytest.mark.parametrize("make, name", [
    (lambda: schedules.ExponentialLR(gamma=10 ** 400), "gamma"),
    (lambda: schedules.InverseScaling(power_t=10 ** 400), "power_t"),
    (lambda: schedules.CosineAnnealingLR(5, eta_min=10 ** 400), "eta_min"),
    (lambda: schedules.StepLR(step_size=10 ** 400), "step_size"),
    (lambda: schedules.CosineAnnealingLR(T_max=10 ** 400), "T_max"),
    (lambda: schedules.LinearLR(total_iters=10 ** 400), "total_iters"),
    (lambda: Adam(lr=10 ** 400), "lr"),
])
def test_schedule_arguments_beyond_float_range_are_refused_by_name(make, name):
    """An int too large for a float raised a bare OverflowError ("int too large to convert to
    float"), from the constructor or only once fit built the core's config, naming nothing."""
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        make()


def test_schedule_sizes_given_as_arrays_are_refused_by_name():
    """A one-element array has __index__ but is no integer: int() raised numpy's TypeError
    ("only 0-dimensional arrays can be converted..."), naming no argument."""
    from gdcore.schedules import StepLR
    with pytest.raises(TypeError, match=r"^step_size must be an integer, got array\(\[3\]\)"):
        StepLR(step_size=np.array([3]))
    assert StepLR(step_size=np.array(3)).step_size == 3      # a 0-d integer array is one


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_single_non_finite_value_anywhere_in_a_large_array_is_found(dtype, bad):
    """The finiteness check of X runs in threads over parts of the array, in vector lanes:
    a bad value at either end of a part, or in a lane's tail, must still be found."""
    n, d = 5003, 7
    for flat in (0, 1, n * d // 2 - 1, n * d // 2, n * d // 2 + 1, n * d - 17, n * d - 1):
        X = np.ones((n, d), dtype=dtype)
        X.reshape(-1)[flat] = bad
        with pytest.raises(ValueError, match=rf"X contains NaN or infinity \(first at index "
                                             rf"\[{flat // d}, {flat % d}\]"):
            gdcore.fit(X, np.ones(n, dtype=dtype), epochs=1)


@pytest.mark.parametrize("backend", ["core", "numpy"])
def test_the_work_guard_of_test_bad_input_sees_a_valid_fit(backend, monkeypatch):
    """test_bad_input's guard is not vacuous: a valid fit reaches the patched entry points."""
    def work_started(*args, **kwargs):
        raise AssertionError("work")
    monkeypatch.setattr(gdcore._core, "run_fit", work_started)
    monkeypatch.setattr(gdcore._reference, "run", work_started)
    with pytest.raises(AssertionError, match="work"):
        gdcore.fit(X0, Y0, backend=backend, precompute=False)


@pytest.mark.parametrize("chunk_rows", [0, -1, 2.5])
def test_make_regression_checks_chunk_rows(chunk_rows):
    """-1 returned uninitialised memory, 0 a bare range() error."""
    with pytest.raises((ValueError, TypeError), match="chunk_rows"):
        gdcore.make_regression(100, 3, chunk_rows=chunk_rows)


@pytest.mark.parametrize("sizes", [(10**30, 3), (3, 10**30), (10, 2**62)])
def test_make_regression_names_sizes_no_array_can_hold(sizes):
    """NumPy's "Maximum allowed dimension exceeded" or "array is too big" named no argument."""
    with pytest.raises(ValueError, match="n_samples × n_features = .* is more values than an "
                                         "array can hold"):
        gdcore.make_regression(*sizes)


@pytest.mark.parametrize("options, error, name", [
    (dict(seed="abc"), TypeError, "seed"), (dict(seed=-1), ValueError, "seed"),
    (dict(dtype="nonsense"), TypeError, "dtype")])
def test_make_regression_names_a_bad_seed_or_dtype(options, error, name):
    """numpy's own errors ('SeedSequence expects int...', 'expected non-negative integer',
    "data type 'nonsense' not understood") did not say which argument was wrong."""
    with pytest.raises(error, match=f"^{name} must be"):
        gdcore.make_regression(100, 3, **options)


def test_a_results_loss_history_is_read_only_and_continues():
    X, y, _ = gdcore.make_regression(50, 3, seed=0)
    first = gdcore.fit(X, y, epochs=3, tol=None)
    assert not first.loss_history.flags.writeable
    more = gdcore.fit(X, y, epochs=2, tol=None, init=first)
    straight = gdcore.fit(X, y, epochs=5, tol=None)
    np.testing.assert_array_equal(more.loss_history, straight.loss_history)
    np.testing.assert_array_equal(first.loss_history, straight.loss_history[:3])


def test_a_pickled_or_copied_results_loss_history_stays_read_only():
    """pickle and copy.deepcopy gave back a writeable loss_history."""
    import copy
    import pickle
    X, y, _ = gdcore.make_regression(50, 3, seed=0)
    first = gdcore.fit(X, y, epochs=3, tol=None)
    for again in (pickle.loads(pickle.dumps(first)), copy.deepcopy(first)):
        assert not again.loss_history.flags.writeable
        np.testing.assert_array_equal(again.loss_history, first.loss_history)
        more = gdcore.fit(X, y, epochs=2, tol=None, init=again)
        np.testing.assert_array_equal(more.loss_history,
                                      gdcore.fit(X, y, epochs=5, tol=None).loss_history)
    # copy.copy shares the array: the original's own is left as it was (a result built with
    # a writeable history of the caller's had it made read-only)
    import dataclasses
    history = np.array([2.0, 1.0])
    built = dataclasses.replace(first, loss_history=history)
    assert not copy.copy(built).loss_history.flags.writeable
    assert history.flags.writeable


def test_a_diverged_fits_loss_history_is_read_only():
    """A DivergenceError's .result gave a writeable loss_history (its state is not kept, so
    the history was a plain copy)."""
    X, y, _ = gdcore.make_regression(50, 3, seed=0)
    with pytest.raises(gdcore.DivergenceError) as caught:
        gdcore.fit(X * 100, y, lr=10, epochs=1000, tol=None)
    history = caught.value.result.loss_history
    assert len(history) > 1 and np.isfinite(history).all()
    assert not history.flags.writeable


def test_a_value_made_finite_during_the_check_is_still_refused(monkeypatch):
    """Another thread writing to X while it is checked (a user error) must not turn the
    refusal into an IndexError: the check saw a non-finite value, the lookup of its place
    finds none."""
    from gdcore import _validation
    monkeypatch.setattr(_validation._core, "all_finite", lambda values, n_threads: False)
    X = np.ones((5, 2))
    with pytest.raises(ValueError, match="X contained NaN or infinity while it was checked"):
        _validation.check_all_finite("X", X)


def test_arguments_in_the_wrong_place_are_said_to_be():
    X, y, _ = problem(n=30, d=3)
    with pytest.raises(ValueError, match=r"got 1-D array of shape \(30,\) \(were X and y "
                                         r"swapped\? the order is X, y\)"):
        gdcore.fit(y, X)
    with pytest.raises(TypeError, match=r"got str \(the order is save_model\(path, model\)\)"):
        gdcore.save_model(gdcore.fit(X, y, epochs=2), "model.json")
    with pytest.raises(TypeError, match=r"chunks is one \(X, y\) pair, not a list of them: "
                                        r"pass \[\(X, y\)\]"):
        gdcore.fit_chunks((X, y))
    with pytest.raises(TypeError, match="chunk 0 is a dict; expected a tuple"):
        gdcore.fit_chunks([{"X": X, "y": y}])


def test_a_gram_matrix_past_the_machines_memory_is_refused_before_any_work(monkeypatch):
    """precompute=True with very wide X: the (d + 2)² matrices were allocated regardless, a
    raw MemoryError at 7 TiB or, under overcommit, a process killed as they filled.  Now a
    ValueError names precompute before any pass over the data (fit, gdcore.dask; fit_chunks
    once its first chunk has given d)."""
    import gdcore._precompute as precompute
    memory = precompute._memory_limit()
    if sys.platform.startswith("linux"):
        assert memory is not None and memory > 0
    # the limit is half of the memory the process may use: 24 GiB here, as on the project's
    # machine (where the system does not say, as on Windows, nothing is checked)
    monkeypatch.setattr(precompute, "_memory_limit", lambda: 24 << 30)
    X, y = np.ones((3, 1_000_000), np.float32), np.ones(3, np.float32)
    expected = (r"precompute=True: Gram mode holds two 1,000,002 x 1,000,002 float64 matrices "
                r"for d=1,000,000 features, 14,901\.2 GiB, more than half of the 24\.0 GiB of "
                r"memory this process may use; use precompute=False")
    with pytest.raises(ValueError, match=expected):
        gdcore.fit(X, y, precompute=True)
    with pytest.raises(ValueError, match=expected):
        gdcore.fit_chunks([(X, y)], precompute=True)
    try:
        import dask.array as da

        from gdcore import dask as gdcore_dask
    except ImportError:
        pass
    else:
        with pytest.raises(ValueError, match=expected):
            gdcore_dask.fit(da.from_array(X), da.from_array(y), precompute=True)
    # 1 GiB refuses d = 10,000 (1.5 GiB) only
    monkeypatch.setattr(precompute, "_memory_limit", lambda: 1 << 30)
    with pytest.raises(ValueError, match=r"d=10,000 features, 1\.5 GiB, more than half of "
                                         r"the 1\.0 GiB"):
        gdcore.fit(np.ones((2, 10_000)), np.ones(2), precompute=True)
    result = gdcore.fit(np.ones((2, 5_000)), np.ones(2), precompute=True, epochs=2)
    assert result.n_epochs == 2
    assert gdcore.fit(np.ones((2, 10_000)), np.ones(2), precompute=False, epochs=2).n_epochs == 2


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("scale, negative", [(2.0**200, -1.0), (1.0, -1e-50)])
def test_a_negative_weight_narrowed_to_minus_zero_is_still_refused(scale, negative, backend):
    """float64 weights with float32 X: a negative weight that scaling the weights near 1
    (-1 among weights near 2^200) or narrowing them (-1e-50) made -0.0 was taken as a weight
    of 0, as the check for negatives ran on the weights once converted."""
    X, y = good()
    X, y = X.astype(np.float32), y.astype(np.float32)
    weights = np.full(len(y), scale)
    weights[5] = negative
    with pytest.raises(ValueError, match=rf"sample_weight must be >= 0; sample_weight\[5\] = "
                                         rf"{negative}"):
        gdcore.fit(X, y, sample_weight=weights, epochs=2, backend=backend)
    with pytest.raises(ValueError, match=r"sample_weight must be >= 0; sample_weight\[5\]"):
        gdcore.fit_chunks([(X, y, weights)], epochs=2)


def test_the_gram_memory_limit_is_a_containers_where_lower(monkeypatch, tmp_path):
    """The memory a process may use is the machine's, or its cgroup's limit where lower (a
    container on a large machine would be killed, not refused); "max" means no limit."""
    import gdcore._precompute as precompute
    v2, v1 = tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes"
    v2.write_text("max\n")
    v1.write_text("1073741824\n")
    monkeypatch.setattr(precompute, "_CGROUP_LIMIT_FILES", (str(v2), str(v1)))
    assert precompute._memory_limit() == 1 << 30
    v1.write_text(f"{1 << 62}\n")      # v1's "no limit" is a huge number
    monkeypatch.setattr(precompute, "_CGROUP_LIMIT_FILES", (str(v2), str(v1),
                                                             str(tmp_path / "absent")))
    unlimited = precompute._memory_limit()
    assert unlimited is None or 0 < unlimited < 1 << 62     # the machine's, or not known


def test_the_gram_memory_check_is_the_cores_only(monkeypatch):
    """backend="numpy" streams X whatever precompute says (it forms no Gram matrix), so a
    width whose Gram matrices would not fit is not refused there as one that 'holds two
    (d + 2)² float64 matrices'; the core still refuses it."""
    import gdcore._precompute as precompute
    monkeypatch.setattr(precompute, "_memory_limit", lambda: 1 << 30)
    X, y = np.ones((2, 10_000)), np.ones(2)
    result = gdcore.fit(X, y, precompute=True, epochs=2, backend="numpy")
    assert result.n_epochs == 2
    with pytest.raises(ValueError, match=r"precompute=True: Gram mode holds two"):
        gdcore.fit(X, y, precompute=True, epochs=2)



def test_auto_does_not_pick_a_gram_matrix_that_true_would_refuse(monkeypatch):
    """precompute="auto" is a choice of speed: with many epochs it picked Gram mode for a
    width whose matrices precompute=True refuses as taking more than half of the memory the
    process may use (d = 4,096, 268 MB, under a 512 MB container limit), and allocated them
    regardless.  It now streams X there, in gdcore.fit and in fit_chunks."""
    import gdcore._api as api
    import gdcore._chunked as chunked
    import gdcore._precompute as precompute
    monkeypatch.setattr(precompute, "_memory_limit", lambda: 1 << 20)     # 1 MiB
    formed = []

    def spy(*args, **kwargs):
        formed.append(1)
        return precompute.augmented_gram(*args, **kwargs)
    monkeypatch.setattr(api, "augmented_gram", spy)
    monkeypatch.setattr(chunked, "augmented_gram", spy)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((3000, 200)), rng.standard_normal(3000)   # 2 x 653 KB
    with pytest.raises(ValueError, match=r"precompute=True: Gram mode holds two"):
        gdcore.fit(X, y, precompute=True, epochs=1000)
    auto = gdcore.fit(X, y, epochs=20, lr=0.01, tol=None)
    streamed = gdcore.fit(X, y, epochs=20, lr=0.01, tol=None, precompute=False)
    np.testing.assert_array_equal(auto.loss_history, streamed.loss_history)
    gdcore.fit_chunks([(X[:1500], y[:1500]), (X[1500:], y[1500:])], epochs=3, tol=None)
    assert formed == []
    # a width that fits is still formed by "auto"
    gdcore.fit(X[:, :100], y, epochs=1000, lr=0.01)
    assert formed == [1]

@pytest.mark.parametrize("name", ["l2", "l1", "tol", "gtol"])
@pytest.mark.parametrize("huge", [10**400, -10**400])
def test_a_setting_past_floats_range_is_refused_naming_it(name, huge):
    """An int past float's range (10**400) is said to be not finite, not Python's bare
    OverflowError ('int too large to convert to float')."""
    X, y = good()
    calls = []
    with pytest.raises(ValueError, match=rf"^{name} must be finite"):
        gdcore.fit(X, y, epochs=2, callback=calls.append, **{name: huge})
    assert calls == []


@pytest.mark.parametrize("name", ["intercept", "step", "l2", "l1"])
def test_check_grad_refuses_a_number_past_floats_range_naming_it(name):
    X, y = good()
    with pytest.raises(ValueError, match=rf"^{name} must be finite"):
        gdcore.check_grad(X, y, np.ones(3), **{name: 10**400})


@pytest.mark.parametrize("intercept, error, message", [
    (10**400, ValueError, "init: intercept must be finite"),
    (Fraction(10**400), ValueError, "init: intercept must be finite"),
    ("1.5", TypeError, "init: intercept must be a number"),
    (b"1.5", TypeError, "init: intercept must be a number"),
    (float("nan"), ValueError, "init: intercept must be finite, got nan"),
    (-np.inf, ValueError, "init: intercept must be finite, got -inf"),
    # text float() refuses with a ValueError: not a number, as before finite_float
    (np.array("abc"), TypeError, "init: intercept must be a number"),
    (bytearray(b"abc"), TypeError, "init: intercept must be a number"),
    (Decimal("sNaN"), TypeError, "init: intercept must be a number"),
    # text float() can read, and booleans, were taken as numbers
    (np.array("1.5"), TypeError, "init: intercept must be a number"),
    (bytearray(b"1.5"), TypeError, "init: intercept must be a number"),
    (True, TypeError, "init: intercept must be a number"),
    (np.True_, TypeError, "init: intercept must be a number"),
    (np.array(True), TypeError, "init: intercept must be a number"),
])
def test_an_init_intercept_past_floats_range_or_a_string_is_refused(intercept, error, message):
    """init=(coef, 10**400) raised Python's bare OverflowError, and init=(coef, "1.5") was
    read as 1.5 where every other number argument refuses a string (np.array("1.5"),
    bytearray(b"1.5") and True were still read as numbers)."""
    X, y = good()
    calls = []
    with pytest.raises(error, match=message):
        gdcore.fit(X, y, init=(np.zeros(3), intercept), epochs=2, callback=calls.append)
    assert calls == []


def test_an_init_coef_not_finite_is_refused_naming_coef():
    X, y = good()
    with pytest.raises(ValueError, match="^init: coef must be finite$"):
        gdcore.fit(X, y, init=(np.array([0.0, np.nan, 0.0]), 0.0), epochs=2)


@pytest.mark.parametrize("precompute", ["auto", True, False])
def test_epochs_past_floats_range_run_until_a_stopping_rule(precompute):
    """epochs is any int >= 1: 10**400 full-batch fits until tol stops it, as a mini-batch fit
    does; precompute="auto" weighed the Gram matrix's cost in floats and raised a bare
    OverflowError ('int too large to convert to float')."""
    X, y = good()
    result = gdcore.fit(X, y, epochs=10**400, lr=0.1, precompute=precompute)
    assert result.stop_reason == "tol"
    assert result.n_epochs < 10_000


@pytest.mark.parametrize("kwargs, error, message", [
    ({"epochs": "500"}, TypeError, "epochs must be an integer"),
    ({"epochs": 2.5}, TypeError, "epochs must be an integer"),
    ({"epochs": 0}, ValueError, "epochs must be >= 1"),
    ({"epochs": -5}, ValueError, "epochs must be >= 1"),
    ({"epochs": 10, "desc": 5}, TypeError, "desc must be a string"),
    ({"epochs": 10, "callback": 5}, TypeError, "callback must be callable"),
])
def test_progress_bar_checks_its_arguments_before_the_fit(kwargs, error, message):
    """progress_bar handed its arguments to tqdm unchecked: epochs=-5 made a bar, "500" and
    desc=5 failed in tqdm's words, and callback=5 only after the fit's first epoch."""
    X, y = good()
    with pytest.raises(error, match=message):
        with gdcore.progress_bar(**kwargs) as bar:
            gdcore.fit(X, y, epochs=10, callback=bar)


@pytest.mark.parametrize("name", ["X", "y", "sample_weight"])
def test_a_masked_array_with_masked_entries_is_refused_naming_it(name):
    """np.asarray drops a masked array's mask: the values under it were fitted as data.  A
    masked array with nothing masked fits as its data does."""
    X, y = good()
    arrays = {"X": X, "y": y, "sample_weight": np.ones(len(y))}
    masked = np.ma.masked_array(arrays[name].copy())
    masked[1] = np.ma.masked
    calls = []
    with pytest.raises(ValueError, match=rf"^{name} is a masked array with masked entries "
                                         r"\(first at index \[1"):
        gdcore.fit(**{**arrays, name: masked}, epochs=2, callback=calls.append)
    assert calls == []
    unmasked = gdcore.fit(**{**arrays, name: np.ma.masked_array(arrays[name], mask=False)},
                          epochs=2)
    np.testing.assert_array_equal(unmasked.coef, gdcore.fit(**arrays, epochs=2).coef)


def test_an_init_coef_with_masked_entries_is_refused():
    """init=masked coef started from the values under the mask, which np.asarray keeps."""
    X, y = good()
    coef = np.ma.masked_array(np.ones(3), mask=[False, True, False])
    calls = []
    with pytest.raises(ValueError, match="init: coef is a masked array with masked entries"):
        gdcore.fit(X, y, init=coef, epochs=2, callback=calls.append)
    assert calls == []
    unmasked = gdcore.fit(X, y, init=np.ma.masked_array(np.ones(3)), epochs=2)
    np.testing.assert_array_equal(unmasked.coef, gdcore.fit(X, y, init=np.ones(3), epochs=2).coef)


@pytest.mark.parametrize("fitter", ["core", "numpy", "chunks", "progress_bar"])
def test_a_callback_answer_without_a_truth_value_is_refused_naming_the_callback(fitter):
    """A callback returning an array of several numbers failed in NumPy's words ("The truth
    value of an array ... is ambiguous"), naming neither the callback nor what it must
    return.  The fit stops there, with the caller's arrays untouched."""
    X, y = good()
    X_before, y_before = X.copy(), y.copy()
    answer = lambda progress: np.array([progress.loss, 0.0])   # noqa: E731
    message = r"^callback must return True to stop the fit, or False or None to go on; got ndarray"
    with pytest.raises(TypeError, match=message):
        if fitter == "chunks":
            gdcore.fit_chunks([(X[:10], y[:10]), (X[10:], y[10:])], epochs=3, callback=answer)
        elif fitter == "progress_bar":
            pytest.importorskip("tqdm", reason="progress_bar needs tqdm")
            with gdcore.progress_bar(epochs=3, callback=answer) as bar:
                gdcore.fit(X, y, epochs=3, callback=bar)
        else:
            gdcore.fit(X, y, epochs=3, callback=answer, backend=fitter)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)


def test_a_callback_answer_is_read_for_its_truth_value():
    """True (or a one-element array of True, or any truthy value) stops the fit after the
    epoch; False, None and 0 go on."""
    X, y = good()
    for answer, stop_reason, n_epochs in [(True, "callback", 1), (np.array([True]), "callback", 1),
                                          (None, "epochs", 4), (0, "epochs", 4),
                                          (np.False_, "epochs", 4)]:
        result = gdcore.fit(X, y, epochs=4, tol=None,
                            callback=lambda progress, answer=answer: answer)
        assert (result.stop_reason, result.n_epochs) == (stop_reason, n_epochs), answer


@pytest.mark.parametrize("dtype, options", [
    (np.float32, dict(noise=1e39)), (np.float32, dict(intercept=1e39)),
    (np.float32, dict(intercept=-3e38, noise=1e38)), (np.float64, dict(noise=1e308))])
def test_make_regression_refuses_a_y_past_its_dtype_naming_noise_and_intercept(dtype, options):
    """A noise or intercept past the dtype's range returned a y holding infinity (float32
    with noise=1e39), which every gdcore function then refuses as data: a ValueError now
    names noise and intercept, without numpy's overflow RuntimeWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"^noise=.* and intercept=.* take y past "
                                             f"{np.dtype(dtype)}'s range"):
            gdcore.make_regression(100, 3, seed=0, dtype=dtype, **options)


@pytest.mark.parametrize("name", ["step", "cosine"])
def test_a_schedule_name_sized_past_floats_range_names_schedule_and_epochs(name):
    """fit(schedule="step", epochs=10**400) said "step_size must be at most ...", an argument
    the caller never gave."""
    X, y = good()
    with pytest.raises(ValueError, match=f"^schedule='{name}' is sized to the run's epochs"):
        gdcore.fit(X, y, schedule=name, epochs=10**400)
