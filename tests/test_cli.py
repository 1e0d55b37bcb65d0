"""The gdcore command as a user runs it: a subprocess on files written here."""

import json
import subprocess
import sys

import numpy as np
import pytest

import gdcore

from conftest import lstsq_solution, problem, subprocess_env

pd = pytest.importorskip("pandas", reason="the CSV/Parquet readers need pandas (gdcore[io])")
pytest.importorskip("pyarrow", reason="the Parquet reader needs pyarrow (gdcore[io])")


def gdcore_cli(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "gdcore", *map(str, args)],
                          capture_output=True, text=True, env=subprocess_env())
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    X, y, _ = problem(n=400, d=3, noise=0.1)
    frame = pd.DataFrame(X * [1.0, 10.0, 0.1] + 5.0, columns=["a", "b", "c"])
    frame["y"] = y
    frame.to_csv(folder / "train.csv", index=False)
    frame.to_parquet(folder / "train.parquet")
    np.save(folder / "train.npy", frame.to_numpy())
    np.savez(folder / "train.npz", X=frame[["a", "b", "c"]].to_numpy(), y=y)
    return folder, frame


def summary(stdout):
    return {line[:15].strip(): line[15:].strip() for line in stdout.splitlines()}


@pytest.mark.parametrize("name, target", [("train.csv", "y"), ("train.parquet", "y"),
                                          ("train.npy", "3"), ("train.npz", "y")])
def test_fit_each_format(files, name, target):
    folder, frame = files
    out = gdcore_cli("fit", folder / name, "--target", target, "--optimizer", "gd",
                     "--lr", "0.5", "--epochs", "300", "--standardize").stdout
    info = summary(out)
    assert info["stop reason"] in ("tol", "epochs")
    coef, intercept = lstsq_solution(frame[["a", "b", "c"]].to_numpy(), frame["y"].to_numpy())
    best_mse = np.mean((frame[["a", "b", "c"]].to_numpy() @ coef + intercept - frame["y"]) ** 2)
    assert float(info["MSE"]) == pytest.approx(best_mse, rel=1e-3)
    assert float(info["R2"]) > 0.95


def test_fit_save_predict_plot(files, tmp_path):
    folder, frame = files
    model, plot, preds = tmp_path / "m.json", tmp_path / "loss.png", tmp_path / "p.csv"
    gdcore_cli("fit", folder / "train.csv", "--target", "y", "--features", "a", "b", "c",
               "--optimizer", "adam", "--lr", "0.05", "--epochs", "300", "--standardize",
               "--save", model, "--plot", plot, "--seed", "1", "--batch-size", "64")
    saved = json.loads(model.read_text())
    assert saved["feature_names"] == ["a", "b", "c"] and saved["target"] == "y"
    assert saved["standardize"] is not None and saved["gdcore_version"] == gdcore.__version__
    assert len(saved["loss_history"]) >= 1
    # the plot is a real PNG that decodes to an image
    data = plot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    import matplotlib.image
    assert matplotlib.image.imread(plot).ndim == 3
    gdcore_cli("predict", model, folder / "train.parquet", "--out", preds)
    predicted = pd.read_csv(preds)["y"].to_numpy()
    loaded = gdcore.load_model(model)
    X = frame[["a", "b", "c"]].to_numpy()
    expected = ((X - saved["standardize"]["mean"]) / saved["standardize"]["scale"]) @ \
        np.array(saved["coef"]) + saved["intercept"]
    np.testing.assert_allclose(predicted, expected, rtol=1e-12)
    np.testing.assert_allclose(loaded.predict(X), expected, rtol=1e-12)
    assert np.mean((predicted - frame["y"]) ** 2) < 0.02


def test_lr_search(files):
    folder, _ = files
    out = gdcore_cli("lr-search", folder / "train.csv", "--target", "y", "--grid",
                     "0.001,0.01,0.5,1e100", "--optimizer", "gd", "--standardize").stdout
    lines = out.splitlines()
    assert lines[-1] == "best lr: 0.5"
    ranked = [line.split() for line in lines[1:-1]]
    assert [float(r[1]) for r in ranked] == [0.5, 0.01, 0.001, 1e100]
    assert ranked[-1][-1] == "diverged"
    out = gdcore_cli("lr-search", folder / "train.npy", "--target", "3", "--random", "4",
                     "--low", "0.01", "--high", "0.5", "--seed", "0").stdout
    assert out.splitlines()[-1].startswith("best lr: ")
    assert len(out.splitlines()) == 6


def test_demo_plot(tmp_path):
    gdcore_cli("demo", "--n", "2000", "--d", "4", "--plot", tmp_path / "demo.png")
    assert (tmp_path / "demo.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("make_file, args, message", [
    (None, ["fit", "{missing}", "--target", "y"], "no such file"),
    ("garbage.parquet", ["fit", "{file}", "--target", "y"], "not a readable Parquet"),
    ("text.csv", ["fit", "{file}", "--target", "y"], "column 'name' is not numeric"),
    ("nan.csv", ["fit", "{file}", "--target", "y"], "column 'a' has a missing"),
    ("ok.csv", ["fit", "{file}", "--target", "z"], "no column 'z'"),
    ("ok.csv", ["fit", "{file}", "--target", "y", "--features", "a", "q"], "no column 'q'"),
    ("ok.csv", ["fit", "{file}", "--target", "y", "--lr", "-1"], "lr must be > 0"),
    ("ok.csv", ["fit", "{file}", "--target", "y", "--optimizer", "bogus"], "unknown name"),
    ("ok.csv", ["predict", "{file}", "{file}"], "not a gdcore model"),
    ("ok.csv", ["lr-search", "{file}", "--target", "y", "--grid", "a,b"], "--grid"),
])
def test_errors_are_one_line(tmp_path, make_file, args, message):
    contents = {
        "garbage.parquet": "this is not parquet",
        "text.csv": "a,name,y\n1,x,2\n2,z,3\n",
        "nan.csv": "a,b,y\n1,2,3\n,4,5\n",
        "ok.csv": "a,b,y\n1,2,3\n2,4,5\n3,1,1\n",
    }
    path = tmp_path / (make_file or "absent.csv")
    if make_file:
        path.write_text(contents[make_file])
    argv = [a.format(file=path, missing=tmp_path / "absent.csv") for a in args]
    proc = gdcore_cli(*argv, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    if make_file:
        assert path.name in lines[0] or message.startswith(("lr", "unknown", "--grid"))


def test_progress_bar_only_when_asked(files):
    folder, _ = files
    quiet = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--epochs", "20")
    assert quiet.stderr == ""  # a pipe is not a terminal: no bar
    loud = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--epochs", "20",
                      "--progress")
    assert "epoch" in loud.stderr and "loss=" in loud.stderr


def test_fit_a_folder_of_files(files, tmp_path):
    """A folder of Parquet and CSV files is fitted file by file, with full-batch results."""
    _, frame = files
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.iloc[:150].to_parquet(folder / "part-0.parquet")
    frame.iloc[150:300].to_csv(folder / "part-1.csv", index=False)
    frame.iloc[300:].to_parquet(folder / "part-2.parquet")
    (folder / "README.txt").write_text("not data")
    model = tmp_path / "folder.json"
    out = gdcore_cli("fit", folder, "--target", "y", "--optimizer", "adam", "--lr", "0.05",
                     "--epochs", "40", "--standardize", "--save", model).stdout
    assert summary(out)["data"].startswith(f"{folder}: 400 rows x 3 features")
    saved = json.loads(model.read_text())
    X = frame[["a", "b", "c"]].to_numpy()
    mean, scale = X.mean(axis=0), X.std(axis=0)
    np.testing.assert_allclose(saved["standardize"]["mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(saved["standardize"]["scale"], scale, rtol=1e-9)
    expected = gdcore.fit((X - mean) / scale, frame["y"].to_numpy(), optimizer="adam",
                          lr=0.05, epochs=40, precompute=False)
    np.testing.assert_allclose(saved["coef"], expected.coef, rtol=1e-8)
    assert saved["loss_history"] == pytest.approx(list(expected.loss_history), rel=1e-8)
    proc = gdcore_cli("fit", folder, "--target", "y", "--batch-size", "10", check=False)
    assert proc.returncode == 2 and "--batch-size" in proc.stderr


def test_fit_stopping_and_intercept_options(files, tmp_path):
    """--tol none / --n-iter-no-change / --gtol / --no-intercept reach gdcore.fit: the saved
    model equals gdcore.fit with the same options, and a growing loss is warned in one line."""
    folder, frame = files
    X, y = frame[["a", "b", "c"]].to_numpy(), frame["y"].to_numpy()
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)
    cases = [
        (["--tol", "none"], dict(tol=None)),
        (["--tol", "0.01", "--n-iter-no-change", "2"], dict(tol=0.01, n_iter_no_change=2)),
        (["--tol", "none", "--gtol", "1e-6", "--no-intercept"],
         dict(tol=None, gtol=1e-6, fit_intercept=False)),
    ]
    for extra, options in cases:
        model = tmp_path / "m.json"
        out = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--optimizer", "gd",
                         "--lr", "0.5", "--epochs", "400", "--standardize", "--save", model,
                         *extra).stdout
        expected = gdcore.fit(Xs, y, optimizer="gd", lr=0.5, epochs=400, **options)
        saved = json.loads(model.read_text())
        info = summary(out)
        assert info["stop reason"] == expected.stop_reason, extra
        assert info["converged"] == ("yes" if expected.converged else "no")
        assert len(saved["loss_history"]) == expected.n_epochs
        np.testing.assert_allclose(saved["coef"], expected.coef, rtol=1e-9)
        assert saved["intercept"] == pytest.approx(expected.intercept, abs=1e-12)
    assert expected.stop_reason == "gtol" and saved["intercept"] == 0.0
    grow = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--optimizer", "gd",
                      "--lr", "5", "--standardize")
    assert summary(grow.stdout)["converged"] == "no"
    lines = grow.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gdcore fit: warning: the tol rule")
