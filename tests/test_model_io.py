"""gdcore.save_model / gdcore.load_model on what users have: a FitResult, a GDRegressor."""

import json
import os

import numpy as np
import pytest

import gdcore

from conftest import problem, traced_peak


def test_save_a_fit_result(tmp_path):
    X, y, _ = problem(n=200, d=4)
    result = gdcore.fit(X, y, optimizer="adam", lr=0.05, epochs=5)
    path = tmp_path / "m.json"
    gdcore.save_model(path, result)
    loaded = gdcore.load_model(path)
    np.testing.assert_allclose(loaded.predict(X), result.predict(X), rtol=1e-15)
    assert loaded.feature_names == ["0", "1", "2", "3"] and loaded.target is None
    assert loaded.mean is None and loaded.stop_reason == result.stop_reason
    assert loaded.loss_history == list(result.loss_history)
    saved = json.loads(path.read_text())["hyper_parameters"]
    assert saved["epochs"] == 5 and saved["optimizer"] == repr(result.optimizer)
    assert saved["schedule"] == repr(result.schedule)
    assert saved["backend"] == "core" and saved["n_threads"] == result.n_threads
    more = gdcore.fit(X, y, epochs=3, init=result, n_threads=1)
    gdcore.save_model(path, more)
    saved = json.loads(path.read_text())["hyper_parameters"]
    assert saved["epochs"] == 3 and saved["n_epochs"] == 8 and saved["n_threads"] == 1


def test_save_a_float32_fit_with_names(tmp_path):
    X, y, _ = problem(n=200, d=3, dtype=np.float32)
    result = gdcore.fit(X, y, lr=0.1, epochs=20)
    path = tmp_path / "m.json"
    gdcore.save_model(path, result, feature_names=["a", "b", "c"], target="price")
    loaded = gdcore.load_model(path)
    assert loaded.feature_names == ["a", "b", "c"] and loaded.target == "price"
    # result.predict computes in float32, the loaded model in float64 (as the README says)
    assert result.predict(X).dtype == np.float32 and loaded.predict(X).dtype == np.float64
    np.testing.assert_allclose(loaded.predict(X), result.predict(X), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(loaded.predict(X), X.astype(np.float64) @ result.coef.astype(
        np.float64) + float(result.intercept))
    with pytest.raises(ValueError, match="feature_names has 2 names but the model has 3"):
        gdcore.save_model(tmp_path / "bad.json", result, feature_names=["a", "b"])


def test_the_command_line_predicts_with_a_saved_fit_result(tmp_path):
    """A FitResult saved from Python names its columns as a .npy's: gdcore predict reads it."""
    from gdcore.cli import main
    X, y, _ = problem(n=50, d=3)
    result = gdcore.fit(X, y, lr=0.1, epochs=20)
    gdcore.save_model(tmp_path / "m.json", result)
    np.save(tmp_path / "X.npy", X)
    assert main(["predict", str(tmp_path / "m.json"), str(tmp_path / "X.npy"), "--out",
                 str(tmp_path / "p.csv")]) == 0
    predicted = np.loadtxt(tmp_path / "p.csv", skiprows=1)
    np.testing.assert_allclose(predicted, result.predict(X), rtol=1e-15)


def test_save_a_fitted_estimator(tmp_path):
    pd = pytest.importorskip("pandas", reason="the DataFrame case needs the optional pandas")
    pytest.importorskip("sklearn", reason="GDRegressor needs the optional scikit-learn")
    X, y, _ = problem(n=200, d=3)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    estimator = gdcore.GDRegressor(optimizer="gd", lr=0.5, epochs=50).fit(frame, y)
    gdcore.save_model(tmp_path / "m.json", estimator)
    loaded = gdcore.load_model(tmp_path / "m.json")
    assert loaded.feature_names == ["a", "b", "c"]
    np.testing.assert_allclose(loaded.predict(X), estimator.predict(frame), rtol=1e-12)


@pytest.mark.parametrize("thing", [None, {"coef": [1.0]}, "model"])
def test_save_anything_else_is_a_type_error(tmp_path, thing):
    with pytest.raises(TypeError, match="model must be a FitResult"):
        gdcore.save_model(tmp_path / "m.json", thing)


def test_save_an_unfitted_estimator_is_a_type_error(tmp_path):
    pytest.importorskip("sklearn", reason="GDRegressor needs the optional scikit-learn")
    with pytest.raises(TypeError, match="got GDRegressor"):
        gdcore.save_model(tmp_path / "m.json", gdcore.GDRegressor())


def test_a_saved_model_predicts_a_data_frame_by_column_name(tmp_path):
    pd = pytest.importorskip("pandas", reason="the DataFrame case needs pandas")
    X, y, _ = problem(n=60, d=3)
    result = gdcore.fit(X, y, optimizer="gd", lr=0.5, epochs=20)
    gdcore.save_model(tmp_path / "m.json", result, feature_names=["a", "b", "c"])
    model = gdcore.load_model(tmp_path / "m.json")
    shuffled = pd.DataFrame(X, columns=["a", "b", "c"])[["c", "a", "b"]].assign(extra=1.0)
    np.testing.assert_array_equal(model.predict(shuffled), model.predict(X))
    with pytest.raises(ValueError, match="X has no column 'b'"):
        model.predict(shuffled.drop(columns="b"))


def test_a_failed_save_keeps_the_earlier_file(tmp_path):
    X, y, _ = problem(n=60, d=3)
    result = gdcore.fit(X, y, epochs=3)
    path = tmp_path / "m.json"
    gdcore.save_model(path, result, target="y")
    before = path.read_bytes()
    with pytest.raises(TypeError, match="target must be a column name"):
        gdcore.save_model(path, result, target=3.5)
    assert path.read_bytes() == before
    gdcore.save_model(path, result, target=np.int64(3))     # a column index, as a .npy names it
    assert gdcore.load_model(path).target == "3"
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]     # no temporary file left


def test_an_interrupted_write_leaves_nothing_behind(tmp_path):
    from gdcore._atomic import replaced_on_success
    path = tmp_path / "out.csv"
    path.write_text("earlier\n")
    with pytest.raises(KeyboardInterrupt):
        with replaced_on_success(path) as f:
            f.write("half")
            raise KeyboardInterrupt
    assert path.read_text() == "earlier\n" and len(list(tmp_path.iterdir())) == 1


def test_a_replaced_file_is_on_disk_before_its_rename(tmp_path, monkeypatch):
    """The new file's data is synced before it takes the name, then the folder holding the
    name: without the first, a crash soon after could leave the name on an empty file."""
    from gdcore import _atomic
    path = tmp_path / "model.json"
    path.write_text("earlier\n")
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")
                       if os.path.exists("/proc/self/fd") else descriptor))
        real_fsync(descriptor)

    def replace(source, target):
        events.append(("replace", os.fspath(source), os.fspath(target)))
        real_replace(source, target)

    monkeypatch.setattr(_atomic.os, "fsync", fsync)
    monkeypatch.setattr(_atomic.os, "replace", replace)
    with _atomic.replaced_on_success(path) as f:
        f.write("new\n")
    assert path.read_text() == "new\n"
    kinds = [event[0] for event in events]
    assert kinds == ["fsync", "replace", "fsync"], events
    temporary = events[1][1]
    assert events[1][2] == os.path.realpath(path)
    if os.path.exists("/proc/self/fd"):
        assert events[0][1] == temporary and events[2][1] == os.path.realpath(tmp_path)


@pytest.mark.parametrize("error, kept", [("EINVAL", True), ("ENOTSUP", True), ("EIO", False)])
def test_a_file_system_that_cannot_sync_still_takes_the_file(tmp_path, monkeypatch, error,
                                                             kept):
    """fsync refused as unsupported (some FUSE and network file systems) leaves the write as
    it stands; an I/O error fails it, the earlier file kept and nothing left behind."""
    import errno

    from gdcore import _atomic
    path = tmp_path / "model.json"
    path.write_text("earlier\n")

    def fsync(descriptor):
        raise OSError(getattr(errno, error), os.strerror(getattr(errno, error)))
    monkeypatch.setattr(_atomic.os, "fsync", fsync)
    if kept:
        with _atomic.replaced_on_success(path) as f:
            f.write("new\n")
        assert path.read_text() == "new\n"
    else:
        with pytest.raises(OSError):
            with _atomic.replaced_on_success(path) as f:
                f.write("new\n")
        assert path.read_text() == "earlier\n"
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]


def test_a_replaced_file_keeps_its_links_permissions_and_special_files(tmp_path):
    """The temporary file and rename keep what writing in place kept: a symbolic link's
    target is the file written, an earlier file's permissions stay, a FIFO is written into,
    and a name near the file system's limit still works."""
    import stat
    import threading

    from gdcore._atomic import replaced_on_success
    real = tmp_path / "real.csv"
    real.write_text("old\n")
    real.chmod(0o600)
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    with replaced_on_success(link) as f:
        f.write("new\n")
    assert link.is_symlink() and real.read_text() == "new\n"
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    with replaced_on_success(fifo) as f:
        f.write("through\n")
    reader.join(timeout=10)
    assert got == ["through\n"] and stat.S_ISFIFO(fifo.stat().st_mode)
    long_name = tmp_path / ("m" * 240 + ".json")
    with replaced_on_success(long_name) as f:
        f.write("{}")
    assert long_name.read_text() == "{}"


def test_malformed_model_files_are_value_errors_naming_the_file(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    big = tmp_path / "big.json"
    big.write_text('{"format": "gdcore-model", "coef": [' + "9" * 5000 + "]}")
    for path, message in [(deep, "nested too deeply"), (big, "digits")]:
        with pytest.raises(ValueError, match=f"{path.name}: not a gdcore model .*{message}"):
            gdcore.load_model(path)
    X, y, _ = problem(n=40, d=2)
    good = tmp_path / "good.json"
    gdcore.save_model(good, gdcore.fit(X, y, epochs=3))
    document = json.loads(good.read_text())
    for key, value, message in [("feature_names", ["a", "a"], "'a' appears more than once"),
                                ("target", 3, "target must be a column name"),
                                ("stop_reason", [1], "stop_reason must be a string"),
                                ("hyper_parameters", [], "hyper_parameters must be an object"),
                                ("loss_history", ["x"], "loss_history must be a list"),
                                ("coef", [], "coef is empty")]:
        changed = tmp_path / f"{key}.json"
        changed.write_text(json.dumps(dict(document, **{key: value})))
        with pytest.raises(ValueError, match=f"{key}.json: not a usable gdcore model .*"
                                             f"{message}"):
            gdcore.load_model(changed)


def test_feature_names_are_checked_when_saving(tmp_path):
    X, y, _ = problem(n=40, d=3)
    result = gdcore.fit(X, y, epochs=3)
    with pytest.raises(ValueError, match="'a' appears more than once"):
        gdcore.save_model(tmp_path / "m.json", result, feature_names=["a", "a", "b"])
    with pytest.raises(TypeError, match="feature_names must be a list of column names, got "
                                        "str 'abc'"):
        gdcore.save_model(tmp_path / "m.json", result, feature_names="abc")
    # a set's order is its hashes', not the columns': the names fell to coefficients at random
    for unordered in ({"a", "b", "c"}, frozenset("abc")):
        with pytest.raises(TypeError, match="feature_names must be a list of column names in "
                                            "the columns' order"):
            gdcore.save_model(tmp_path / "m.json", result, feature_names=unordered)
    # a dict's keys are a Set too, but in the order they were put in: taken in that order
    columns = {"c": 0, "a": 1, "b": 2}
    gdcore.save_model(tmp_path / "keys.json", result, feature_names=columns.keys())
    assert gdcore.load_model(tmp_path / "keys.json").feature_names == ["c", "a", "b"]
    missing = tmp_path / "no" / "such" / "m.json"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        gdcore.save_model(missing, result)
    assert not (tmp_path / "m.json").exists()


def test_a_saved_model_predicts_a_pyarrow_table_by_column_name(tmp_path):
    pa = pytest.importorskip("pyarrow", reason="pyarrow is an optional extra")
    X, y, _ = problem(n=40, d=2)
    path = tmp_path / "m.json"
    gdcore.save_model(path, gdcore.fit(X, y, epochs=5), feature_names=["a", "b"])
    model = gdcore.load_model(path)
    table = pa.table({"b": X[:, 1], "other": y, "a": X[:, 0]})
    np.testing.assert_array_equal(model.predict(table), model.predict(X))


def test_a_pyarrow_tables_boolean_feature_is_refused_by_name_as_by_position(tmp_path):
    """A Table's columns taken by name were converted one by one: a boolean feature became
    1.0 and 0.0 beside the float columns, where a fit, an array's predict and a whole
    Table's refuse booleans (a Table fit's own predict took them so, as a saved model's).
    A boolean column that is no feature is left out, as other columns are."""
    pa = pytest.importorskip("pyarrow", reason="pyarrow is an optional extra")
    X, y, _ = problem(n=40, d=2)
    result = gdcore.fit(pa.table({"a": X[:, 0], "b": X[:, 1]}), y, epochs=5)
    path = tmp_path / "m.json"
    gdcore.save_model(path, result)
    model = gdcore.load_model(path)
    flag = pa.array(X[:, 1] > 0)
    for b in (flag, flag.dictionary_encode()):
        table = pa.table({"a": X[:, 0], "b": b})
        for predict in (result.predict, model.predict):
            with pytest.raises(TypeError, match="X has boolean dtype"):
                predict(table)
    table = pa.table({"a": X[:, 0], "b": X[:, 1], "flag": flag})
    np.testing.assert_allclose(result.predict(table), result.predict(X), rtol=1e-15)
    np.testing.assert_allclose(model.predict(table), result.predict(X), rtol=1e-15)


def test_dev_stdout_on_a_pipe_is_written_in_place(tmp_path):
    """/dev/stdout on a pipe resolves to /proc/<pid>/fd/pipe:[N], which cannot be opened:
    the link is followed as open() follows it, and the model goes down the pipe."""
    import subprocess
    import sys

    from conftest import subprocess_env
    code = ("import gdcore; X, y, _ = gdcore.make_regression(30, 2, seed=0); "
            "gdcore.save_model('/dev/stdout', gdcore.fit(X, y, epochs=2))")
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=subprocess_env(), check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["format"] == "gdcore-model"


def test_fit_result_predict_checks_x_and_results_compare_by_identity():
    X, y, _ = problem(n=30, d=2)
    result = gdcore.fit(X, y, epochs=3)
    np.testing.assert_array_equal(result.predict(X), X @ result.coef + result.intercept)
    with pytest.raises(ValueError, match=r"X must be 2-D with 2 columns .* got shape \(30, 1\)"):
        result.predict(X[:, :1])
    with pytest.raises(TypeError, match="X has boolean dtype"):
        result.predict(X > 0)
    again = gdcore.fit(X, y, epochs=3)
    assert result == result and result != again    # no "truth value of an array" error


def test_columns_named_like_pyarrow_attributes_are_plain_columns(tmp_path):
    """A DataFrame with columns "column_names" or "schema" is not taken for a pyarrow Table."""
    pd = pytest.importorskip("pandas", reason="DataFrames need the optional pandas")
    X, y, _ = problem(n=40, d=3)
    names = ["column_names", "schema", "types"]
    frame = pd.DataFrame(X, columns=names, index=["types"] + list(range(39)))
    result = gdcore.fit(frame, y, epochs=3)
    np.testing.assert_array_equal(result.coef, gdcore.fit(X, y, epochs=3).coef)
    path = tmp_path / "m.json"
    gdcore.save_model(path, result, feature_names=names)
    np.testing.assert_array_equal(gdcore.load_model(path).predict(frame[names[::-1]]),
                                  gdcore.load_model(path).predict(X))


def test_a_missing_model_file_is_both_value_error_and_file_not_found(tmp_path):
    for kind in (ValueError, FileNotFoundError):
        with pytest.raises(kind, match="nope.json: cannot read the model"):
            gdcore.load_model(tmp_path / "nope.json")


@pytest.mark.parametrize("path", [1, True, 2.5, None])
def test_load_model_refuses_a_path_that_is_no_file_name(path):
    """open() reads an int as a file descriptor and closes it after: load_model(1) or
    load_model(True) closed the process's stdout.  Run in a child, whose stdout is checked."""
    import subprocess
    import sys
    code = ("import sys, gdcore\n"
            "try:\n"
            f"    gdcore.load_model({path!r})\n"
            "except TypeError as exc:\n"
            "    assert 'path must be a file name' in str(exc), exc\n"
            "print('stdout open')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "stdout open\n"


def test_reprs_summarise_instead_of_listing_every_number(tmp_path):
    X, y, _ = problem(n=50, d=300)
    result = gdcore.fit(X, y, epochs=40)
    path = tmp_path / "m.json"
    gdcore.save_model(path, result)
    model = gdcore.load_model(path)
    assert repr(model).startswith("SavedModel(n_features=300, target=None, ")
    assert f"epochs=40, stop_reason='epochs', final_loss={result.final_loss:.6g}" in repr(model)
    assert repr(result.state).startswith("FitState(d=300, dtype=float64, n_epochs=40, ")
    assert "40 epochs" in repr(result.state.loss_history)
    assert all(len(repr(thing)) < 400 for thing in (model, result, result.state))
    with pytest.raises(ValueError, match=r"X must have 300 columns \('0', '1', '2', '3', '4', '5', "
                                         r"\.\.\. \(288 more\), '294', .*'299'\), got shape "
                                         r"\(50, 5\)"):
        model.predict(X[:, :5])


def test_a_saved_model_built_by_hand_has_a_repr():
    from gdcore._model_io import SavedModel
    model = SavedModel(coef=np.array([1.0, 2.0]), intercept=0.5, feature_names=["a", "b"],
                       loss_history=None, hyper_parameters=None)
    assert repr(model).startswith("SavedModel(n_features=2, target=None, intercept=0.5, ")
    assert "epochs=0" in repr(model) and "final_loss=None" in repr(model)


def test_a_saved_model_predicts_a_large_array_in_bounded_memory(tmp_path):
    """load_model(...).predict on a float32 (memmap) array, or with a standardised model, did
    not hold X whole in float64 (2x a float32 X, 2 copies of a float64 one); the predictions
    are the whole-array formula's (to the last bit but where BLAS's threads split the rows
    otherwise)."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((400_000, 20), dtype=np.float32)
    np.save(tmp_path / "X.npy", X)
    X = np.load(tmp_path / "X.npy", mmap_mode="r")
    coef = rng.standard_normal(20)
    names = [str(k) for k in range(20)]
    for mean, scale in ((None, None), (rng.standard_normal(20), rng.uniform(0.5, 2.0, 20))):
        model = gdcore._model_io.SavedModel(coef=coef, intercept=0.25, feature_names=names,
                                            mean=mean, scale=scale)
        predicted, peak = traced_peak(model.predict, X)
        assert peak < X.nbytes / 2, (peak, X.nbytes)
        whole = np.asarray(X, dtype=np.float64)
        if mean is not None:
            whole = (whole - mean) / scale
        np.testing.assert_allclose(predicted, whole @ coef + 0.25, rtol=1e-15, atol=0)


def test_a_saved_model_refuses_nan_in_x_naming_where(tmp_path):
    """NaN came back as a NaN prediction, unremarked, where gdcore predict refuses it."""
    X, y, _ = problem(n=50, d=3)
    path = tmp_path / "model.json"
    gdcore.save_model(path, gdcore.fit(X, y, lr=0.1, epochs=5))
    model = gdcore.load_model(path)
    big = np.ones((200_000, 3))     # past the first block of rows
    big[150_001, 2] = np.nan
    kept = big.copy()
    with pytest.raises(ValueError, match=r"X contains NaN or infinity \(first at index "
                                         r"\[150001, 2\]"):
        model.predict(big)
    np.testing.assert_array_equal(big, kept)
    np.testing.assert_array_equal(model.predict(X), X @ model.coef + model.intercept)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_fit_result_predict_refuses_nan_in_x_naming_where(dtype, value):
    """FitResult.predict ("checked as a fit checks X") returned NaN predictions for NaN in X,
    unremarked, where a fit, SavedModel.predict and GDRegressor.predict refuse it: X in the
    model's dtype (one product) and X converted a block at a time (float32 X, float64 fit)."""
    X, y, _ = problem(n=50, d=3)
    result = gdcore.fit(X, y, lr=0.1, epochs=5)
    big = np.ones((200_000, 3), dtype)      # past the first block of rows
    big[150_001, 1] = value
    kept = big.copy()
    with pytest.raises(ValueError, match=r"X contains NaN or infinity \(first at index "
                                         r"\[150001, 1\]"):
        result.predict(big)
    np.testing.assert_array_equal(big, kept)
    big[150_001, 1] = 1.0
    np.testing.assert_allclose(result.predict(big), big.astype(np.float64) @ result.coef
                               + result.intercept, rtol=1e-14)


@pytest.mark.parametrize("X, message", [
    (np.array([[True, False, True]]), "X has boolean dtype"),
    (np.array([["1", "2", "3"]]), "X has dtype <U1, which is not a real number type"),
    (np.array([[1 + 1j, 2, 3]]), "X has complex dtype"),
])
def test_a_saved_model_refuses_x_that_is_not_real_numbers(tmp_path, X, message):
    """Booleans were taken as 0 and 1, strings parsed as numbers and complex numbers cut to
    their real parts (with a ComplexWarning), where FitResult.predict and a fit refuse them."""
    X_fit, y, _ = problem(n=50, d=3)
    path = tmp_path / "model.json"
    result = gdcore.fit(X_fit, y, lr=0.1, epochs=5)
    gdcore.save_model(path, result)
    with pytest.raises(TypeError, match=message):
        result.predict(X)
    with pytest.raises(TypeError, match=message):
        gdcore.load_model(path).predict(X)


@pytest.mark.parametrize("value", [True, 0, "", [], {}, "yes", [1.0, 2.0],
                                   {"mean": [0.0, 0.0]}])
def test_a_malformed_standardize_entry_is_refused_naming_it(tmp_path, value):
    """standardize is null or an object of mean and scale: anything else (true, [], {}, a
    string) raised Python's own words ("'bool' object is not subscriptable"), or was read as
    no scaling at all, a model predicting unscaled columns with coefficients of scaled ones."""
    X, y, _ = problem(n=40, d=2)
    path = tmp_path / "m.json"
    gdcore.save_model(path, gdcore.fit(X, y, epochs=3))
    document = json.loads(path.read_text())
    path.write_text(json.dumps(dict(document, standardize=value)))
    with pytest.raises(ValueError, match=r"m\.json: not a usable gdcore model \(standardize "):
        gdcore.load_model(path)


def test_save_a_loaded_model_under_new_feature_names_and_target(tmp_path):
    """feature_names= and target= were ignored, unremarked, for a model from load_model: a
    .npy's model ("0", "1") saved again under a CSV's column names kept "0" and "1" (and a
    list of the wrong length passed too)."""
    X, y, _ = problem(n=40, d=2)
    path = tmp_path / "m.json"
    gdcore.save_model(path, gdcore.fit(X, y, epochs=3))
    loaded = gdcore.load_model(path)
    renamed = tmp_path / "renamed.json"
    gdcore.save_model(renamed, loaded, feature_names=["a", "b"], target=7)
    again = gdcore.load_model(renamed)
    assert again.feature_names == ["a", "b"] and again.target == "7"
    np.testing.assert_array_equal(again.predict(X), loaded.predict(X))
    assert loaded.feature_names == ["0", "1"] and loaded.target is None   # not changed
    with pytest.raises(ValueError, match="feature_names has 3 names but the model has 2"):
        gdcore.save_model(renamed, loaded, feature_names=["a", "b", "c"])
    with pytest.raises(TypeError, match="feature_names must be a list of column names"):
        gdcore.save_model(renamed, loaded, feature_names="ab")


@pytest.mark.parametrize("standardized", [False, True])
def test_init_with_a_loaded_model_says_what_to_pass(tmp_path, standardized):
    """fit(..., init=load_model(path)) said "init: coef must be real numbers, got dtype
    object": a loaded model is refused by what it is, with what to pass instead."""
    X, y, _ = problem(n=40, d=2)
    path = tmp_path / "m.json"
    gdcore.save_model(path, gdcore.fit(X, y, epochs=3))
    if standardized:
        document = json.loads(path.read_text())
        document["standardize"] = {"mean": [0.5, 0.5], "scale": [2.0, 2.0]}
        path.write_text(json.dumps(document))
    loaded = gdcore.load_model(path)
    message = r"init: a model from load_model .*init=\(model\.coef, model\.intercept\)"
    if standardized:
        message += r".*standardised"
    with pytest.raises(TypeError, match=message):
        gdcore.fit(X, y, epochs=3, init=loaded)


def test_a_saved_estimator_is_saved_with_coefficients_set_by_hand(tmp_path):
    """save_model saved the estimator's result_, not the coef_ and intercept_ set by hand
    since, which its predict uses: the file predicted otherwise than the estimator."""
    pytest.importorskip("sklearn", reason="GDRegressor needs the optional scikit-learn")
    X, y, _ = problem(n=40, d=3)
    model = gdcore.GDRegressor(epochs=3).fit(X, y)
    model.coef_, model.intercept_ = np.array([1.0, -2.0, 0.5]), 3.0
    gdcore.save_model(tmp_path / "m.json", model)
    loaded = gdcore.load_model(tmp_path / "m.json")
    np.testing.assert_array_equal(loaded.coef, model.coef_)
    assert loaded.intercept == 3.0
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    model.intercept_ = None
    with pytest.raises(TypeError, match="intercept_ must be a real number"):
        gdcore.save_model(tmp_path / "m.json", model)


def test_saved_models_compare_by_identity_and_name_columns_taken_by_name(tmp_path):
    """== of two SavedModels raised "truth value of an array"; a DataFrame repeating a
    feature's name gave a shape error naming neither column; a NaN in a column taken by name
    was named by its place among the model's features, not X's."""
    pd = pytest.importorskip("pandas", reason="DataFrames need pandas (gdcore[io])")
    X, y, _ = problem(n=50, d=3)
    path = tmp_path / "model.json"
    gdcore.save_model(path, gdcore.fit(X, y, lr=0.1, epochs=5), feature_names=["a", "b", "c"])
    model, again = gdcore.load_model(path), gdcore.load_model(path)
    assert model == model and model != again and len({model, again}) == 2
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    with pytest.raises(ValueError, match="more than one column named 'a'"):
        model.predict(pd.concat([frame, frame[["a"]]], axis=1))
    shuffled = frame[["c", "b", "a"]].copy()
    shuffled.loc[7, "a"] = np.nan
    with pytest.raises(ValueError, match=r"first at row 7, column 'a': nan\)"):
        model.predict(shuffled)


def test_a_fit_of_a_dataframe_keeps_its_column_names_and_predicts_by_them(tmp_path):
    """gdcore.fit(df) kept no names: predict on the same DataFrame with its columns in another
    order gave other predictions, unremarked, and save_model named the features "0", "1", ...
    The names are kept now; predict takes a DataFrame's or Table's columns by name, an array's
    by position (the truth below is X's columns times coef, by hand)."""
    pd = pytest.importorskip("pandas", reason="DataFrames need pandas")
    X, y, _ = problem(n=300, d=3, seed=4)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    result = gdcore.fit(df, y, optimizer="gd", lr=0.1, epochs=20, tol=None)
    assert result.feature_names == ["a", "b", "c"]
    truth = X @ result.coef + result.intercept
    np.testing.assert_allclose(result.predict(df[["c", "a", "b"]]), truth, rtol=1e-12)
    np.testing.assert_allclose(result.predict(df.assign(extra=1.0)), truth, rtol=1e-12)
    np.testing.assert_allclose(result.predict(X), truth, rtol=1e-12)    # an array: by position
    with pytest.raises(ValueError, match=r"X has no column 'c' \(the model's features"):
        result.predict(df[["a", "b"]].assign(d=1.0))
    # numbers for names are not the fit's names: refused, saying how to go by position
    with pytest.raises(ValueError, match=r"X has no column 'a' .*by name \(an array's, "
                                         r"such as X.to_numpy\(\), by position\)"):
        result.predict(pd.DataFrame(X))
    with pytest.raises(ValueError, match="more than one column named 'a'"):
        result.predict(pd.concat([df, df[["a"]]], axis=1))
    bad = df.copy()
    bad.iloc[5, 2] = np.nan
    with pytest.raises(ValueError, match=r"first at row 5, column 'c'"):
        result.predict(bad[["c", "b", "a"]])
    # numbers for names (a DataFrame made from an array) are positions: none kept
    assert gdcore.fit(pd.DataFrame(X), y, epochs=2).feature_names is None
    path = tmp_path / "m.json"
    gdcore.save_model(path, result)
    loaded = gdcore.load_model(path)
    assert loaded.feature_names == ["a", "b", "c"]
    np.testing.assert_allclose(loaded.predict(df[["b", "c", "a"]]), truth, rtol=1e-12)
    import pickle
    assert pickle.loads(pickle.dumps(result)).feature_names == ["a", "b", "c"]


def test_a_continued_fit_must_have_the_named_columns_it_continues():
    """init=result of a DataFrame fit: X's columns in another order would fit the earlier
    coefficients to other columns (by position), unremarked; refused, naming both.  An array,
    or the same columns, continue exactly, and keep the names."""
    pd = pytest.importorskip("pandas", reason="DataFrames need pandas")
    X, y, _ = problem(n=300, d=3, seed=5)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    options = dict(optimizer="adam", lr=0.05, tol=None)
    first = gdcore.fit(df, y, epochs=4, **options)
    whole = gdcore.fit(df, y, epochs=7, **options)
    for again in (df, X):
        more = gdcore.fit(again, y, epochs=3, init=first, **options)
        assert more.feature_names == ["a", "b", "c"]
        np.testing.assert_array_equal(more.coef, whole.coef)
        np.testing.assert_array_equal(more.loss_history, whole.loss_history)
    with pytest.raises(ValueError, match=r"init: the fit continued had X's columns 'a', 'b', "
                                         r"'c', this X has 'c', 'a', 'b'"):
        gdcore.fit(df[["c", "a", "b"]], y, epochs=3, init=first, **options)
    with pytest.raises(ValueError, match="init: the fit continued had X's columns"):
        gdcore.fit_chunks([(df[["c", "a", "b"]], y)], epochs=3, init=first, **options)


def test_fit_chunks_dask_and_arrow_keep_the_column_names():
    """The same names from a list of DataFrame chunks (the first chunk's order, the others
    matched to it by name), a pyarrow Table, a Dask DataFrame, and a checkpoint."""
    pd = pytest.importorskip("pandas", reason="DataFrames need pandas")
    pa = pytest.importorskip("pyarrow", reason="Tables need pyarrow")
    X, y, _ = problem(n=300, d=3, seed=6)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    names = ["a", "b", "c"]
    chunks = [(df[:100], y[:100]), (df[100:][["b", "c", "a"]], y[100:])]
    kept = []
    result = gdcore.fit_chunks(chunks, optimizer="gd", lr=0.1, epochs=5, tol=None,
                               callback=lambda p: kept.append(p.checkpoint()) and False)
    assert result.feature_names == names and kept[-1].feature_names == names
    table = pa.table({name: X[:, i] for i, name in enumerate(names)})
    assert gdcore.fit(table, y, epochs=2).feature_names == names
    dd = pytest.importorskip("dask.dataframe", reason="gdcore.dask needs the dask extra")
    import gdcore.dask as gdcore_dask
    frame = dd.from_pandas(df, npartitions=2)
    assert gdcore_dask.fit(frame, y, optimizer="gd", lr=0.1, epochs=2).feature_names == names


def test_a_dataframe_of_the_features_in_order_is_predicted_without_selecting_them(
        tmp_path, monkeypatch):
    """predict(df) of a DataFrame fit took df[feature_names] even when df was those columns
    in that order: before pandas 3 that copies the whole frame (1e6 x 100: 0.2 s became 2 s
    and 770 MB more), where an unnamed fit's predict read df's own values."""
    pd = pytest.importorskip("pandas", reason="DataFrames need pandas")
    X, y, _ = problem(n=300, d=3, seed=7)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    result = gdcore.fit(df, y, optimizer="gd", lr=0.1, epochs=5, tol=None)
    path = tmp_path / "m.json"
    gdcore.save_model(path, result)
    loaded = gdcore.load_model(path)
    selections = []
    getitem = pd.DataFrame.__getitem__

    def recorded(frame, key):
        selections.append(key)
        return getitem(frame, key)

    monkeypatch.setattr(pd.DataFrame, "__getitem__", recorded)
    truth = X @ result.coef + result.intercept
    np.testing.assert_allclose(result.predict(df), truth, rtol=1e-12)
    np.testing.assert_allclose(loaded.predict(df), truth, rtol=1e-12)
    assert selections == []
    np.testing.assert_allclose(result.predict(df[["c", "b", "a"]]), truth, rtol=1e-12)


def test_a_continued_fit_of_many_columns_says_which_column_differs():
    """The init message showed both lists of many columns by their ends only: two columns
    swapped in the middle gave two lists that read the same.  It names the first that
    differs."""
    pd = pytest.importorskip("pandas", reason="DataFrames need pandas")
    X, y, _ = problem(n=100, d=30, seed=8)
    names = [f"f{k}" for k in range(30)]
    first = gdcore.fit(pd.DataFrame(X, columns=names), y, epochs=2)
    names[14], names[15] = names[15], names[14]
    with pytest.raises(ValueError, match=r"\(column 14 is 'f15', was 'f14'\): pass X\["):
        gdcore.fit(pd.DataFrame(X, columns=names), y, epochs=2, init=first)


def test_fit_chunks_continuing_a_named_fit_checks_a_dataframe_after_array_chunks():
    """fit_chunks(init=result of a DataFrame fit) checked the first chunk's names only: array
    chunks first, then a DataFrame with the columns reordered, fitted them by position to
    the earlier coefficients, unremarked.  Refused as gdcore.fit refuses it; the same
    columns in order continue."""
    pd = pytest.importorskip("pandas", reason="DataFrames need pandas")
    X, y, _ = problem(n=200, d=3, seed=9)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    first = gdcore.fit(df, y, epochs=2)
    with pytest.raises(ValueError, match=r"chunk 1 .*init: the fit continued had X's columns"):
        gdcore.fit_chunks([(X[:100], y[:100]), (df[100:][["c", "a", "b"]], y[100:])],
                          epochs=2, init=first)
    more = gdcore.fit_chunks([(X[:100], y[:100]), (df[100:], y[100:])], epochs=2, init=first)
    assert more.feature_names == ["a", "b", "c"]


def test_a_fit_of_a_dataframe_with_a_repeated_column_name_keeps_no_names(tmp_path):
    """A DataFrame (or Table) with a name twice is fitted by position, as before names were
    kept; keeping them made the fitted frame's own predict and save_model refuse the
    repeated name."""
    pd = pytest.importorskip("pandas", reason="DataFrames need pandas")
    X, y, _ = problem(n=100, d=3, seed=10)
    df = pd.DataFrame(X, columns=["a", "a", "b"])
    result = gdcore.fit(df, y, epochs=2)
    assert result.feature_names is None
    np.testing.assert_allclose(result.predict(df), X @ result.coef + result.intercept,
                               rtol=1e-12)
    gdcore.save_model(tmp_path / "m.json", result)
    assert gdcore.load_model(tmp_path / "m.json").feature_names == ["0", "1", "2"]
