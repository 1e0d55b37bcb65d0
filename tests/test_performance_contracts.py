"""Behaviour behind the performance work: Gram mode gives the streaming results, and a fit
over C-contiguous or memmapped float data allocates no copy of X.  (Speed itself is measured
in benches/, never here.)"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gdcore

from conftest import subprocess_env


@pytest.fixture(scope="module")
def data():
    X, y, _ = gdcore.make_regression(3000, 12, noise=0.3, intercept=0.5, seed=3)
    weights = np.random.default_rng(4).uniform(0.0, 2.0, len(y))
    return X, y, weights


@pytest.mark.parametrize("optimizer, lr", [("gd", 0.3), ("nesterov", 0.05), ("adam", 0.05),
                                           ("rmsprop", 0.01), ("adagrad", 0.3),
                                           ("normalized", 0.05)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_gram_mode_equals_streaming(data, optimizer, lr, weighted, fit_intercept):
    X, y, weights = data
    options = dict(optimizer=optimizer, lr=lr, epochs=40, tol=None, l2=0.01,
                   sample_weight=weights if weighted else None, fit_intercept=fit_intercept)
    gram = gdcore.fit(X, y, precompute=True, **options)
    streaming = gdcore.fit(X, y, precompute=False, **options)
    reference = gdcore.fit(X, y, backend="numpy", **options)
    np.testing.assert_allclose(gram.loss_history, streaming.loss_history, rtol=1e-8)
    np.testing.assert_allclose(gram.coef, streaming.coef, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(gram.loss_history, reference.loss_history, rtol=1e-8)
    assert gram.intercept == pytest.approx(streaming.intercept, rel=1e-8, abs=1e-12)


def test_gram_mode_gtol_and_float32(data):
    X, y, _ = data
    gram = gdcore.fit(X, y, optimizer="gd", lr=0.5, epochs=500, tol=None, gtol=1e-6,
                      precompute=True)
    streaming = gdcore.fit(X, y, optimizer="gd", lr=0.5, epochs=500, tol=None, gtol=1e-6,
                           precompute=False)
    assert gram.stop_reason == streaming.stop_reason == "gtol"
    assert gram.n_epochs == streaming.n_epochs
    X32, y32 = X.astype(np.float32), y.astype(np.float32)
    g32 = gdcore.fit(X32, y32, optimizer="gd", lr=0.3, epochs=30, tol=None, precompute=True)
    s32 = gdcore.fit(X32, y32, optimizer="gd", lr=0.3, epochs=30, tol=None, precompute=False)
    assert g32.coef.dtype == np.float32
    np.testing.assert_allclose(g32.loss_history, s32.loss_history, rtol=1e-4)


def test_precompute_validation(data):
    X, y, _ = data
    with pytest.raises(ValueError, match="precompute"):
        gdcore.fit(X, y, precompute="yes")
    with pytest.raises(ValueError, match="precompute"):
        gdcore.fit(X, y, precompute=True, batch_size=32)
    # "auto" is accepted for mini-batch fits and simply streams
    gdcore.fit(X, y, precompute="auto", batch_size=32, epochs=2)


MEMORY_SCRIPT = textwrap.dedent("""
    import sys, threading, time, tracemalloc
    import numpy as np
    import gdcore

    def anonymous_kb():
        # resident anonymous memory (Linux): what a copy of X would add, C allocations too
        # (tracemalloc sees only Python's and NumPy's); -1 where /proc does not say
        try:
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("RssAnon:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return -1

    peak_kb, done = [anonymous_kb()], threading.Event()

    def sample():
        while not done.is_set():
            peak_kb[0] = max(peak_kb[0], anonymous_kb())
            time.sleep(0.0005)
    path, dtype, batch = sys.argv[1], sys.argv[2], sys.argv[3]
    batch = None if batch == "none" else int(batch)
    n, d = 400_000, 40
    rng = np.random.default_rng(0)
    X = np.lib.format.open_memmap(path + ".X.npy", mode="w+", dtype=dtype, shape=(n, d))
    for start in range(0, n, 50_000):
        X[start:start + 50_000] = rng.standard_normal((50_000, d))
    y = np.asarray(X[:, 0] * 2.0 + 1.0, dtype=dtype)
    X.flush(); del X
    X = np.load(path + ".X.npy", mmap_mode="r")
    before_kb = anonymous_kb()
    sampler = threading.Thread(target=sample)
    tracemalloc.start()
    sampler.start()
    gdcore.fit(X, y, optimizer="adam", lr=0.01, epochs=2, batch_size=batch, seed=0,
               precompute=False)
    gdcore.fit(X, y, optimizer="sgd", lr=0.01, epochs=2, precompute=True)
    done.set()
    sampler.join()
    peak = tracemalloc.get_traced_memory()[1]
    print(peak, X.nbytes, peak_kb[0] - before_kb if before_kb >= 0 else -1)
""")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batch", ["none", "256"])
def test_memmap_fit_allocates_no_copy(tmp_path, dtype, batch):
    """Peak traced allocation (NumPy's buffers included) stays far below X's size."""
    script = tmp_path / "memory.py"
    script.write_text(MEMORY_SCRIPT)
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "data"), dtype, batch],
                         capture_output=True, text=True, check=True,
                         env=subprocess_env()).stdout.split()
    peak, x_bytes, anonymous_kb = int(out[0]), int(out[1]), int(out[2])
    assert x_bytes > 60 * 2**20  # X is big enough that a copy would show
    # 50 MB plus the permutation (8 bytes a row) and a batch
    assert peak < 50 * 2**20 + 8 * 400_000, (peak, x_bytes)
    # the same bound on resident anonymous memory, sampled every 0.5 ms: it also sees what
    # the core allocates in C (a copy of X made there lasts a whole pass, tens of ms)
    if anonymous_kb >= 0:
        assert anonymous_kb * 1024 < 50 * 2**20 + 8 * 400_000, (anonymous_kb, x_bytes)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("prefetch_bytes", [0, 12800])
def test_bandwidth_probe_sums_what_it_reads(dtype, n_threads, prefetch_bytes):
    """The bench's read probe (gdcore._core.stream_sum) must read every value once, with its
    prefetching on or off: its sum is NumPy's (lengths around the lanes and the prefetch
    distance, so the tails and the last prefetched steps are reached)."""
    rng = np.random.default_rng(n_threads)
    for n in (0, 1, 15, 16, 17, 1000, 1601, 3201, 100_003):
        values = rng.standard_normal(n).astype(dtype)
        expected = float(np.sum(values.astype(np.float64)))
        got = gdcore._core.stream_sum(values, n_threads, prefetch_bytes)
        assert got == pytest.approx(expected, rel=1e-5 if dtype == np.float32 else 1e-12,
                                    abs=1e-3 if dtype == np.float32 else 1e-9)
