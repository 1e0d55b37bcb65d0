"""The gdcore command as a user runs it: a subprocess on files written here."""

import io
import json
import os
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
    X = frame[["a", "b", "c"]].to_numpy()
    expected = gdcore.fit((X - X.mean(axis=0)) / X.std(axis=0), frame["y"].to_numpy(),
                          optimizer="gd", lr=0.5, epochs=300)
    assert info["stop reason"] == expected.stop_reason
    assert info["epochs"].split()[0] == str(expected.n_epochs)
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
    X = frame[["a", "b", "c"]].to_numpy()
    expected = gdcore.fit((X - X.mean(axis=0)) / X.std(axis=0), frame["y"].to_numpy(),
                          optimizer="adam", lr=0.05, epochs=300, seed=1, batch_size=64)
    np.testing.assert_allclose(saved["loss_history"], expected.loss_history, rtol=1e-9)
    np.testing.assert_allclose(saved["coef"], expected.coef, rtol=1e-9)
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
    # float() reads 1_000, pandas does not; an empty cell first is a missing value, not it
    ("underscore.csv", ["fit", "{file}", "--target", "y"],
     "column 'a' is not numeric: data row 3 holds '1_000'"),
    ("nan.csv", ["fit", "{file}", "--target", "y"], "column 'a' has a missing"),
    ("ok.csv", ["fit", "{file}", "--target", "z"], "no column 'z'"),
    ("ok.csv", ["fit", "{file}", "--target", "y", "--features", "a", "q"], "no column 'q'"),
    # names quoted: a header's spaces show
    ("spaced.csv", ["fit", "{file}", "--target", "a"],
     "no column 'a' (columns: ' a ', ' b ', 'y')"),
    ("ok.csv", ["fit", "{file}", "--target", "y", "--lr", "-1"], "lr must be > 0"),
    # "-" is stdout only for predict --out (it wrote a file named "-")
    ("ok.csv", ["fit", "{file}", "--target", "y", "--save", "-"],
     "--save -: this output is written to a file, not to stdout"),
    ("ok.csv", ["fit", "{file}", "--target", "y", "--optimizer", "bogus"], "unknown name"),
    ("ok.csv", ["predict", "{file}", "{file}"], "not a gdcore model"),
    ("ok.csv", ["lr-search", "{file}", "--target", "y", "--grid", "a,b"], "--grid"),
    ("ok.csv", ["lr-search", "{file}", "--target", "y", "--random", "3", "--seed", "-1"],
     "--seed must be an integer >= 0, got -1"),
    ("ok.csv", ["fit", "{file}", "--target", "y", "--features", "a", "y"],
     "the target column 'y' is also one of the features"),
    ("ok.csv", ["fit", "{file}", "--target", "y", "--plot", "{file}.xyz"],
     "the image format comes from the extension"),
    ("ok.csv", ["fit", "{file}", "--target", "y", "--plot", "{missing}/loss.png"],
     "no such folder"),
    ("fake.npy", ["fit", "{file}", "--target", "0"], "not a .npy file"),
    ("empty.npy", ["fit", "{file}", "--target", "0", "--batch-size", "2"], "has no rows"),
    ("complex.npz", ["fit", "{file}", "--target", "y"], "array 'y' is not real numbers"),
    # pandas' tokenizer error ends in a newline: joined into the one line
    ("ragged.csv", ["fit", "{file}", "--target", "y"],
     "not a readable CSV file (Error tokenizing data. C error: Expected 3 fields in line 3, "
     "saw 4)"),
    ("strings.npz", ["fit", "{file}", "--target", "y"], "array 'y' is not real numbers"),
    # X saved alone: the target names the array that is missing, not a column
    ("x-only.npz", ["fit", "{file}", "--target", "y"], "no array 'y' (arrays: 'X')"),
    # np.savez() with no arrays: the message listed the arrays it has, none
    ("no-arrays.npz", ["fit", "{file}", "--target", "y"],
     "no-arrays.npz: the file holds no arrays (expected arrays 'X' and 'y', or one 2-D array)"),
    # a file of no bytes (pandas said "No columns to parse from file")
    ("empty.csv", ["fit", "{file}", "--target", "y"], "empty.csv: empty (not even a header)"),
    ("empty.parquet", ["predict", "{file}", "{file}"], "not a gdcore model"),
    ("empty.parquet", ["fit", "{file}", "--target", "y"], "empty (not even a header)"),
])
def test_errors_are_one_line(tmp_path, make_file, args, message):
    arrays = {
        "empty.npy": lambda path: np.save(path, np.zeros((0, 3))),
        "complex.npz": lambda path: np.savez(path, X=np.ones((3, 2)), y=np.ones(3) * 1j),
        "strings.npz": lambda path: np.savez(path, X=np.ones((3, 2)), y=np.array(["a"] * 3)),
        "x-only.npz": lambda path: np.savez(path, X=np.ones((3, 2))),
        "no-arrays.npz": lambda path: np.savez(path),
    }
    contents = {
        "fake.npy": "not an array",
        "garbage.parquet": "this is not parquet",
        "text.csv": "a,name,y\n1,x,2\n2,z,3\n",
        "underscore.csv": "a,y\n,1\n1.5,2\n1_000,3\n",
        "nan.csv": "a,b,y\n1,2,3\n,4,5\n",
        "ok.csv": "a,b,y\n1,2,3\n2,4,5\n3,1,1\n",
        "spaced.csv": " a , b ,y\n1,2,3\n2,4,5\n3,1,1\n",
        "ragged.csv": "a,b,y\n1,2,3\n2,3,4,5\n3,4,5\n",
        "empty.csv": "",
        "empty.parquet": "",
    }
    path = tmp_path / (make_file or "absent.csv")
    if make_file in arrays:
        arrays[make_file](path)
    elif make_file:
        path.write_text(contents[make_file])
    argv = [a.format(file=path, missing=tmp_path / "absent.csv") for a in args]
    proc = gdcore_cli(*argv, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    if make_file:
        # the file is named, unless the error is an option's
        assert (path.name in lines[0]
                or message.startswith(("lr", "unknown", "--grid", "--seed", "--save"))
                or "--plot" in lines[0])
    assert not (tmp_path / "loss.png").exists()


def test_a_word_deep_in_a_large_csv_is_named_by_row(tmp_path):
    """A non-number at data row 290,000 of a CSV: one line naming the column, the row and the
    value (pandas' multi-line "mixed types" warning came first, and no row was named)."""
    n = 300_000
    path = tmp_path / "big.csv"
    a = np.round(np.sin(np.arange(n)), 3).astype(str).astype(object)
    a[289_999] = "oops"
    with open(path, "w") as f:
        f.write("a,y\n")
        f.write("\n".join(f"{value},{k % 7}" for k, value in enumerate(a)) + "\n")
    proc = gdcore_cli("fit", path, "--target", "y", check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"gdcore fit: error: {path}: column 'a' is not numeric: data row 290000 "
                     "holds 'oops'"], proc.stderr


@pytest.mark.parametrize("command, message", [
    (["demo", "--threads", "0"], "--threads must be -1 (all cores) or 1 to 1024, got 0"),
    (["demo", "--noise", "-1"], "--noise must be a finite number >= 0"),
    (["demo", "--noise", "nan"], "--noise must be a finite number >= 0"),
    # y past float32's (float64's) range: a traceback after the data were made
    (["demo", "--dtype", "float32", "--noise", "1e39"],
     "--noise 1e+39 is too large for --dtype float32"),
    (["demo", "--noise", "1e308"], "--noise 1e+308 is too large for --dtype float64"),
    (["demo", "--seed", "-1"], "--seed must be an integer >= 0, got -1"),
    (["demo", "--n", "0"], "--n and --d must be >= 1"),
    (["demo", "--optimizers", "foo"], "--optimizers: unknown 'foo'; choose from gd, sgd"),
    (["demo", "--plot", "demo.xyz"], "--plot demo.xyz: the image format"),
    (["bench", "--n", "0"], "--n must be >= 1000"),
    (["bench", "--threads", "-3"], "--threads must be"),
])
def test_demo_and_bench_refuse_bad_options_before_any_work(command, message):
    proc = gdcore_cli(*command, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"gdcore {command[0]}: error: {message}" + lines[0].split(message)[-1]]
    assert proc.stdout == ""        # refused before the data were made


def test_demo_optimizers_list_may_have_spaces_and_any_case():
    out = gdcore_cli("demo", "--n", "2000", "--d", "3", "--optimizers", "GD, Adam").stdout
    rows = [line.split()[0] for line in out.splitlines()[4:] if line[:1].isalpha()]
    assert rows[:2] == ["gd", "adam"]


def test_lr_search_reports_each_rate_as_it_finishes(files):
    """--progress: a line a rate on stderr while the search runs; stdout keeps the table."""
    folder, _ = files
    run = gdcore_cli("lr-search", folder / "train.csv", "--target", "y", "--grid",
                     "0.01,1e100", "--optimizer", "gd", "--standardize", "--progress")
    lines = run.stderr.strip().splitlines()
    assert lines[0].startswith("lr-search: 1/2 lr 0.01: ok, final loss ")
    assert lines[1] == "lr-search: 2/2 lr 1e+100: diverged, final loss inf"
    assert run.stdout.splitlines()[-1] == "best lr: 0.01"
    quiet = gdcore_cli("lr-search", folder / "train.csv", "--target", "y", "--grid", "0.01",
                       "--optimizer", "gd", "--standardize")
    assert quiet.stderr == ""       # not a terminal, no --progress: nothing on stderr


def test_a_fit_whose_loss_rose_fails_and_saves_nothing(files, tmp_path):
    """Unscaled columns and the default lr: the loss grows ~1e40-fold without overflowing."""
    folder, _ = files
    unscaled = tmp_path / "unscaled.csv"
    frame = pd.read_csv(folder / "train.csv")
    frame["b"] *= 1000.0
    frame.to_csv(unscaled, index=False)
    model = tmp_path / "m.json"
    proc = gdcore_cli("fit", unscaled, "--target", "y", "--epochs", "20", "--save", model,
                      check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("gdcore fit: error: the loss rose")
    assert "not saved" in proc.stderr and "--standardize" in proc.stderr
    assert not model.exists()


def test_lr_search_has_no_lr_option(files):
    folder, _ = files
    proc = gdcore_cli("lr-search", folder / "train.csv", "--target", "y", "--grid", "0.1",
                      "--lr", "5", check=False)
    assert proc.returncode == 2 and "unrecognized arguments: --lr 5" in proc.stderr
    help_text = gdcore_cli("lr-search", "--help").stdout
    assert "--lr" not in help_text and "saved with the model" not in help_text


def test_progress_bar_only_when_asked(files):
    folder, _ = files
    quiet = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--epochs", "20")
    assert quiet.stderr == ""  # a pipe is not a terminal: no bar
    loud = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--epochs", "20",
                      "--progress")
    assert "epoch" in loud.stderr and "loss=" in loud.stderr


def test_progress_bar_says_why_the_fit_stopped_early(files):
    """The tol rule ends the fit at epoch N < --epochs: the bar's last frame, N/300, says so
    rather than look like a run that hung or crashed.  N is the NumPy reference's."""
    folder, frame = files
    X, y = frame[["a", "b", "c"]].to_numpy(), frame["y"].to_numpy()
    truth = gdcore.fit((X - X.mean(axis=0)) / X.std(axis=0), y, optimizer="gd", lr=0.5,
                       epochs=300, backend="numpy")
    assert truth.stop_reason == "tol" and truth.n_epochs < 300
    proc = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--optimizer", "gd",
                      "--lr", "0.5", "--epochs", "300", "--standardize", "--progress")
    last = proc.stderr.strip().replace("\r", "\n").splitlines()[-1]     # the bar's last frame
    assert last.startswith(f"gdcore fit (stopped: tol at epoch {truth.n_epochs}):"), last
    assert f" {truth.n_epochs}/300 " in last
    assert summary(proc.stdout)["epochs"].split()[0] == str(truth.n_epochs)


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
                     "--epochs", "40", "--tol", "none", "--standardize", "--save", model).stdout
    assert summary(out)["data"].startswith(f"{folder}: 400 rows x 3 features")
    saved = json.loads(model.read_text())
    X = frame[["a", "b", "c"]].to_numpy()
    mean, scale = X.mean(axis=0), X.std(axis=0)
    np.testing.assert_allclose(saved["standardize"]["mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(saved["standardize"]["scale"], scale, rtol=1e-9)
    expected = gdcore.fit((X - mean) / scale, frame["y"].to_numpy(), optimizer="adam",
                          lr=0.05, epochs=40, tol=None, precompute=False)
    assert len(expected.loss_history) == 40
    np.testing.assert_allclose(saved["coef"], expected.coef, rtol=1e-8)
    assert saved["loss_history"] == pytest.approx(list(expected.loss_history), rel=1e-8)
    proc = gdcore_cli("fit", folder, "--target", "y", "--batch-size", "10", check=False)
    assert proc.returncode == 2 and "--batch-size" in proc.stderr
    # predict takes the folder too: its files in name order, one prediction a row
    out = gdcore_cli("predict", model, folder).stdout.split()
    expected = gdcore.load_model(model).predict(frame[["a", "b", "c"]])
    assert out[0] == "y"
    np.testing.assert_allclose([float(v) for v in out[1:]], expected, rtol=1e-15)


def test_a_folder_skips_empty_parts_and_writers_bookkeeping(files, tmp_path):
    """A folder as Spark or Dask writes it: parts without rows (a zero-row Parquet, a CSV of
    a header alone, an empty file) add nothing; _SUCCESS and names beginning with '.' or '_'
    are not data.  A folder of empty parts only is refused, saying so."""
    _, frame = files
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.iloc[:150].to_parquet(folder / "part-0.parquet")
    frame.iloc[:0].to_parquet(folder / "part-1.parquet")
    frame.iloc[:0].to_csv(folder / "part-2.csv", index=False)
    (folder / "part-2b.csv").write_text("")
    frame.iloc[150:].to_parquet(folder / "part-3.parquet")
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-0.parquet.crc").write_text("not data")
    (folder / "_common_metadata.parquet").write_text("not data")
    (folder / ".part-0.csv").write_text("not data")
    model = tmp_path / "m.json"
    assert_folder_fits_as_its_rows(folder, frame, model, epochs=20)
    out = gdcore_cli("predict", model, folder).stdout.split()
    assert len(out) == 1 + 400
    empty = tmp_path / "empty"
    empty.mkdir()
    frame.iloc[:0].to_parquet(empty / "part-0.parquet")
    frame.iloc[:0].to_csv(empty / "part-1.csv", index=False)
    for command in (["fit", empty, "--target", "y"], ["predict", model, empty]):
        run = gdcore_cli(*command, check=False)
        assert run.returncode == 2 and run.stderr.strip().endswith(
            f"{empty}: every .parquet or .csv file in this folder has no rows"), run.stderr


def assert_folder_fits_as_its_rows(folder, frame, model, epochs):
    """gdcore fit on ``folder`` (saving ``model``) reads frame's 400 rows and fits as
    gdcore.fit on them in memory."""
    out = gdcore_cli("fit", folder, "--target", "y", "--optimizer", "gd", "--lr", "0.002",
                     "--epochs", str(epochs), "--tol", "none", "--save", model).stdout
    assert summary(out)["data"].startswith(f"{folder}: 400 rows x 3 features")
    X, y = frame[["a", "b", "c"]].to_numpy(), frame["y"].to_numpy()
    expected = gdcore.fit(X, y, optimizer="gd", lr=0.002, epochs=epochs, tol=None)
    np.testing.assert_allclose(json.loads(model.read_text())["coef"], expected.coef,
                               rtol=1e-8)


def test_a_folder_reads_its_compressed_csv_files(files, tmp_path):
    """A folder's part-*.csv.gz (Spark's CSV with compression) and the like are data, read as
    pandas reads a file named so: left out, their rows were missing from the fit unsaid."""
    _, frame = files
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.iloc[:100].to_csv(folder / "part-0.csv", index=False)
    frame.iloc[100:250].to_csv(folder / "part-1.csv.gz", index=False)
    frame.iloc[250:].to_csv(folder / "part-2.CSV.bz2", index=False)
    model = tmp_path / "m.json"
    assert_folder_fits_as_its_rows(folder, frame, model, epochs=5)
    assert len(gdcore_cli("predict", model, folder).stdout.split()) == 1 + 400


def test_a_folder_skips_its_compressed_empty_parts(files, tmp_path):
    """An empty part compressed (20 bytes of gzip holding nothing) is skipped, as an empty .csv
    is: read as a CSV file, it refused the whole folder ("No columns to parse from file")."""
    import bz2
    import gzip
    import lzma
    _, frame = files
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.to_csv(folder / "part-0.csv.gz", index=False)
    (folder / "part-1.csv.gz").write_bytes(gzip.compress(b""))
    (folder / "part-2.csv.bz2").write_bytes(bz2.compress(b""))
    (folder / "part-3.csv.xz").write_bytes(lzma.compress(b""))
    run = gdcore_cli("fit", folder, "--target", "y", "--epochs", "2", check=False)
    assert run.returncode == 0, run.stderr
    assert summary(run.stdout)["data"].startswith(f"{folder}: 400 rows x 3 features")
    # a small file that is not what its name says is still refused, naming it
    (folder / "part-4.csv.gz").write_bytes(b"not gzip")
    run = gdcore_cli("fit", folder, "--target", "y", "--epochs", "2", check=False)
    assert run.returncode == 2 and f"{folder / 'part-4.csv.gz'}: not a readable" in run.stderr


def test_a_folder_refuses_a_csv_file_beside_itself_compressed(files, tmp_path):
    """a.csv beside a.csv.gz (a copy kept): both were read since compressed files are, and
    every row was fitted twice, where a.csv's rows alone were fitted before."""
    _, frame = files
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.to_csv(folder / "a.csv", index=False)
    frame.to_csv(folder / "a.csv.GZ", index=False)
    frame.to_csv(folder / "b.csv.xz", index=False)
    run = gdcore_cli("fit", folder, "--target", "y", "--epochs", "2", check=False)
    assert run.returncode == 2 and run.stderr.splitlines() == [
        f"gdcore fit: error: {folder / 'a.csv'} and {folder / 'a.csv.GZ'} are one CSV file's "
        "name, compressed and not (or compressed twice): likely the same rows, which would be "
        "fitted twice; move one out of the folder"], run.stderr
    # an empty one of the two (a placeholder, an empty part) adds no row twice: taken, as it
    # was before the check (it refused the folder)
    (folder / "a.csv").write_bytes(b"")
    run = gdcore_cli("fit", folder, "--target", "y", "--epochs", "2", check=False)
    assert run.returncode == 0, run.stderr
    assert summary(run.stdout)["data"].startswith(f"{folder}: 800 rows x 3 features")
    frame.to_csv(folder / "a.csv", index=False)
    (folder / "a.csv.GZ").unlink()
    frame.to_csv(folder / "a.CSV", index=False)     # two plain files: two tables
    run = gdcore_cli("fit", folder, "--target", "y", "--epochs", "2")
    assert summary(run.stdout)["data"].startswith(f"{folder}: 1,200 rows x 3 features")


def test_a_folder_file_gone_is_one_line_naming_it(files, tmp_path):
    """A folder's symbolic link to nothing (or a file removed since the folder was listed)
    is one error line naming it, not a traceback."""
    _, frame = files
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.to_csv(folder / "part-0.csv", index=False)
    (folder / "part-1.csv").symlink_to(tmp_path / "gone.csv")
    for command in (["fit", folder, "--target", "y"], ["lr-search", folder, "--target", "y",
                                                       "--grid", "0.01"]):
        run = gdcore_cli(*command, check=False)
        assert run.returncode == 2 and run.stderr.strip().endswith(
            f"{folder / 'part-1.csv'}: cannot read the file (No such file or directory)"), \
            run.stderr


def test_outputs_are_never_a_file_of_the_data_folder(files, tmp_path):
    """predict --out (or fit --save through a symbolic link) naming one of the DATA folder's
    files is refused before anything is written: the folder's files are the data."""
    _, frame = files
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.iloc[:200].to_csv(folder / "part-0.csv", index=False)
    frame.iloc[200:].to_csv(folder / "part-1.csv", index=False)
    before = (folder / "part-1.csv").read_bytes()
    model = tmp_path / "m.json"
    gdcore_cli("fit", folder, "--target", "y", "--epochs", "3", "--save", model)
    run = gdcore_cli("predict", model, folder, "--out", folder / "part-1.csv", check=False)
    assert run.returncode == 2 and "is the DATA folder's part-1.csv file" in run.stderr
    link = tmp_path / "link.json"
    link.symlink_to(folder / "part-1.csv")
    run = gdcore_cli("fit", folder, "--target", "y", "--epochs", "3", "--save", link,
                     check=False)
    assert run.returncode == 2 and "is the DATA folder's part-1.csv file" in run.stderr
    assert (folder / "part-1.csv").read_bytes() == before
    # a new file there would be read as data by the next fit or predict on the folder (it
    # was written, and the next fit failed: no column 'y'); a name the folder skips is taken
    out = folder / "preds.csv"
    run = gdcore_cli("predict", model, folder, "--out", out, check=False)
    assert run.returncode == 2 and run.stderr.splitlines() == [
        f"gdcore predict: error: --out {out} would add a file to the DATA folder {folder}, "
        "which the next fit or predict on it would read as data; write it elsewhere, or name "
        "it _preds.csv (names beginning with _ are not read)"], run.stderr
    assert not out.exists()
    gdcore_cli("predict", model, folder, "--out", folder / "_preds.csv")
    assert len((folder / "_preds.csv").read_text().splitlines()) == len(frame) + 1
    gdcore_cli("fit", folder, "--target", "y", "--epochs", "3")
    # nor through a symbolic link outside it to a new file of it, which is what is written
    # (a link to a file not there yet: the file was made in the folder)
    link = tmp_path / "link.csv"
    link.symlink_to(folder / "new.csv")
    run = gdcore_cli("predict", model, folder, "--out", link, check=False)
    assert run.returncode == 2 and run.stderr.splitlines() == [
        f"gdcore predict: error: --out {link} is a link to {folder / 'new.csv'}, which would "
        f"add a file to the DATA folder {folder}, read as data by the next fit or predict on "
        "it; write it elsewhere"], run.stderr
    assert not (folder / "new.csv").exists()


def test_a_folder_is_read_once_for_its_gram_matrix(files, tmp_path, monkeypatch, capsys):
    """Every epoch would parse every file again: from two epochs on, the first pass forms
    the Gram matrix (then one more pass for the summary's R²), with the streamed results."""
    import gdcore._io
    from gdcore.cli import main
    _, frame = files
    folder = tmp_path / "parts"
    folder.mkdir()
    for k in range(4):
        frame.iloc[100 * k:100 * (k + 1)].to_csv(folder / f"part-{k}.csv", index=False)
    reads = []
    read_table = gdcore._io.read_table
    monkeypatch.setattr(gdcore._io, "read_table",
                        lambda *args, **kwargs: reads.append(1) or read_table(*args, **kwargs))
    assert main(["fit", str(folder), "--target", "y", "--optimizer", "gd", "--lr", "0.002",
                 "--epochs", "50", "--tol", "none"]) == 0
    assert len(reads) == 1 + 4 + 4      # the columns, the Gram matrix, the summary
    X, y = frame[["a", "b", "c"]].to_numpy(), frame["y"].to_numpy()
    expected = gdcore.fit(X, y, optimizer="gd", lr=0.002, epochs=50, tol=None, precompute=False)
    assert float(summary(capsys.readouterr().out)["final loss"]) == \
        pytest.approx(expected.final_loss, rel=1e-5)


def test_fit_stopping_and_intercept_options(files, tmp_path):
    """--tol none / --n-iter-no-change / --gtol / --no-intercept reach gdcore.fit: the saved
    model equals gdcore.fit with the same options, and a growing loss is warned in one line."""
    folder, frame = files
    X, y = frame[["a", "b", "c"]].to_numpy(), frame["y"].to_numpy()
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)
    # without an intercept, --standardize divides by the root mean square and does not centre
    # (a centred fit would have an intercept in the data's own units)
    Xr = X / np.sqrt(np.mean(X ** 2, axis=0))
    cases = [
        (["--tol", "none"], dict(tol=None)),
        (["--tol", "0.01", "--n-iter-no-change", "2"], dict(tol=0.01, n_iter_no_change=2)),
        (["--tol", "none", "--gtol", "1e-4", "--no-intercept"],
         dict(tol=None, gtol=1e-4, fit_intercept=False)),
    ]
    for extra, options in cases:
        Xs = Xr if "--no-intercept" in extra else Xs
        model = tmp_path / "m.json"
        out = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--optimizer", "gd",
                         "--lr", "0.5", "--epochs", "400", "--standardize", "--save", model,
                         *extra).stdout
        expected = gdcore.fit(Xs, y, optimizer="gd", lr=0.5, epochs=400, **options)
        saved = json.loads(model.read_text())
        info = summary(out)
        assert info["stop reason"] == expected.stop_reason, extra
        unjudged = (options.get("tol", 1e-4) is None and options.get("gtol") is None
                    and expected.stop_reason == "epochs")
        assert info["converged"].split()[0] == ("yes" if expected.converged
                                                else "n/a" if unjudged else "no")
        assert len(saved["loss_history"]) == expected.n_epochs
        np.testing.assert_allclose(saved["coef"], expected.coef, rtol=1e-9)
        assert saved["intercept"] == pytest.approx(expected.intercept, abs=1e-12)
    assert expected.stop_reason == "gtol" and saved["intercept"] == 0.0
    # a loss that swings (momentum) ends above twice its best, but below where it began
    swing = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--optimizer", "momentum",
                       "--lr", "0.5", "--standardize")
    assert summary(swing.stdout)["converged"] == "no"
    lines = swing.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gdcore fit: warning: the tol rule")
    # (--standardize was given: not suggested again)
    assert "more than twice its best" in lines[0]
    assert lines[0].endswith("try a smaller --lr (e.g. 0.05) or a decaying schedule")
    # one that grows is a failed fit
    grow = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--optimizer", "gd",
                      "--lr", "5", "--standardize", check=False)
    assert grow.returncode == 2 and summary(grow.stdout)["converged"] == "no"
    lines = grow.stderr.strip().splitlines()
    # one cause, one line: the error (the tol rule's warning about the same rise is left out)
    assert len(lines) == 1 and lines[0].startswith("gdcore fit: error: the loss rose from")
    # epochs that run out say what to try; with no rule, convergence is not judged
    short = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--optimizer", "gd",
                       "--lr", "0.01", "--epochs", "3", "--standardize")
    assert summary(short.stdout)["converged"] == (
        "no (the 3 epochs ran out while the loss was still improving; try more --epochs or a "
        "larger --lr, e.g. from gdcore lr-search)")
    rising = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--optimizer", "gd",
                        "--lr", "2.5", "--epochs", "5", "--standardize", check=False)
    assert summary(rising.stdout)["converged"] == "no"     # not "still improving"
    untimed = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--optimizer", "gd",
                         "--lr", "0.01", "--epochs", "3", "--tol", "none")
    assert summary(untimed.stdout)["converged"].startswith("n/a (--tol none")


def npy_problem(path, n, d, seed=0):
    """A .npy of n rows: d features with assorted offsets and scales, then the target."""
    X, y, _ = problem(n=n, d=d, noise=0.1, seed=seed)
    X = X * np.linspace(0.5, 3.0, d) + np.arange(d)
    np.save(path, np.column_stack([X, y]))
    return X, y


def run_in_process(capsys, *argv):
    from gdcore.cli import main
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("d, epochs", [(9, 40), (40, 2)])  # Gram mode, then streamed epochs
def test_npy_is_read_in_blocks_not_copied(tmp_path, monkeypatch, capsys, d, epochs):
    """fit, lr-search and predict on a .npy hold a block of rows at a time, not the file, and
    the full-batch fit equals gdcore.fit on the array in memory."""
    import tracemalloc

    import gdcore._io
    import gdcore._precompute
    path, model, preds = tmp_path / "big.npy", tmp_path / "m.json", tmp_path / "p.csv"
    X, y = npy_problem(path, 12_000, d)
    file_bytes = path.stat().st_size
    monkeypatch.setattr(gdcore._io, "BLOCK_BYTES", 16 * 1024)
    # the Gram matrix's scratch block (8 MB) too, so that a small file is many blocks
    monkeypatch.setattr(gdcore._precompute, "_BLOCK_BYTES", 16 * 1024)
    commands = [
        ["fit", path, "--target", d, "--optimizer", "gd", "--lr", "0.5", "--epochs", epochs,
         "--standardize", "--tol", "none", "--save", model],
        ["lr-search", path, "--target", d, "--optimizer", "gd", "--grid", "0.1,0.5",
         "--standardize", "--epochs", epochs],
        ["predict", model, path, "--out", preds],
    ]
    for argv in commands:
        run_in_process(capsys, *argv)  # first run: imports and caches out of the measure
        tracemalloc.start()
        try:
            status, out, err = run_in_process(capsys, *argv)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert status == 0, err
        assert peak < file_bytes / 4, (argv[0], peak, file_bytes)
    mean, scale = X.mean(axis=0), X.std(axis=0)
    expected = gdcore.fit((X - mean) / scale, y, optimizer="gd", lr=0.5, epochs=epochs,
                          tol=None, precompute=False)
    saved = json.loads(model.read_text())
    np.testing.assert_allclose(saved["standardize"]["mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(saved["standardize"]["scale"], scale, rtol=1e-12)
    np.testing.assert_allclose(saved["coef"], expected.coef, rtol=1e-9)
    assert saved["intercept"] == pytest.approx(expected.intercept, rel=1e-9)
    assert saved["loss_history"] == pytest.approx(list(expected.loss_history), rel=1e-9)
    predicted = pd.read_csv(preds)[str(d)].to_numpy()
    np.testing.assert_allclose(predicted, expected.predict((X - mean) / scale), rtol=1e-9)


def spoil_npy(path, row, column):
    """Write NaN into a .npy's cell in place, as another program rewriting the file would."""
    writer = np.load(path, mmap_mode="r+")
    writer[row, column] = np.nan
    writer.flush()


@pytest.mark.parametrize("d", [20, 200])    # Gram mode (the fit reads once), then streamed
def test_npy_cell_gone_bad_after_the_fit_is_named_not_summed(tmp_path, monkeypatch, capsys, d):
    """The summary's pass (MSE, R2) reads a .npy after the fit has: a value gone bad since
    is named as a first pass names it, not summed into an MSE of nan beside a saved model."""
    import gdcore.cli.fit
    path, model = tmp_path / "d.npy", tmp_path / "m.json"
    npy_problem(path, 3000, d)
    fit_data = gdcore.cli.fit.fit_data

    def fit_then_spoil(*args, **kwargs):
        result = fit_data(*args, **kwargs)
        spoil_npy(path, 2500, 7)
        return result
    monkeypatch.setattr(gdcore.cli.fit, "fit_data", fit_then_spoil)
    argv = ("fit", path, "--target", str(d), "--optimizer", "gd", "--lr", "0.5", "--epochs", "5",
            "--standardize", "--save", model)
    status, out, err = run_in_process(capsys, *argv)
    monkeypatch.setattr(gdcore.cli.fit, "fit_data", fit_data)
    first_status, _, first_err = run_in_process(capsys, *argv)     # the file as it is now
    assert first_status != 0
    assert "column '7' has a non-finite value in data row 2501 (nan)" in first_err
    assert (status, err) == (first_status, first_err), out
    assert not model.exists()


@pytest.mark.parametrize("command, when", [("fit", "after --standardize's pass"),
                                           ("fit", "in epoch 2"),
                                           ("lr-search", "between two rates")])
def test_npy_cell_gone_bad_in_a_later_pass_is_named_as_the_first_pass_names_it(
        tmp_path, monkeypatch, capsys, command, when):
    """A value gone bad in a .npy after its first pass is named as the first pass names it,
    by the file's column and data row, not by its index in X (the target is column 0 here,
    so X's column 7 is the file's '8'): every pass of the reader checks its cells."""
    import gdcore.cli.fit
    import gdcore.cli.lr_search
    path = tmp_path / "d.npy"
    npy_problem(path, 3000, 200)            # streamed epochs (as gdcore.fit would)
    np.save(path, np.roll(np.load(path), 1, axis=1))    # the target first
    module = gdcore.cli.fit if command == "fit" else gdcore.cli.lr_search
    fit_data, fits = module.fit_data, []

    def spoiling(progress):
        if progress.epoch == 2:
            spoil_npy(path, 2500, 8)

    def fit_spoiled(args, data, **options):
        fits.append(1)
        if when == "after --standardize's pass" or len(fits) == 2:
            spoil_npy(path, 2500, 8)
        elif when == "in epoch 2":
            options["callback"] = spoiling
        return fit_data(args, data, **options)
    monkeypatch.setattr(module, "fit_data", fit_spoiled)
    options = (("--lr", "0.5", "--epochs", "5") if command == "fit" else
               ("--grid", "0.1,0.5", "--epochs", "3"))
    argv = (command, path, "--target", "0", "--optimizer", "gd", "--standardize", *options)
    status, out, err = run_in_process(capsys, *argv)
    monkeypatch.setattr(module, "fit_data", fit_data)
    first_status, _, first_err = run_in_process(capsys, *argv)     # the file as it is now
    assert first_status != 0
    assert "column '8' has a non-finite value in data row 2501 (nan)" in first_err
    assert (status, err) == (first_status, first_err), out


def test_npy_mini_batch_equals_gdcore_fit(tmp_path):
    """--batch-size on a .npy (rows copied into one array) gives gdcore.fit's mini-batch run."""
    path, model = tmp_path / "d.npy", tmp_path / "m.json"
    X, y = npy_problem(path, 500, 3)
    gdcore_cli("fit", path, "--target", "3", "--optimizer", "adam", "--lr", "0.05",
               "--epochs", "20", "--batch-size", "32", "--seed", "3", "--save", model)
    expected = gdcore.fit(X, y, optimizer="adam", lr=0.05, epochs=20, batch_size=32, seed=3)
    np.testing.assert_allclose(json.loads(model.read_text())["coef"], expected.coef,
                               rtol=1e-12)


def test_npy_non_finite_cell_names_column_and_data_row(tmp_path, monkeypatch, capsys):
    """Like the CSV message: the column (its index) and the 1-based data row, also when the
    bad cell is in a later block."""
    import gdcore._io
    path = tmp_path / "nan.npy"
    npy_problem(path, 3000, 4)
    array = np.load(path)
    array[16, 2] = np.nan
    np.save(path, array)
    proc = gdcore_cli("fit", path, "--target", "4", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"gdcore fit: error: {path}: column '2' has a non-finite "
                                   "value in data row 17 (nan)")
    array[16, 2] = 1.0
    array[2500, 4] = np.inf  # the target, many blocks in
    np.save(path, array)
    monkeypatch.setattr(gdcore._io, "BLOCK_BYTES", 4096)
    for argv in (["fit", path, "--target", 4], ["fit", path, "--target", 4, "--batch-size", 8],
                 ["lr-search", path, "--target", 4, "--grid", "0.1"]):
        status, _, err = run_in_process(capsys, *argv)
        assert status == 2
        assert err.strip().endswith(f"{path}: column '4' has a non-finite value in data row "
                                    "2501 (inf)"), err


@pytest.mark.skipif(np.finfo(np.longdouble).max <= np.finfo(np.float64).max,
                    reason="long double is float64 here")
def test_npy_long_double_past_float64_is_named_as_such(tmp_path, capsys):
    """A long double .npy cell past float64's range is named with its value and why, as
    gdcore.fit names it: not as a non-finite value (inf), which the file does not hold."""
    path = tmp_path / "wide.npy"
    array = np.ones((10, 3), dtype=np.longdouble)
    array[4, 1] = np.longdouble("1e400")
    np.save(path, array)
    for target, argv in ((2, []), (1, []), (2, ["--batch-size", 4])):
        status, _, err = run_in_process(capsys, "fit", path, "--target", target, *argv)
        assert status == 2
        assert err.strip().endswith(f"{path}: column '1' holds 1e+400 in data row 5, too "
                                    "large for float64 (the dtype the fit computes in); "
                                    "rescale it"), err


def test_lr_search_ranks_rising_losses_after_falling_ones(files):
    """Unstandardised columns (scales 1, 10, 0.1): large rates make the loss grow without
    overflowing; they are 'rose', ranked after the 'ok' ones, and never the best."""
    folder, frame = files
    X, y = frame[["a", "b", "c"]].to_numpy(), frame["y"].to_numpy()
    grid = [0.0001, 0.001, 0.01, 0.1]
    truth = {}
    for lr in grid:
        losses = gdcore.fit(X, y, optimizer="gd", lr=lr, epochs=5, tol=None).loss_history
        truth[lr] = ("rose" if losses[-1] > 2 * losses[0] else "ok", losses[-1])
    assert {status for status, _ in truth.values()} == {"ok", "rose"}
    out = gdcore_cli("lr-search", folder / "train.csv", "--target", "y", "--optimizer", "gd",
                     "--grid", ",".join(map(str, grid))).stdout.splitlines()
    ranked = [line.split() for line in out[1:-1]]
    ok = sorted((loss, lr) for lr, (status, loss) in truth.items() if status == "ok")
    rose = sorted((loss, lr) for lr, (status, loss) in truth.items() if status == "rose")
    assert [(float(r[1]), r[-1]) for r in ranked] == \
        [(lr, "ok") for _, lr in ok] + [(lr, "rose") for _, lr in rose]
    assert out[-1] == f"best lr: {ok[0][1]:.6g}"
    proc = gdcore_cli("lr-search", folder / "train.csv", "--target", "y", "--optimizer", "gd",
                      "--grid", "0.1,1,1e100", check=False)
    assert proc.returncode == 2
    assert [line.split()[-1] for line in proc.stdout.splitlines()[1:]] == \
        ["rose", "rose", "diverged"]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "every learning rate diverged or its loss rose" in lines[0]
    assert "--standardize" in lines[0]


@pytest.mark.parametrize("args, message", [
    (["--threads", "0"], "--threads must be -1 (all cores) or 1 to 1024, got 0"),
    (["--batch-size", "0"], "--batch-size must be"),
    (["--n-iter-no-change", "0"], "--n-iter-no-change must be"),
    (["--epochs", "0"], "--epochs must be"),
    (["--seed", "-1"], "--seed must be an integer >= 0, got -1"),
    (["--batch-size", "2", "--gtol", "1e-3"],
     "--gtol applies to full-batch fits only (--batch-size 2, of 400 rows)"),
])
def test_bad_options_are_named_by_their_flag(files, tmp_path, args, message):
    """CSV files are fitted by gdcore.fit; .npy files full-batch in blocks (fit_chunks),
    which does not use --seed but must refuse a bad one all the same."""
    folder, _ = files
    table = np.loadtxt(folder / "train.csv", delimiter=",", skiprows=1)
    np.save(tmp_path / "train.npy", table)
    for data, target in ((folder / "train.csv", "y"), (tmp_path / "train.npy", "0")):
        if "--batch-size" in args and data.suffix == ".npy":
            continue    # the .npy path takes --batch-size through gdcore.fit: covered by CSV
        proc = gdcore_cli("fit", data, "--target", target, *args, check=False)
        assert proc.returncode == 2, data
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"gdcore fit: error: {message}"), lines


def test_divergence_is_one_line_without_python_attributes(files):
    folder, _ = files
    proc = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--optimizer", "gd",
                      "--lr", "1e100", check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "stopped being finite in epoch" in lines[0]
    assert ".result" not in lines[0]
    assert "try a smaller --lr" in lines[0] and "or --standardize" in lines[0]


def test_l1_with_another_optimizer_names_the_flags(files):
    folder, _ = files
    proc = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--l1", "0.1",
                      "--optimizer", "adam", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "gdcore fit: error: --l1 > 0 needs an SGD-family optimizer (sgd, momentum, nesterov); "
        "got Adam. Use --l2, or --optimizer sgd")


@pytest.mark.parametrize("change, problem_text", [
    (lambda m: m.pop("coef"), "'coef'"),
    (lambda m: m.update(coef=m["coef"][:2]), "3 feature names but 2 coefficients"),
    (lambda m: m.update(intercept="x"), "intercept"),
    (lambda m: m["standardize"].update(scale=[1.0]), "scale"),
    (lambda m: m.update(format_version="2"), "format_version must be a whole number"),
    (lambda m: m.update(intercept=float("nan")), "intercept must be a finite number"),
    (lambda m: m.update(intercept=10 ** 400), "a number too large for float64"),
    (lambda m: m.update(coef=[10 ** 400] * 3), "a number too large for float64"),
])
def test_predict_with_a_corrupted_model_is_one_line(files, tmp_path, change, problem_text):
    folder, _ = files
    model = tmp_path / "m.json"
    gdcore_cli("fit", folder / "train.csv", "--target", "y", "--standardize", "--epochs", "5",
               "--save", model)
    document = json.loads(model.read_text())
    change(document)
    model.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=problem_text) as raised:
        gdcore.load_model(model)
    assert str(model) in str(raised.value)
    proc = gdcore_cli("predict", model, folder / "train.csv", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and problem_text in lines[0] and str(model) in lines[0]


def test_predict_with_a_binary_file_as_the_model_names_it(files):
    folder, _ = files
    proc = gdcore_cli("predict", folder / "train.npy", folder / "train.csv", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"gdcore predict: error: {folder / 'train.npy'}: not a "
                                   "gdcore model (a binary file, not JSON text)")


def test_demo_footer_does_not_call_the_noise_variance_a_floor():
    """In-sample MSE can be below the noise variance (the fit also fits the noise), so the
    footer must not call it the best MSE possible."""
    out = gdcore_cli("demo", "--n", "2000", "--d", "4", "--optimizers", "gd").stdout
    row = next(line for line in out.splitlines() if line.startswith("gd "))
    assert float(row.split()[3]) < 0.01  # below the noise variance 0.1²
    footer = out.strip().splitlines()[-1]
    assert "0.01" in footer and "best" not in footer and "expected MSE" in footer


def test_r2_of_a_streamed_fit_with_a_large_mean_target(tmp_path):
    """R² over blocks: Σ(y − ȳ)² merged per block, not Σy² − (Σy)²/n, which loses every
    digit when y = 1e8 + O(1) (the in-memory R² is the truth)."""
    X, y, _ = problem(n=2000, d=3, noise=0.5)
    y = y + 1e8
    np.save(tmp_path / "big_mean.npy", np.column_stack([X, y]))
    model = tmp_path / "m.json"
    out = gdcore_cli("fit", tmp_path / "big_mean.npy", "--target", "3", "--optimizer", "gd",
                     "--lr", "0.5", "--epochs", "200", "--save", model).stdout
    saved = json.loads(model.read_text())
    predictions = X @ np.array(saved["coef"]) + saved["intercept"]
    truth = 1.0 - np.sum((y - predictions) ** 2) / np.sum((y - y.mean()) ** 2)
    assert float(summary(out)["R2"]) == pytest.approx(truth, abs=2e-6)


def test_progress_without_tqdm(files, tmp_path, monkeypatch):
    """The base install has no tqdm: the terminal's default bar is skipped quietly, and
    --progress is one error line (exit 2), not a traceback."""
    from gdcore._progress import progress_callback

    class Terminal:
        def isatty(self):
            return True
    monkeypatch.setitem(sys.modules, "tqdm", None)       # import tqdm fails
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    assert progress_callback(10, enabled=None, stream=Terminal()) == (None, None)
    with pytest.raises(ImportError, match="pip install 'gdcore\\[progress\\]'"):
        progress_callback(10, enabled=True, stream=Terminal())
    folder, _ = files
    blocker = tmp_path / "no_tqdm" / "tqdm"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('tqdm is not installed here')\n")
    env = subprocess_env()
    env["PYTHONPATH"] = str(blocker.parent) + os.pathsep + env["PYTHONPATH"]
    proc = subprocess.run([sys.executable, "-m", "gdcore", "fit", str(folder / "train.npy"),
                           "--target", "3", "--epochs", "5", "--progress"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--progress: progress bars need tqdm" in lines[0]


def test_progress_bar_shows_each_epochs_own_loss():
    """The bar is redrawn by update(): the loss is set before it, so the frame drawn for
    epoch k shows epoch k's loss (it showed epoch k − 1's)."""
    pytest.importorskip("tqdm", reason="progress bars need the optional tqdm (gdcore[progress])")
    import io
    import time
    from types import SimpleNamespace
    from gdcore._progress import progress_callback
    stream = io.StringIO()
    callback, close = progress_callback(3, enabled=True, stream=stream)
    for epoch, loss in enumerate([1.5, 2.5, 3.5], start=1):
        time.sleep(0.12)        # past tqdm's 0.1 s between redraws
        callback(SimpleNamespace(epoch=epoch, loss=loss))
        frame = stream.getvalue().split("\r")[-1]
        assert f"{epoch}/3" in frame and f"loss={loss}" in frame, frame
    close()


def test_lr_search_compares_mini_batch_fits_with_the_loss_before_any_update(files):
    """A mini-batch fit's loss_history[0] is its first epoch's mean batch loss, taken while
    the updates run: a rate that blows the fit up within that epoch, without overflowing,
    has a huge loss_history[0], and compared with it looked 'ok'.  The yardstick is J at the
    starting parameters (w = 0, b = 0): mean(y²)/2, by hand."""
    folder, _ = files
    frame = pd.read_csv(folder / "train.csv")
    X, y = frame[["a", "b", "c"]].to_numpy(), frame["y"].to_numpy()
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    start = np.mean(y ** 2) / 2
    options = dict(optimizer="normalized", epochs=5, batch_size=10, seed=0, tol=None,
                   backend="numpy")
    blown = gdcore.fit(X, y, lr=10.0, **options).loss_history
    sane = gdcore.fit(X, y, lr=0.1, **options).loss_history
    # lr 10: worse than the start by far, from the first epoch on (the old rule's "ok")
    assert blown[0] > 10 * start and 2 * start < blown[-1] <= 2 * blown[0]
    assert sane[-1] < start / 2
    out = gdcore_cli("lr-search", folder / "train.csv", "--target", "y", "--optimizer",
                     "normalized", "--batch-size", "10", "--seed", "0", "--standardize",
                     "--grid", "10,0.1").stdout.splitlines()
    ranked = [line.split() for line in out[1:-1]]
    assert [(float(r[1]), r[-1]) for r in ranked] == [(0.1, "ok"), (10.0, "rose")]
    np.testing.assert_allclose([float(r[2]) for r in ranked], [sane[-1], blown[-1]],
                               rtol=1e-5)
    assert out[-1] == "best lr: 0.1"
    proc = gdcore_cli("lr-search", folder / "train.csv", "--target", "y", "--optimizer",
                      "normalized", "--batch-size", "10", "--seed", "0", "--standardize",
                      "--grid", "10", check=False)
    assert proc.returncode == 2 and proc.stdout.splitlines()[-1].split()[-1] == "rose"


def test_fit_calls_a_mini_batch_fit_that_blew_up_in_its_first_epoch_diverged(files, tmp_path):
    """gdcore fit judged a rise against loss_history[0], which for a mini-batch fit is the
    first epoch's mean batch loss: a rate that blew the fit up within that epoch, without
    overflowing, was saved with exit status 0.  Now the yardstick is J at w = 0, b = 0,
    mean(y²)/2 by hand: exit status 2, nothing saved, the error naming that loss."""
    folder, _ = files
    frame = pd.read_csv(folder / "train.csv")
    y = frame["y"].to_numpy()
    start = np.mean(y ** 2) / 2
    model = tmp_path / "model.json"
    common = ("fit", folder / "train.csv", "--target", "y", "--optimizer", "normalized",
              "--batch-size", "10", "--seed", "0", "--standardize", "--epochs", "5",
              "--tol", "none", "--save", model)
    blown = gdcore_cli(*common, "--lr", "10", check=False)
    assert blown.returncode == 2 and not model.exists()
    error = blown.stderr.strip().splitlines()[-1]
    assert error.startswith(f"gdcore fit: error: the loss rose from {start:.6g} to "), error
    assert float(summary(blown.stdout)["final loss"]) > 2 * start
    sane = gdcore_cli(*common, "--lr", "0.1")
    assert sane.returncode == 0 and model.exists()


def test_the_loss_before_any_update_by_hand():
    """starting_loss is J at w = 0, b = 0: Σyᵢ²/2n, also where Σyᵢ² overflows float64 but J
    does not (it was inf there, and no rate could be called 'rose')."""
    from types import SimpleNamespace
    from gdcore.cli._data import starting_loss
    args = SimpleNamespace(batch_size=10)
    for y, expected in (([3.0, 4.0], 25.0 / 4), ([0.0, 0.0], 0.0),
                        ([1.5e153] * 2000, 0.5 * 1.5e153 ** 2),
                        (np.array([-2.0, 1.0], dtype=np.float32), 5.0 / 4)):
        data = SimpleNamespace(y=np.asarray(y), X_fit=None)
        args.batch_size = 1     # below the row count: a mini-batch fit
        assert starting_loss(args, data) == pytest.approx(expected, rel=1e-14)
    args.batch_size = None      # full batch: loss_history[0] is that loss already
    assert starting_loss(args, SimpleNamespace(y=np.ones(3))) is None


def test_lr_search_needs_two_epochs(files):
    """A full-batch epoch's loss is taken before its update, so with one epoch every rate
    showed the same loss and the 'best' was the smallest rate."""
    folder, _ = files
    proc = gdcore_cli("lr-search", folder / "train.csv", "--target", "y", "--grid",
                      "0.001,0.1", "--epochs", "1", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("gdcore lr-search: error: --epochs must be >= 2")


def test_lr_search_refuses_a_range_with_a_grid(files):
    """--low and --high were silently unused beside --grid."""
    folder, _ = files
    for extra, named in ((["--low", "0.01"], "--low"), (["--high", "2"], "--high"),
                         (["--low", "0.01", "--high", "2"], "--low and --high")):
        proc = gdcore_cli("lr-search", folder / "train.csv", "--target", "y", "--grid",
                          "0.001,0.1", *extra, check=False)
        assert proc.returncode == 2 and proc.stderr.splitlines() == [
            f"gdcore lr-search: error: {named} set the range --random draws from; --grid "
            "gives the rates themselves"], proc.stderr


def test_lr_search_refuses_more_random_rates_than_can_be_drawn(files):
    """--random 10**26 failed in NumPy's words ("Maximum allowed dimension exceeded"), and
    from 2**60 rates with "array is too big"; now one line naming --random."""
    folder, _ = files
    for count in (10**26, 2**61):
        proc = gdcore_cli("lr-search", folder / "train.csv", "--target", "y", "--random",
                          count, check=False)
        assert proc.returncode == 2 and proc.stderr.splitlines() == [
            f"gdcore lr-search: error: --random {count}: too many learning rates to draw "
            "(they do not fit in memory)"], proc.stderr


def test_version_names_the_compiled_core(capsys):
    from gdcore.cli import main
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    info = gdcore.build_info()
    out = " ".join(capsys.readouterr().out.split())    # argparse wraps it to the terminal
    assert out.startswith(f"gdcore {gdcore.__version__} (compiled core: {info['core']}")
    assert info["flags"] in out and ("OpenMP on" in out) == info["openmp"]


def test_predict_reads_only_the_features_of_an_npz(files, tmp_path):
    """A test set's y is not read: NaN labels, or labels of another length, do not matter."""
    folder, frame = files
    model = tmp_path / "m.json"
    gdcore_cli("fit", folder / "train.npz", "--target", "y", "--optimizer", "gd", "--lr",
               "0.01", "--epochs", "5", "--save", model)
    X = frame[["a", "b", "c"]].to_numpy()
    bad_y = np.full(7, np.nan)
    np.savez(tmp_path / "test.npz", X=X, y=bad_y)
    out = gdcore_cli("predict", model, tmp_path / "test.npz").stdout.split()
    expected = gdcore.load_model(model).predict(X)
    assert out[0] == "y"
    np.testing.assert_allclose([float(v) for v in out[1:]], expected, rtol=1e-15)


def test_an_npz_target_must_be_one_dimensional(files, tmp_path):
    """A .npz's y of shape (n, 1) is a column, taken as gdcore.fit takes it; any other shape
    but (n,) is refused naming the file, the array and its shape (it was flattened: y of
    shape (n, 2) was said to have 2n values, and one of shape (1, n) was taken silently)."""
    folder, frame = files
    X, y = frame[["a", "b", "c"]].to_numpy(), frame["y"].to_numpy()
    fit = ["--optimizer", "gd", "--lr", "0.01", "--epochs", "5"]
    np.savez(tmp_path / "column.npz", X=X, y=y[:, None])
    column = gdcore_cli("fit", tmp_path / "column.npz", "--target", "y", *fit).stdout
    flat = gdcore_cli("fit", folder / "train.npz", "--target", "y", *fit).stdout
    assert summary(column)["final loss"] == summary(flat)["final loss"]
    for shape in [(400, 2), (1, 400), (400, 1, 1), ()]:
        path = tmp_path / "bad.npz"
        np.savez(path, X=X, targets=np.resize(y, shape))
        proc = gdcore_cli("fit", path, "--target", "targets", check=False)
        assert proc.returncode == 2 and proc.stderr.splitlines() == [
            f"gdcore fit: error: {path}: array 'targets' must be 1-D (one target value a row "
            f"of X), got shape {shape}"], proc.stderr


def test_an_npz_of_one_array_named_x_is_columns_by_index(files, tmp_path):
    folder, frame = files
    np.savez(tmp_path / "one.npz", X=frame.to_numpy())
    out = gdcore_cli("fit", tmp_path / "one.npz", "--target", "3", "--optimizer", "gd", "--lr",
                     "0.5", "--epochs", "30", "--standardize").stdout
    same = gdcore_cli("fit", folder / "train.npy", "--target", "3", "--optimizer", "gd",
                      "--lr", "0.5", "--epochs", "30", "--standardize").stdout
    assert summary(out)["R2"] == summary(same)["R2"]
    assert summary(out)["data"].endswith("target '3'")


def test_predict_writes_the_header_as_csv(files, tmp_path):
    folder, frame = files
    odd = 'price, "usd"'
    data = tmp_path / "odd.csv"
    frame.rename(columns={"y": odd}).to_csv(data, index=False)
    model, out = tmp_path / "m.json", tmp_path / "p.csv"
    gdcore_cli("fit", data, "--target", odd, "--epochs", "3", "--save", model)
    gdcore_cli("predict", model, data, "--out", out)
    predictions = pd.read_csv(out)
    assert list(predictions.columns) == [odd] and len(predictions) == len(frame)


def test_output_paths_are_checked_before_the_work(files, tmp_path):
    folder, _ = files
    (tmp_path / "a-folder.png").mkdir()
    for args, message in [
        (["fit", folder / "train.csv", "--target", "y", "--save", tmp_path / "no" / "m.json"],
         "--save {}: no such folder".format(tmp_path / "no" / "m.json")),
        (["fit", folder / "train.csv", "--target", "y", "--plot", tmp_path / "a-folder.png"],
         "is a folder, not a file"),
        (["bench", "--json", tmp_path / "no" / "b.json"], "--json"),
        (["bench", "--seed", "-1"], "seed must be"),
    ]:
        proc = gdcore_cli(*args, check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, args
        assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
        assert proc.stdout == ""    # no summary, no bench table: nothing ran


def test_options_are_checked_before_the_data_are_read(tmp_path):
    """--standardize reads the file once and --batch-size copies it before the fit: a bad
    option is named first all the same (here the file's NaN would otherwise be)."""
    data = np.ones((50, 3))
    data[40, 1] = np.nan
    np.save(tmp_path / "nan.npy", data)
    for extra in (["--standardize"], ["--batch-size", "10"], []):
        proc = gdcore_cli("fit", tmp_path / "nan.npy", "--target", "2", "--lr", "-1", *extra,
                          check=False)
        assert proc.returncode == 2 and "--lr must be > 0" in proc.stderr, (extra, proc.stderr)
    proc = gdcore_cli("lr-search", tmp_path / "nan.npy", "--target", "2", "--grid", "0.1",
                      "--threads", "0", "--standardize", check=False)
    assert proc.returncode == 2 and "--threads must be" in proc.stderr


def test_standardize_refuses_a_column_whose_spread_overflows(tmp_path):
    signs = np.where(np.arange(10) % 2 == 0, 1.0, -1.0)[:, None]
    np.savez(tmp_path / "big.npz", X=signs * np.full((10, 2), 1e300), y=np.ones(10))
    proc = gdcore_cli("fit", tmp_path / "big.npz", "--target", "y", "--standardize", "--save",
                      tmp_path / "m.json", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--standardize: the standard deviation of column '0' overflows" in proc.stderr
    assert "RuntimeWarning" not in proc.stderr and not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("make_data, args, message", [
    (lambda p: np.save(p / "d.npy", np.ones((5, 1))), ["d.npy", "--target", "0"],
     "no feature columns besides the target '0'"),
    (lambda p: (p / "d.csv").write_text("a,y,y\n1,2,2\n3,4,4\n"), ["d.csv", "--target", "y"],
     "the column 'y' appears twice"),
    (lambda p: (p / "d.csv").write_text("a,b,y\n1,2,2\n3,4,4\n"),
     ["d.csv", "--target", "y", "--features", "a", "a"], "the feature 'a' appears twice"),
])
def test_columns_named_twice_or_none_are_refused(tmp_path, make_data, args, message):
    make_data(tmp_path)
    proc = gdcore_cli("fit", tmp_path / args[0], *args[1:], check=False)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_a_small_rise_is_not_divergence():
    from gdcore.cli._data import loss_rose
    from types import SimpleNamespace
    assert not loss_rose(SimpleNamespace(loss_history=[0.5094, 0.5096], final_loss=0.5096))
    assert loss_rose(SimpleNamespace(loss_history=[0.5, 3.0], final_loss=3.0))


def test_predict_into_a_pipe_closed_early_is_not_an_error(tmp_path):
    """| head: the reader closes the pipe after a line; predict stops quietly, status 0."""
    np.save(tmp_path / "X.npy", np.ones((200_000, 1)))
    gdcore.save_model(tmp_path / "m.json", gdcore.fit(np.ones((4, 1)), np.arange(4.0),
                                                      epochs=2))
    proc = subprocess.Popen([sys.executable, "-m", "gdcore", "predict", str(tmp_path / "m.json"),
                             str(tmp_path / "X.npy")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=subprocess_env())
    assert proc.stdout.readline().strip() == "prediction"
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0 and stderr == ""


def test_a_folder_whose_gram_matrix_overflows_is_streamed(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    X, y, _ = problem(n=200, d=2)
    for k in range(2):
        pd.DataFrame({"a": X[100 * k:100 * (k + 1), 0] * 1e160, "b": X[100 * k:100 * (k + 1), 1],
                      "y": y[100 * k:100 * (k + 1)]}).to_csv(folder / f"p{k}.csv", index=False)
    proc = gdcore_cli("fit", folder, "--target", "y", "--epochs", "5", "--optimizer", "adam",
                      "--lr", "0.01", "--tol", "none", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "precompute" not in proc.stderr


def test_a_folder_with_batch_size_is_refused_before_it_is_read(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "a.csv").write_text("a,y\n1,2\n2,3\n")
    (folder / "b.csv").write_text("a,y\nnan,2\n2,3\n")
    proc = gdcore_cli("fit", folder, "--target", "y", "--standardize", "--batch-size", "10",
                      check=False)
    assert proc.returncode == 2 and "--batch-size: a folder of files is fitted full-batch" \
        in proc.stderr, proc.stderr


def test_divergence_advice_leaves_out_what_was_given(files):
    folder, _ = files
    proc = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--optimizer", "gd", "--lr",
                      "1e6", "--epochs", "50", "--standardize", check=False)
    assert proc.returncode == 2 and "try a smaller --lr" in proc.stderr, proc.stderr
    assert "--standardize" not in proc.stderr and ".result" not in proc.stderr


def test_csv_header_mistakes_are_named(tmp_path):
    """A CSV without a header, one with another separator, and a Parquet file named .csv get
    errors that say so, not only "no column"."""
    rng = np.random.default_rng(0)
    values = rng.standard_normal((20, 3))
    (tmp_path / "nohdr.csv").write_text("\n".join(",".join(map(str, row)) for row in values))
    (tmp_path / "semi.csv").write_text("a;b;price\n" + "\n".join(
        ";".join(map(str, row)) for row in values))
    frame = pd.DataFrame(values, columns=["a", "b", "price"])
    cases = [("nohdr.csv", "the first row looks like data, not a header"),
             ("semi.csv", "one column 'a;b;price': is the file separated by ';'?"),
             ("pq.csv", "it is a Parquet file: name it .parquet")]
    frame.to_parquet(tmp_path / "pq.csv")
    for name, message in cases:
        run = gdcore_cli("fit", tmp_path / name, "--target", "price", check=False)
        assert run.returncode == 2 and message in run.stderr, run.stderr
    (tmp_path / "ok.csv").write_text(frame.to_csv(index=False))
    run = gdcore_cli("fit", tmp_path / "ok.csv", "--target", "price", "--features", "a,b",
                     check=False)
    assert "(--features takes names separated by spaces: --features a b)" in run.stderr


def test_seed_out_and_argument_order_messages(files, tmp_path):
    folder, _ = files
    run = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--seed", "-1", check=False)
    assert run.returncode == 2
    assert run.stderr.strip() == "gdcore fit: error: --seed must be an integer >= 0, got -1"
    model = tmp_path / "m.json"
    gdcore_cli("fit", folder / "train.csv", "--target", "y", "--epochs", "3", "--save", model)
    out = tmp_path / "no" / "p.csv"
    run = gdcore_cli("predict", model, folder / "train.csv", "--out", out, check=False)
    assert run.returncode == 2 and f"--out {out}: no such folder" in run.stderr
    run = gdcore_cli("predict", folder / "train.csv", model, check=False)
    assert run.returncode == 2
    assert run.stderr.strip().endswith("(the order is gdcore predict MODEL DATA)")


def test_option_mistakes_are_one_line_with_a_hint(files):
    folder, _ = files
    run = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--optimiser", "adam",
                     check=False)
    assert run.returncode == 2
    assert run.stderr.strip() == ("gdcore fit: error: unrecognized arguments: --optimiser adam; "
                                  "did you mean --optimizer? (see gdcore fit --help)")
    run = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--lr", "0,01", check=False)
    assert run.stderr.strip() == ("gdcore fit: error: argument --lr: invalid float value: "
                                  "'0,01' (see gdcore fit --help)")


def test_options_are_spelled_out(files, capsys):
    """argparse took any unambiguous abbreviation: --epoch 3 ran 3 epochs, and a script using
    one would change meaning, or fail, once an option sharing its start was added."""
    folder, _ = files
    for flag in (["--epoch", "3"], ["--epoch=3"], ["--optim", "sgd"]):
        with pytest.raises(SystemExit) as caught:
            run_in_process(capsys, "fit", folder / "train.csv", "--target", "y", *flag)
        out, err = capsys.readouterr()
        assert caught.value.code == 2 and out == "" and err.splitlines() == [
            f"gdcore fit: error: unrecognized arguments: {' '.join(flag)}; did you mean "
            f"{'--optimizer' if 'optim' in flag[0] else '--epochs'}? (see gdcore fit --help)"]
    status, out, err = run_in_process(capsys, "fit", folder / "train.csv", "--target", "y",
                                      "--epochs=3", "--optimizer", "sgd")
    assert status == 0 and "optimizer      SGD(" in out and "epochs         3 (" in out, out


def test_gdcores_own_options_are_spelled_out(capsys):
    """Before COMMAND too: --vers (--version until abbreviations were refused) was only "the
    following arguments are required: COMMAND", naming neither --vers nor --version."""
    for given, meant in (["--vers"], "--version"), (["--hel"], "--help"), (["--vers", "fit"],
                                                                          "--version"):
        with pytest.raises(SystemExit) as caught:
            run_in_process(capsys, *given)
        out, err = capsys.readouterr()
        assert caught.value.code == 2 and out == "" and err.splitlines() == [
            f"gdcore: error: unrecognized arguments: {given[0]}; did you mean {meant}? (see "
            "gdcore --help)"], err
    with pytest.raises(SystemExit) as caught:
        run_in_process(capsys, "--version")
    assert caught.value.code == 0 and capsys.readouterr().out.startswith("gdcore ")
    # a command's option before the command: where it goes (it was refused without a hint)
    for given, owners in (("--threads=2", "demo, fit, lr-search and bench"),
                          ("--target", "fit and lr-search")):
        with pytest.raises(SystemExit) as caught:
            run_in_process(capsys, given, "fit", "data.csv")
        out, err = capsys.readouterr()
        assert caught.value.code == 2 and out == "" and err.splitlines() == [
            f"gdcore: error: unrecognized arguments: {given}; it is an option of {owners}: "
            f"give it after the command (gdcore fit ... {given}) (see gdcore --help)"], err


def test_counts_mistyped_commands_and_model_names(files, tmp_path):
    """--n takes 1e4 and 10_000; a mistyped subcommand gets the nearest; --save refuses a data
    file's extension (a model is JSON) before the fit."""
    for n in ("1e4", "10_000", "10000.0"):
        out = gdcore_cli("demo", "--n", n, "--d", "3", "--optimizers", "gd").stdout
        assert out.startswith("gdcore demo: 10,000 x 3 float64"), n
    run = gdcore_cli("demo", "--n", "1.5", check=False)
    assert run.returncode == 2 and "argument --n: not a whole number: '1.5'" in run.stderr
    run = gdcore_cli("fitt", "x", check=False)
    assert run.returncode == 2 and "invalid choice: 'fitt'" in run.stderr
    assert "did you mean 'fit'?" in run.stderr
    folder, _ = files
    run = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--save",
                     tmp_path / "model.csv", check=False)
    assert run.returncode == 2 and run.stdout == ""
    assert "a model is saved as JSON; name it .json" in run.stderr
    assert not (tmp_path / "model.csv").exists()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd (Linux)")
@pytest.mark.parametrize("contents", ["good", "unreadable"])
def test_an_npz_is_closed_once_read_even_when_reading_fails(tmp_path, contents):
    """The .npz's file is closed as the read ends, not when its NpzFile is collected: an
    error's traceback keeps the reading frame alive, and with it an open file."""
    path = tmp_path / "data.npz"
    if contents == "good":
        np.savez(path, X=np.ones((3, 2)), y=np.arange(3.0))
    else:   # an object array, which allow_pickle=False refuses in the middle of the read
        np.savez(path, X=np.ones((3, 2)), y=np.array([1, "a", None], dtype=object))

    def open_on_path():
        fds = os.listdir("/proc/self/fd")
        return [fd for fd in fds
                if os.path.realpath(f"/proc/self/fd/{fd}") == os.path.realpath(path)]

    caught = None
    try:
        gdcore._io.read_table(path, target="y")
    except gdcore._io.DataError as exc:
        caught = exc      # held, as a caller's traceback would hold it
    assert (caught is None) == (contents == "good")
    assert open_on_path() == []


def test_outputs_are_never_written_over_an_input(files, tmp_path):
    """(From a review as a new user: these all exited 0, destroying a file.)  --out over the
    model or the data, --save and --plot on one file: refused before any work."""
    folder, _ = files
    data = tmp_path / "new.csv"
    data.write_bytes((folder / "train.csv").read_bytes())
    model = tmp_path / "model.json"
    gdcore_cli("fit", data, "--target", "y", "--lr", "0.1", "--standardize", "--save", model)
    kept = model.read_bytes(), data.read_bytes()
    for out, name in [(model, "MODEL"), (data, "DATA"), (tmp_path / "." / "new.csv", "DATA")]:
        proc = gdcore_cli("predict", model, data, "--out", out, check=False)
        assert proc.returncode == 2
        assert f"is the {name} file" in proc.stderr and len(proc.stderr.splitlines()) == 1
    same = tmp_path / "same.pdf"
    proc = gdcore_cli("fit", data, "--target", "y", "--save", same, "--plot", same, check=False)
    assert proc.returncode == 2 and "--plot" in proc.stderr and "--save file" in proc.stderr
    assert not same.exists()
    assert (model.read_bytes(), data.read_bytes()) == kept


@pytest.mark.parametrize("name", ["p.parquet", "p.npy", "p.json", "p.png"])
def test_predictions_are_only_written_as_csv(files, tmp_path, name):
    folder, _ = files
    model = tmp_path / "model.json"
    gdcore_cli("fit", folder / "train.csv", "--target", "y", "--lr", "0.1", "--standardize",
               "--save", model)
    proc = gdcore_cli("predict", model, folder / "train.csv", "--out", tmp_path / name,
                      check=False)
    assert proc.returncode == 2 and "written as CSV" in proc.stderr
    assert not (tmp_path / name).exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_a_summary_that_cannot_be_printed_does_not_cost_the_model(files, tmp_path,
                                                                  unbuffered):
    """stdout on a full disk (or a reader gone): the model is saved all the same, and the
    error is one line (it was a traceback, or exit 0 without the model when unbuffered)."""
    folder, _ = files
    model = tmp_path / "model.json"
    env = dict(subprocess_env(), PYTHONUNBUFFERED=unbuffered)
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "gdcore", "fit", str(folder / "train.csv"),
                               "--target", "y", "--lr", "0.1", "--standardize", "--save",
                               str(model)],
                              stdout=full, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "gdcore fit: error: cannot write to stdout: No space left on device"]
    assert gdcore.load_model(model).feature_names == ["a", "b", "c"]


def test_version_is_one_line_at_any_width():
    proc = subprocess.run([sys.executable, "-m", "gdcore", "--version"], capture_output=True,
                          text=True, env=dict(subprocess_env(), COLUMNS="30"))
    assert proc.returncode == 0
    assert len(proc.stdout.splitlines()) == 1 and proc.stdout.startswith("gdcore ")


def test_a_model_worse_than_the_mean_is_pointed_out(files, tmp_path):
    """One short epoch from 0 leaves the intercept far from the targets' mean: R² < 0."""
    folder, frame = files
    proc = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--optimizer", "gd",
                      "--lr", "1e-4", "--epochs", "1", "--tol", "none")
    r2 = float(summary(proc.stdout)["R2"])
    assert r2 < 0
    assert (f"warning: the model predicts the training data worse than their mean does "
            f"(R2 {r2:.6g})") in proc.stderr


def untimed(report):
    """A fit's report without its line of seconds, which differs from run to run."""
    return [line for line in report.splitlines() if not line.startswith("seconds ")]


def gdcore_piped(data, *args):
    """gdcore with ``data`` (bytes) written into a pipe that is its stdin: (exit status,
    stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "gdcore", *map(str, args)], input=data,
                          capture_output=True, env=subprocess_env())
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def test_data_from_a_pipe_or_stdin(files, tmp_path):
    """A pipe (/dev/stdin, or bash's <(...)) is read once: the header check read it a second
    time and found it empty (a traceback in predict, an error naming no file in fit).  DATA
    "-" is stdin, CSV or Parquet by its first bytes; --out - is stdout."""
    folder, _ = files
    model = tmp_path / "m.json"
    by_file = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--optimizer", "gd",
                         "--lr", "0.01", "--epochs", "5", "--save", model).stdout
    csv_bytes = (folder / "train.csv").read_bytes()
    for data, name in [(csv_bytes, "/dev/stdin"), (csv_bytes, "-"),
                       ((folder / "train.parquet").read_bytes(), "-")]:
        status, out, err = gdcore_piped(data, "fit", name, "--target", "y", "--optimizer",
                                        "gd", "--lr", "0.01", "--epochs", "5")
        assert status == 0 and err == "", err
        assert summary(out)["data"] == ("stdin" if name == "-" else name) + \
            ": 400 rows x 3 features, target 'y'"
        assert summary(out)["final loss"] == summary(by_file)["final loss"]
    expected = gdcore_cli("predict", model, folder / "train.csv").stdout
    for name in ["/dev/stdin", "-"]:
        assert gdcore_piped(csv_bytes, "predict", model, name) == (0, expected, "")
    # --out -: stdout, not a file named "-"
    proc = subprocess.run([sys.executable, "-m", "gdcore", "predict", str(model),
                           str(folder / "train.csv"), "--out", "-"], cwd=tmp_path,
                          capture_output=True, text=True, env=subprocess_env())
    assert (proc.returncode, proc.stdout) == (0, expected) and not (tmp_path / "-").exists()
    for command in (["fit", "-", "--target", "y"], ["predict", model, "-"]):
        status, out, err = gdcore_piped(b"", *command)
        assert status == 2 and err.splitlines() == [
            f"gdcore {command[0]}: error: stdin: empty (not even a header)"], err


def _zipped(data):
    import zipfile
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("train.csv", data)
    return buffer.getvalue()


@pytest.mark.parametrize("compression", ["gzip", "bz2", "xz", "zip"])
def test_a_compressed_stream_on_stdin_is_decompressed(files, tmp_path, compression):
    """A compressed CSV or Parquet on stdin is read as pandas reads a file named .gz, .bz2,
    .xz or .zip (it was read as CSV text: a UTF-8 decode error naming no compression); a
    broken one is one line."""
    import bz2
    import gzip
    import lzma
    compress = {"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress,
                "zip": _zipped}[compression]
    folder, _ = files
    model = tmp_path / "m.json"
    by_file = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--optimizer", "gd",
                         "--lr", "0.01", "--epochs", "5", "--save", model).stdout
    csv_compressed = compress((folder / "train.csv").read_bytes())
    for data in (csv_compressed, compress((folder / "train.parquet").read_bytes())):
        status, out, err = gdcore_piped(data, "fit", "-", "--target", "y", "--optimizer", "gd",
                                        "--lr", "0.01", "--epochs", "5")
        assert status == 0 and err == "", err
        assert summary(out)["data"] == "stdin: 400 rows x 3 features, target 'y'"
        assert summary(out)["final loss"] == summary(by_file)["final loss"]
    expected = gdcore_cli("predict", model, folder / "train.csv").stdout
    assert gdcore_piped(csv_compressed, "predict", model, "-") == (0, expected, "")
    status, out, err = gdcore_piped(csv_compressed[:100], "fit", "-", "--target", "y")
    assert status == 2 and len(err.splitlines()) == 1 and err.startswith(
        f"gdcore fit: error: stdin: not a readable {compression} stream ("), err


def test_a_stream_is_decompressed_only_when_its_first_bytes_say_so(files, tmp_path):
    """A CSV whose header begins "BZh" is text, not bz2; a zip must hold one file; zstd needs
    zstandard, and says so where it is missing."""
    folder, _ = files
    text = (folder / "train.csv").read_text()
    renamed = "BZh9" + text
    fit = ("fit", "-", "--target", "y", "--optimizer", "gd", "--lr", "0.01", "--epochs", "5")
    status, out, err = gdcore_piped(renamed.encode(), *fit)
    assert status == 0 and err == "" and "stdin: 400 rows x 3 features" in out, err
    import zipfile
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.csv", text)
        archive.writestr("b.csv", text)
    status, out, err = gdcore_piped(buffer.getvalue(), "fit", "-", "--target", "y")
    assert status == 2 and err.splitlines() == [
        "gdcore fit: error: stdin: a zip archive of 2 files; it must hold one, the table"], err
    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w"):
        pass
    status, out, err = gdcore_piped(empty.getvalue(), "fit", "-", "--target", "y")
    assert status == 2 and err.splitlines() == [
        "gdcore fit: error: stdin: a zip archive of 0 files; it must hold one, the table"], err
    # a skippable frame first, as pzstd writes: 4 bytes of magic, 4 of size, then its bytes
    skippable = b"\x50\x2a\x4d\x18" + (4).to_bytes(4, "little") + b"\0" * 4
    try:
        import zstandard
    except ImportError:
        # a zstd frame's magic number, then anything: what is read before it is refused
        for data in (b"\x28\xb5\x2f\xfd" + text.encode(), skippable + text.encode()):
            status, out, err = gdcore_piped(data, "fit", "-", "--target", "y")
            assert status == 2 and err.splitlines() == [
                "gdcore fit: error: stdin: zstd-compressed, which needs zstandard to read (pip "
                "install zstandard), or decompress it first (zstd -dc)"], err
    else:
        data = zstandard.ZstdCompressor().compress(text.encode())
        status, out, err = gdcore_piped(data, *fit)
        assert status == 0 and err == "" and "stdin: 400 rows x 3 features" in out, err
        half = text.index("\n", len(text) // 2) + 1
        two_frames = b"".join(zstandard.ZstdCompressor().compress(part.encode())
                              for part in (text[:half], text[half:]))
        for same in (two_frames, skippable + data):     # all but the seconds taken
            again = gdcore_piped(same, *fit)
            assert again[0] == status and again[2] == err
            assert untimed(again[1]) == untimed(out), again[1]
        status, out, err = gdcore_piped(data[:-3], *fit)
        assert status == 2 and err.splitlines() == [
            "gdcore fit: error: stdin: not a readable zstd stream (it ends inside a frame)"], err


def test_predict_names_the_file_of_any_reading_error(files, tmp_path, monkeypatch, capsys):
    """An error a reader lets escape (not a DataError) is one line naming the file."""
    import gdcore.cli.predict
    folder, _ = files
    model = tmp_path / "m.json"
    gdcore_cli("fit", folder / "train.csv", "--target", "y", "--epochs", "3", "--save", model)

    def broken(*args, **kwargs):
        raise ValueError("the parser's own words\nover two lines")
    monkeypatch.setattr(gdcore.cli.predict, "read_table", broken)
    status, out, err = run_in_process(capsys, "predict", model, folder / "train.csv")
    assert status == 2 and out == ""
    assert err.splitlines() == [f"gdcore predict: error: {folder / 'train.csv'}: cannot read "
                                "the data (the parser's own words over two lines)"]


def test_a_saved_index_column_is_pointed_out(files, tmp_path):
    """A DataFrame saved with its index (to_csv without index=False) has a first column
    without a name, which pandas calls 'Unnamed: 0': it was fitted as a feature, silently."""
    _, frame = files
    frame.to_csv(tmp_path / "indexed.csv")
    proc = gdcore_cli("fit", tmp_path / "indexed.csv", "--target", "y", "--standardize")
    assert ("warning: 'Unnamed: 0' has no name in the header (an index saved with the data?) "
            "and is fitted as a feature; name the features to fit with --features"
            in proc.stderr)
    assert "4 features" in proc.stdout
    chosen = gdcore_cli("fit", tmp_path / "indexed.csv", "--target", "y", "--standardize",
                        "--features", "a", "b", "c")
    assert "Unnamed" not in chosen.stderr and "3 features" in chosen.stdout


def test_parquet_decimal_columns_are_read_as_numbers(tmp_path):
    """A database's exact decimals (Parquet decimal128, which pandas gives as Decimal
    objects) were refused as 'not numeric (it holds object values such as 1.5)'."""
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq
    X, y, _ = problem(n=200, d=2, seed=5)
    a = [decimal.Decimal(f"{v:.4f}") for v in X[:, 0]]
    pq.write_table(pa.table({"a": pa.array(a, type=pa.decimal128(12, 4)), "b": X[:, 1],
                             "y": y}), tmp_path / "decimal.parquet")
    model = tmp_path / "model.json"
    gdcore_cli("fit", tmp_path / "decimal.parquet", "--target", "y", "--optimizer", "gd",
               "--lr", "0.5", "--epochs", "50", "--tol", "none", "--save", model)
    exact = np.column_stack([np.array([float(v) for v in a]), X[:, 1]])
    expected = gdcore.fit(exact, y, optimizer="gd", lr=0.5, epochs=50, tol=None)
    saved = gdcore.load_model(model)
    np.testing.assert_allclose(saved.coef, expected.coef, rtol=1e-12)
    # a missing decimal is a missing value, named as one
    pq.write_table(pa.table({"a": pa.array(a[:5] + [None], type=pa.decimal128(12, 4)),
                             "y": y[:6]}), tmp_path / "missing.parquet")
    proc = gdcore_cli("fit", tmp_path / "missing.parquet", "--target", "y", check=False)
    assert proc.returncode == 2
    assert "column 'a' has a missing or non-finite value in data row 6" in proc.stderr


@pytest.mark.parametrize("contents", ["a,b,y\n1,2,3,4\n2,3,5,6\n7,1,2,0\n",
                                      "a,b,y\n1,2,3,\n2,3,5,\n7,1,2,\n"])
@pytest.mark.parametrize("command", ["fit", "predict"])
def test_a_csv_row_longer_than_its_header_is_refused(files, tmp_path, contents, command):
    """Data rows with one field more than the header: pandas took the first field of each
    row as the row's index and named the rest by the header, shifted: 'a' was the second
    field, the target 'y' the fourth, and the first field was dropped, silently."""
    path = tmp_path / "shifted.csv"
    path.write_text(contents)
    model = tmp_path / "model.json"
    gdcore_cli("fit", files[0] / "train.csv", "--target", "y", "--features", "a", "b",
               "--epochs", "3", "--save", model)
    argv = (["fit", path, "--target", "y", "--save", tmp_path / "shifted.json"]
            if command == "fit" else ["predict", model, path])
    proc = gdcore_cli(*argv, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert (f"{path}: data row 1 has 4 fields but the header names 3 columns" in lines[0])
    assert not (tmp_path / "shifted.json").exists()


@pytest.mark.parametrize("argv, flag", [
    (["fit", "{data}", "--target", "y", "--save", ""], "--save"),
    (["predict", "{model}", "{data}", "--out", ""], "--out"),
    (["bench", "--n", "1000", "--d", "2", "--quick", "--json", ""], "--json"),
])
def test_an_empty_output_path_is_refused(files, tmp_path, argv, flag):
    """An empty path (--save "$MODEL" with MODEL unset) was taken for no path: fit saved
    nothing, predict wrote to stdout and bench wrote no JSON, each with exit status 0."""
    model = tmp_path / "model.json"
    gdcore_cli("fit", files[0] / "train.csv", "--target", "y", "--epochs", "3", "--save", model)
    proc = gdcore_cli(*[a.format(data=files[0] / "train.csv", model=model) for a in argv],
                      check=False)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"error: {flag}: the path is empty; name the file" in lines[0]


@pytest.mark.parametrize("first, extra", [("part-0.csv", "c"), ("part-9.csv", "z")])
def test_a_folder_file_with_a_column_the_first_lacks_is_refused(files, tmp_path, first, extra):
    """Without --features every column but the target is a feature, but a folder's were
    those of its first file: a column only later files had ('c' where part-0 lacks it, or
    'z' in the last file) was left out of the fit, silently."""
    _, frame = files
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.iloc[:200].to_parquet(folder / "part-1.parquet")
    frame.iloc[200:].to_csv(folder / "part-2.csv", index=False)
    rows = frame.iloc[:5].drop(columns="c") if extra == "c" else frame.iloc[:5].assign(z=1.0)
    rows.to_csv(folder / first, index=False)
    proc = gdcore_cli("fit", folder, "--target", "y", "--save", tmp_path / "m.json",
                      check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert f"column {extra!r} is not in" in lines[0] and "--features" in lines[0]
    assert not (tmp_path / "m.json").exists()
    # features named: the other columns are left out, as in one file
    chosen = gdcore_cli("fit", folder, "--target", "y", "--features", "a", "b")
    assert "2 features" in chosen.stdout


def test_features_given_twice_are_all_taken(files, tmp_path):
    """--features a --features b fitted b alone: argparse kept the last list, and the first
    feature was dropped, silently."""
    folder, frame = files
    model = tmp_path / "model.json"
    out = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--features", "a",
                     "--features", "b", "--optimizer", "gd", "--lr", "0.001", "--epochs", "20",
                     "--tol", "none", "--save", model).stdout
    assert summary(out)["data"].endswith("2 features, target 'y'")
    expected = gdcore.fit(frame[["a", "b"]].to_numpy(), frame["y"].to_numpy(), optimizer="gd",
                          lr=0.001, epochs=20, tol=None)
    saved = gdcore.load_model(model)
    assert saved.feature_names == ["a", "b"]
    np.testing.assert_allclose(saved.coef, expected.coef, rtol=1e-12)
    # a feature named in both is named twice, and refused as in one list
    proc = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--features", "a", "b",
                      "--features", "a", check=False)
    assert proc.returncode == 2 and "the feature 'a' appears twice" in proc.stderr


def test_a_parquet_files_named_index_is_a_column(files, tmp_path):
    """A DataFrame saved by to_parquet with a named index (set_index('a')) has 'a' as a
    column of the file (pyarrow, Spark and DuckDB read it so), but pandas' metadata turned it
    back into the index: fit left 'a' out, silently, and predict said there was no 'a'."""
    _, frame = files
    frame.set_index("a").to_parquet(tmp_path / "indexed.parquet")
    model = tmp_path / "model.json"
    out = gdcore_cli("fit", tmp_path / "indexed.parquet", "--target", "y", "--optimizer", "gd",
                     "--lr", "0.001", "--epochs", "20", "--tol", "none", "--save", model).stdout
    assert summary(out)["data"].endswith("3 features, target 'y'")
    saved = gdcore.load_model(model)
    X = frame[saved.feature_names].to_numpy()
    expected = gdcore.fit(X, frame["y"].to_numpy(), optimizer="gd", lr=0.001, epochs=20,
                          tol=None)
    assert sorted(saved.feature_names) == ["a", "b", "c"]
    np.testing.assert_allclose(saved.coef, expected.coef, rtol=1e-12)
    predicted = gdcore_cli("predict", model, tmp_path / "indexed.parquet").stdout.split()
    np.testing.assert_allclose([float(v) for v in predicted[1:]], saved.predict(X),
                               rtol=1e-15)
    # an unnamed index (a filtered frame's row labels) is not data: left out as before
    frame[frame["a"] > 5].to_parquet(tmp_path / "filtered.parquet")
    out = gdcore_cli("fit", tmp_path / "filtered.parquet", "--target", "y").stdout
    assert summary(out)["data"].endswith("3 features, target 'y'")
    # nor are the row labels Dask writes, which pandas reads back as an index named
    # "__null_dask_index__"
    dd = pytest.importorskip("dask.dataframe", reason="dask writes its own row labels")
    dd.from_pandas(frame, npartitions=2).to_parquet(tmp_path / "from_dask")
    out = gdcore_cli("fit", tmp_path / "from_dask", "--target", "y").stdout
    assert summary(out)["data"].endswith("3 features, target 'y'")


def test_running_out_of_memory_is_one_line(files, monkeypatch, capsys):
    """--epochs 10**25 --tol none keeps one loss an epoch until memory runs out: the
    MemoryError came out as a traceback (seen with a 3 GB address-space limit)."""
    from gdcore.cli import fit

    def out_of_memory(*args, **kwargs):
        raise MemoryError
    monkeypatch.setattr(fit, "fit_data", out_of_memory)
    status, out, err = run_in_process(capsys, "fit", files[0] / "train.csv", "--target", "y",
                                      "--tol", "none", "--epochs", 10**25)
    assert status == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gdcore fit: error: out of memory")


@pytest.mark.parametrize("command, hint", [
    ("fit", "many --epochs with --tol none"), ("lr-search", "many --epochs with --tol none"),
    ("predict", "save it as .npy, which is read in blocks"), ("bench", "a smaller --n or --d"),
    ("demo", "a smaller --n or --d")])
def test_running_out_of_memory_names_what_each_command_holds(monkeypatch, capsys, command,
                                                            hint):
    """The out-of-memory line spoke of a fit's epochs whatever the command (predict, bench
    and demo run no such fit)."""
    import importlib
    module = importlib.import_module(f"gdcore.cli.{command.replace('-', '_')}")

    def out_of_memory(args):
        raise MemoryError
    monkeypatch.setattr(module, "run", out_of_memory)
    argv = {"fit": ["fit", "x.csv", "--target", "y"],
            "lr-search": ["lr-search", "x.csv", "--target", "y", "--grid", "0.1"],
            "predict": ["predict", "m.json", "x.csv"]}.get(command, [command])
    status, out, err = run_in_process(capsys, *argv)
    assert (status, out) == (2, "")
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"gdcore {command}: error: out of memory (") and hint in lines[0], err


def test_progress_bar_times_the_fit_not_the_reading(files, monkeypatch, capsys):
    """The bar's clock (epochs per second, time left) starts when the fit does: made before
    the data were read, it counted the reading (pandas' import, a large CSV's parse,
    --standardize's pass) as the first epoch's time, and a fit of thousands of epochs a
    second showed ~2 epochs/s."""
    pytest.importorskip("tqdm", reason="progress bars need the optional tqdm (gdcore[progress])")
    import time
    import gdcore.cli.fit as cli_fit
    from gdcore.cli import main
    load = cli_fit.load

    def slow_load(args):
        time.sleep(1.5)         # a large file
        return load(args)
    monkeypatch.setattr(cli_fit, "load", slow_load)
    folder, _ = files
    assert main(["fit", str(folder / "train.npy"), "--target", "3", "--epochs", "20",
                 "--tol", "none", "--progress"]) == 0
    last = capsys.readouterr().err.strip().replace("\r", "\n").splitlines()[-1]
    assert " 20/20 [00:00<" in last, last     # elapsed 0 s, not the reading's 1.5 s


def test_bench_json_is_not_written_over_a_data_file(files, tmp_path):
    """--save refuses a data file's extension; bench --json did not, and replaced a CSV (or a
    .npy) with its JSON after minutes of timing.  Refused first, the file as it was."""
    folder, _ = files
    data = tmp_path / "train.csv"
    data.write_bytes((folder / "train.csv").read_bytes())
    proc = gdcore_cli("bench", "--n", "1000", "--d", "2", "--quick", "--json", data,
                      check=False)
    assert proc.returncode == 2 and "--json" in proc.stderr and ".json" in proc.stderr, (
        proc.stderr)
    assert proc.stdout == "" and data.read_bytes() == (folder / "train.csv").read_bytes()


def test_every_option_says_what_it_does_in_help():
    """Each subcommand's --help describes every option (demo's --dtype, --noise and --seed,
    and bench's --seed, were listed bare, their defaults unsaid)."""
    import argparse
    from gdcore.cli import build_parser
    subparsers = next(a for a in build_parser()._actions
                      if isinstance(a, argparse._SubParsersAction))
    bare = [f"{name} {'/'.join(action.option_strings)}"
            for name, sub in subparsers.choices.items() for action in sub._actions
            if action.option_strings and not action.help]
    assert bare == []


def test_a_npy_array_given_as_a_stream_or_named_csv_says_what_it_is(files):
    """A .npy is opened by its path (a memmap): piped to stdin, or named .csv, it was read as
    CSV and refused as undecodable UTF-8, which did not say what to do."""
    folder, _ = files
    with open(folder / "train.npy", "rb") as data:
        proc = subprocess.run([sys.executable, "-m", "gdcore", "fit", "-", "--target", "3"],
                              stdin=data, capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "stdin" in proc.stderr and ".npy" in proc.stderr and "path" in proc.stderr
    renamed = folder / "npy-named.csv"
    renamed.write_bytes((folder / "train.npy").read_bytes())
    proc = gdcore_cli("fit", renamed, "--target", "3", check=False)
    assert proc.returncode == 2 and "name it .npy" in proc.stderr, proc.stderr


def test_summary_counts_one_update_in_the_singular(files):
    """The summary's epochs line said "1 (1 updates)" (the data line's counts were singular
    already)."""
    folder, _ = files
    out = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--epochs", "1").stdout
    assert summary(out)["epochs"] == "1 (1 update)"
    out = gdcore_cli("fit", folder / "train.csv", "--target", "y", "--epochs", "2").stdout
    assert summary(out)["epochs"] == "2 (2 updates)"


def test_demo_refuses_a_problem_larger_than_memory_before_any_output():
    """As bench does: demo allocated X and relied on a MemoryError, after printing its header
    (and below the commit limit, filled X until the OOM killer came)."""
    proc = gdcore_cli("demo", "--n", "1e11", "--d", "100", check=False)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    assert proc.stderr.count("\n") == 1 and "GB" in proc.stderr and "--n" in proc.stderr


def test_the_version_has_one_source():
    """pyproject.toml's version is gdcore.__version__ (dynamic), not a second copy that a
    release could change alone (gdcore --version and saved models print __version__, pip the
    metadata's).  Where the package is installed, the two agree."""
    import importlib.metadata
    import re
    from pathlib import Path
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("no pyproject.toml beside tests/")
    text = pyproject.read_text(encoding="utf-8")
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    assert not re.search(r"^version\s*=", project, re.M), "a static version in [project]"
    assert re.search(r'^dynamic\s*=\s*\[[^]]*"version"', project, re.M)
    assert 'version = {attr = "gdcore.__version__"}' in text
    try:
        assert importlib.metadata.version("gdcore") == gdcore.__version__
    except importlib.metadata.PackageNotFoundError:
        pass
