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


def epoch_by_epoch(X, y, **options):
    """(result, per-epoch (coef, intercept) array), read through the callback."""
    params = []
    result = gdcore.fit(X, y, callback=lambda p: params.append(np.append(p.coef, p.intercept)),
                        **options)
    assert len(params) == result.n_epochs == len(result.loss_history)
    return result, np.array(params)


@pytest.mark.parametrize("optimizer, lr", [("gd", 0.3), ("nesterov", 0.05), ("adam", 0.05),
                                           ("rmsprop", 0.01), ("adagrad", 0.3),
                                           ("normalized", 0.05)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_gram_mode_equals_streaming(data, optimizer, lr, weighted, fit_intercept):
    """Both modes against the NumPy reference at SPEC §7's float64 rtol 1e-10, along the
    whole trajectory: every epoch's loss and parameters, and the final coef and intercept
    (measured: within 3e-13 of the reference)."""
    X, y, weights = data
    options = dict(optimizer=optimizer, lr=lr, epochs=40, tol=None, l2=0.01,
                   sample_weight=weights if weighted else None, fit_intercept=fit_intercept)
    reference, ref_params = epoch_by_epoch(X, y, backend="numpy", **options)
    scale = np.abs(ref_params).max()
    for precompute in (True, False):
        core, params = epoch_by_epoch(X, y, precompute=precompute, **options)
        assert core.n_epochs == reference.n_epochs == 40
        np.testing.assert_allclose(core.loss_history, reference.loss_history, rtol=1e-10)
        np.testing.assert_allclose(params, ref_params, rtol=1e-10, atol=1e-10 * scale)
        np.testing.assert_allclose(core.coef, reference.coef, rtol=1e-10, atol=1e-10 * scale)
        assert core.intercept == pytest.approx(reference.intercept, rel=1e-10,
                                               abs=1e-10 * scale)
        if not fit_intercept:
            assert core.intercept == reference.intercept == 0.0


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


@pytest.mark.parametrize("weighted", [False, True])
def test_gram_mode_keeps_small_losses_under_large_offsets(weighted):
    """y ≈ 1e7 + a fit to 0.01, and a column of X near 1e6: the moments are centred, so Gram
    mode's losses are the streaming ones to rounding (uncentred, Σrᵢ² was a difference of
    terms ~1e14·n and read 1000x too large), also started at the least-squares fit, where
    J ~ 5e-9 (it read 0)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 3))
    X[:, 2] += 1e6
    y = X @ [1.0, 2.0, 0.5] + 1e7 + 0.01 * rng.normal(size=1000)
    weights = rng.uniform(0.5, 1.5, 1000) if weighted else None
    options = dict(optimizer="gd", lr=0.5, epochs=60, tol=None, sample_weight=weights)
    Xs = X.copy()
    Xs[:, 2] -= 1e6           # the same fit with a small column, so that lr suits both
    gram = gdcore.fit(Xs, y, precompute=True, **options)
    streaming = gdcore.fit(Xs, y, precompute=False, **options)
    np.testing.assert_allclose(gram.loss_history, streaming.loss_history, rtol=1e-7)
    A = np.column_stack([X, np.ones(1000)])
    s = np.ones(1000) if weights is None else weights
    solution = np.linalg.lstsq(A * np.sqrt(s)[:, None], y * np.sqrt(s), rcond=None)[0]
    start = (solution[:3], solution[3])
    at_fit = dict(optimizer="gd", lr=1e-14, epochs=3, tol=None, sample_weight=weights,
                  init=start)
    # J at the solution, exactly (rational arithmetic on the float64 values)
    from fractions import Fraction
    theta = [Fraction(v) for v in solution]
    exact = sum(Fraction(si) * (sum(Fraction(a) * t for a, t in zip(row, theta)) - Fraction(yi))
                ** 2 for row, yi, si in zip(A.tolist(), y.tolist(), s.tolist()))
    expected = float(exact / (2 * sum(Fraction(si) for si in s.tolist())))
    for precompute in (True, False):
        losses = gdcore.fit(X, y, precompute=precompute, **at_fit).loss_history
        # Not SPEC's 1e-10: each float64 residual xᵢ·w + b − yᵢ ≈ 0.01 is a difference of
        # terms ~1e7, so it carries ~1e7·2⁻⁵³ ≈ 1e-9 of rounding (~1e-7 of itself); over 1000
        # rows that averages to a few 1e-9 of J (measured ≤ 2.1e-9 streaming, 5e-11 Gram).
        np.testing.assert_allclose(losses, expected, rtol=1e-8)


def exact_losses(X, y, thetas):
    """J at each θ = (w, b), in rational arithmetic on the float values."""
    from fractions import Fraction
    rows = [[Fraction(v) for v in row] for row in X.tolist()]
    targets = [Fraction(v) for v in y.tolist()]
    losses = []
    for theta in thetas:
        *w, b = [Fraction(v) for v in np.asarray(theta, dtype=np.float64).tolist()]
        squares = sum((sum(a * c for a, c in zip(row, w)) + b - t) ** 2
                      for row, t in zip(rows, targets))
        losses.append(float(squares / (2 * len(targets))))
    return np.array(losses)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("y_offset, x_offset", [(1e4, 0.0), (1e6, 0.0), (1e8, 0.0),
                                                (1e6, 1e6)])
def test_gram_mode_losses_are_exact_under_large_offsets(dtype, y_offset, x_offset):
    """With y ≈ 1e6 (1e8), Gram mode's loss was 2e-9 (8e-9) off the exact one: the stored
    means are rounded, and the moments' first moments about them (S·ulp(ȳ)/2, not 0) were
    left out; with a column of X near 1e6 too, 5e-7.  Every epoch's loss is now the exact J
    at that epoch's parameters to 1e-10, float32 data included (its moments are float64),
    and every epoch is a Gram epoch: not one falls back to a pass over the data (the offset's
    rounding, bounded, is below the loss's 1e-10; a column near 1e6 makes the offset a small
    sum of large terms, formed again in long double where that bound is not met)."""
    from gdcore import _core
    from gdcore._precompute import augmented_gram
    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 4))
    y = (X @ [1.0, -2.0, 0.5, 3.0] + y_offset + 0.1 * rng.normal(size=200)).astype(dtype)
    X = X.astype(dtype)
    options = dict(optimizer="gd", lr=0.5, epochs=40, tol=None)
    params = []
    fit = gdcore.fit(X, y, precompute=True, **options,
                     callback=lambda p: params.append(np.append(p.coef, p.intercept)))
    thetas = [np.zeros(5, dtype=dtype)] + params[:-1]       # the parameters of each epoch
    losses = fit.loss_history
    if x_offset:
        # the same residuals with a column near 1e6 (whose fit lr 0.5 would not suit)
        X = X.copy()
        X[:, 3] += dtype(x_offset)
        thetas = [np.append(t[:4], t[4] - x_offset * np.float64(t[3])).astype(dtype)
                  for t in thetas]
        losses = [gdcore.fit(X, y, precompute=True, optimizer="gd", lr=1e-20, epochs=1,
                             tol=None, init=(t[:4], t[4])).loss_history[0] for t in thetas]
    np.testing.assert_allclose(losses, exact_losses(X, y, thetas), rtol=1e-10, atol=0)
    gram = augmented_gram(X, y)
    assert all(_core.gram_sums(gram, t)[1] for t in thetas)
    if not x_offset:            # and a fit over chunks reads them once, for the Gram matrix
        passes = []

        def source():
            passes.append(1)
            return iter([(X[:120], y[:120]), (X[120:], y[120:])])
        chunked = gdcore.fit_chunks(source, precompute=True, **options)
        assert len(passes) == 1
        np.testing.assert_allclose(chunked.loss_history, losses, rtol=1e-10, atol=0)


@pytest.mark.parametrize("noise", [1e-3, 1e-5])
@pytest.mark.parametrize("weighted", [False, True])
def test_gram_mode_losses_of_a_near_exact_fit_are_the_streaming_ones(noise, weighted):
    """With R² within ~1e-7 of 1, Gram mode's Σrᵢ² is a difference of terms ~1e7 to 1e11 times
    larger, so its rounding alone was ~1e-7 to 1e-5 of the loss (rtol 1e-10 is the
    contract): such epochs take their sums from a pass over the data, in gdcore.fit and in
    fit_chunks, and the whole trajectory is the NumPy reference's."""
    X, y, _ = gdcore.make_regression(20000, 20, noise=noise, intercept=3.0, seed=0)
    weights = np.random.default_rng(1).uniform(0.5, 1.5, len(y)) if weighted else None
    options = dict(optimizer="gd", lr=0.9, epochs=40, tol=None, sample_weight=weights)
    reference = gdcore.fit(X, y, backend="numpy", **options)
    assert reference.final_loss < 1e-4 * np.var(y)     # near exact: 1 − R² ≈ 2·J / var(y)
    gram = gdcore.fit(X, y, precompute=True, **options)
    np.testing.assert_allclose(gram.loss_history, reference.loss_history, rtol=1e-10)
    np.testing.assert_allclose(gram.coef, reference.coef, rtol=1e-10)
    pieces = [(X[i:i + 5000], y[i:i + 5000]) + ((weights[i:i + 5000],) if weighted else ())
              for i in range(0, len(y), 5000)]
    options.pop("sample_weight")
    chunked = gdcore.fit_chunks(pieces, precompute=True, **options)
    np.testing.assert_allclose(chunked.loss_history, reference.loss_history, rtol=1e-10)



@pytest.mark.parametrize("weighted", [False, True])
def test_gram_mode_losses_with_large_cancelling_coefficients_are_the_streaming_ones(weighted):
    """Two nearly collinear columns fitted by coefficients of ±1e6: (Cw − c)ⱼ is then a
    difference of terms ~1e6 times larger, and wᵀ(Cw − c) carries their rounding times |w|,
    which the precision test (a share of |wᵀ(Cw − c)|, after the cancellation) did not see:
    Gram mode's loss read 17% off the exact one (rtol 1e-10 is the contract).  Such epochs
    take their sums from a pass over the data, in gdcore.fit and in fit_chunks."""
    rng = np.random.default_rng(0)
    n = 20000
    x0 = rng.standard_normal(n)
    X = np.column_stack([x0, x0 + 1e-6 * rng.standard_normal(n), rng.standard_normal(n)])
    y = X @ [1e6, -1e6, 1.0] + 0.1 * rng.standard_normal(n)
    weights = rng.uniform(0.5, 1.5, n) if weighted else None
    solution, *_ = np.linalg.lstsq(np.column_stack([X, np.ones(n)]), y, rcond=None)
    options = dict(optimizer="gd", lr=0.5, epochs=5, tol=None, sample_weight=weights,
                   init=(solution[:3], solution[3]))
    reference = gdcore.fit(X, y, backend="numpy", **options)
    gram = gdcore.fit(X, y, precompute=True, **options)
    np.testing.assert_allclose(gram.loss_history, reference.loss_history, rtol=1e-10)
    np.testing.assert_allclose(gram.coef, reference.coef, rtol=1e-10)
    pieces = [(X[i:i + 5000], y[i:i + 5000]) + ((weights[i:i + 5000],) if weighted else ())
              for i in range(0, n, 5000)]
    options.pop("sample_weight")
    chunked = gdcore.fit_chunks(pieces, precompute=True, **options)
    np.testing.assert_allclose(chunked.loss_history, reference.loss_history, rtol=1e-10)

def assert_first_moments(packed, z, s):
    """The last row holds Σ sᵢ(zᵢ − z̄) about the stored (rounded) means z̄, exactly but for
    the rounding of terms the size of the spread (not of the means): checked against rational
    arithmetic on the float64 values."""
    from fractions import Fraction
    k = z.shape[1]
    means = [Fraction(v) for v in packed[:k, k].tolist()]
    weights = [Fraction(v) for v in s.tolist()]
    exact = [float(sum(w * (Fraction(v) - m) for w, v in zip(weights, column)))
             for column, m in zip(z.T.tolist(), means)]
    spread = np.abs(z - packed[:k, k]).T @ s
    np.testing.assert_allclose(packed[k, :k], exact, rtol=0, atol=1e-14 * spread.max())


def test_gram_mode_moments_merge_as_one_pass():
    """The packed means and centred moments, formed from blocks (chunks of several sizes, one
    of weight 0) and merged, are those of all rows at once, and equal NumPy's weighted
    covariance formed directly."""
    from gdcore._precompute import augmented_gram, merge_grams
    rng = np.random.default_rng(5)
    X = rng.normal(size=(700, 4)) * [1.0, 10.0, 1e-3, 1.0] + [0.0, 5e5, 0.0, -3.0]
    y = X @ [1.0, -2.0, 3.0, 0.5] + 2e6
    s = rng.uniform(0.0, 2.0, 700)
    s[100:200] = 0.0
    whole = augmented_gram(X, y, s)
    cuts = [0, 13, 100, 200, 450, 700]
    merged = augmented_gram(X[:13], y[:13], s[:13])
    for lo, hi in zip(cuts[1:-1], cuts[2:]):
        merged = merge_grams(merged, augmented_gram(X[lo:hi], y[lo:hi], s[lo:hi]))
    z = np.column_stack([X, y])
    mean = s @ z / s.sum()
    moments = (z - mean).T @ ((z - mean) * s[:, None])
    for packed in (whole, merged):
        assert packed[5, 5] == pytest.approx(s.sum(), rel=1e-14)
        np.testing.assert_allclose(packed[:5, 5], mean, rtol=1e-13)
        assert_first_moments(packed, z, s)
        np.testing.assert_allclose(packed[:5, :5], moments, rtol=1e-9,
                                   atol=1e-9 * np.abs(moments).max())


@pytest.mark.parametrize("weighted", [False, True])
def test_gram_mode_blocks_merge_in_place(monkeypatch, weighted):
    """augmented_gram merges its row blocks into one matrix in place: with blocks of 64 rows
    (a leading block of weight 0 and one in the middle, when weighted) it forms the moments
    NumPy forms from all rows at once."""
    import gdcore._precompute as precompute
    monkeypatch.setattr(precompute, "_BLOCK_BYTES", 64 * 8 * 4)   # 64 rows of d + 1 = 4
    rng = np.random.default_rng(11)
    X = rng.normal(size=(1000, 3)) * [1.0, 100.0, 1e-2] + [7.0, -4e4, 0.0]
    y = X @ [2.0, 0.5, -1.0] + 3e5 + rng.normal(size=1000)
    s = rng.uniform(0.1, 3.0, 1000) if weighted else np.ones(1000)
    if weighted:
        s[:64] = 0.0
        s[320:384] = 0.0
    packed = precompute.augmented_gram(X, y, s if weighted else None)
    z = np.column_stack([X, y])
    mean = s @ z / s.sum()
    moments = (z - mean).T @ ((z - mean) * s[:, None])
    assert packed[4, 4] == pytest.approx(s.sum(), rel=1e-14)
    np.testing.assert_allclose(packed[:4, 4], mean, rtol=1e-12)
    assert_first_moments(packed, z, s)
    np.testing.assert_allclose(packed[:4, :4], moments, rtol=1e-9,
                               atol=1e-9 * np.abs(moments).max())


def test_gram_overflow_streams_or_is_refused():
    """A column near 1e155 overflows the moments (not the loss): "auto", a choice of speed,
    streams and fits as precompute=False does; precompute=True (fit and fit_chunks) is
    refused with a ValueError before any epoch."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2))
    X[:, 1] *= 1e155
    y = X[:, 0] * 2 + 1
    options = dict(optimizer="adam", lr=0.05, epochs=200)
    auto = gdcore.fit(X, y, precompute="auto", **options)
    streaming = gdcore.fit(X, y, precompute=False, **options)
    np.testing.assert_array_equal(auto.coef, streaming.coef)
    np.testing.assert_array_equal(auto.loss_history, streaming.loss_history)
    with pytest.raises(ValueError, match="precompute=True.*overflows"):
        gdcore.fit(X, y, precompute=True, **options)
    with pytest.raises(ValueError, match="precompute=True.*overflows"):
        gdcore.fit_chunks([(X[:25], y[:25]), (X[25:], y[25:])], precompute=True, **options)


def test_precompute_validation(data):
    X, y, _ = data
    with pytest.raises(ValueError,
                       match="precompute must be one of True, False, 'auto'; got 'yes'"):
        gdcore.fit(X, y, precompute="yes")
    with pytest.raises(ValueError, match=r"precompute=True needs a full-batch fit \(batch_size="
                                         r"None\); got batch_size=32 < n_samples=3000"):
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
@pytest.mark.parametrize("prefetch_bytes, nontemporal", [(0, False), (12800, False),
                                                         (12800, True)])
def test_bandwidth_probe_sums_what_it_reads(dtype, n_threads, prefetch_bytes, nontemporal):
    """The bench's read probe (gdcore._core.stream_sum) must read every value once, with its
    prefetching on or off, with either hint: its sum is NumPy's (lengths around the lanes and
    the prefetch distance, so the tails and the last prefetched steps are reached)."""
    rng = np.random.default_rng(n_threads)
    for n in (0, 1, 15, 16, 17, 1000, 1601, 3201, 100_003):
        values = rng.standard_normal(n).astype(dtype)
        expected = float(np.sum(values.astype(np.float64)))
        got = gdcore._core.stream_sum(values, n_threads, prefetch_bytes, nontemporal)
        assert got == pytest.approx(expected, rel=1e-5 if dtype == np.float32 else 1e-12,
                                    abs=1e-3 if dtype == np.float32 else 1e-9)
