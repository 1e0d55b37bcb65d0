"""Side-by-side benchmarks: gdcore against the machine's read bandwidth, its own NumPy
reference, scikit-learn's SGDRegressor and torch.optim, in one process on the same data.

Every number is a ratio of two timings taken in the same run, so machine noise mostly
cancels; each timing is the best of a few repeats (per-epoch times are read from a callback
clock, so input validation and set-up are not counted).  ``gdcore bench`` prints the table;
``run_benchmarks()`` returns it for ``benches/`` and for JSON output.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.metadata
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import __version__, _core, build_info, fit, make_regression
from ._precompute import _memory_limit
from ._validation import resolve_n_threads


@dataclass
class Comparison:
    name: str
    gdcore_seconds: float | None     # None: the row was not run (see its note)
    baseline: str
    baseline_seconds: float | None
    target: float            # the ratio baseline / gdcore that should be reached
    note: str = ""
    counted: bool = True     # False: shown beside a target's row, not one of the targets
    # A condition the target also sets besides the ratio (SGD's final loss within 5% of
    # scikit-learn's, Gram mode's results equal to streaming's): None when there is none.
    condition_met: bool | None = None
    numbers: dict = field(default_factory=dict)     # the note's figures, for the JSON

    @property
    def ratio(self):
        if self.baseline_seconds is None or not self.gdcore_seconds:   # None: not run
            return None
        return self.baseline_seconds / self.gdcore_seconds

    @property
    def met(self):
        if self.ratio is None:
            return None
        return self.ratio >= self.target and self.condition_met is not False

    def as_dict(self):
        out = asdict(self)
        out.update(ratio=self.ratio, met=self.met)
        return out


@contextlib.contextmanager
def quiet_blas():
    """While gdcore is timed, hold NumPy's BLAS to one thread: after a BLAS call (data
    generation, a baseline) OpenBLAS's idle workers busy-wait for a while and would compete
    with gdcore's OpenMP threads for the cores.  gdcore itself does not use BLAS in these
    timings.  Without threadpoolctl this does nothing."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


# After a baseline that used BLAS or torch threads, their idle workers busy-wait for up to
# ~0.1 s (OpenBLAS) before sleeping; the next timing waits this long so they are not
# competing with it for the cores.
SETTLE_SECONDS = 0.5


def _settle():
    time.sleep(SETTLE_SECONDS)


def _settled(function):
    """function, followed by _settle() so its BLAS threads are asleep before the next timing."""
    def timed():
        seconds = function()
        _settle()
        return seconds
    return timed


def _problem(rows, width, seed):
    """make_regression with BLAS held to one thread, so no BLAS worker is left spinning."""
    with quiet_blas():
        return make_regression(rows, width, seed=seed)


def _best(function, repeats):
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def epoch_seconds(X, y, repeats=3, fastest=False, **options):
    """Seconds per epoch of a fit: the median gap between clock readings at each epoch's end
    (so set-up and validation are excluded), best of ``repeats`` fits.  ``fastest`` takes the
    shortest gap instead of the median, to set against a probe timed as its best reading."""
    blas = contextlib.nullcontext() if options.get("backend") == "numpy" else quiet_blas()
    statistic = np.min if fastest else np.median
    with blas:
        return min(_epoch_gap(X, y, statistic, options) for _ in range(repeats))


def _epoch_gap(X, y, statistic, options):
    stamps = []
    fit(X, y, callback=lambda progress: stamps.append(time.perf_counter()) and False,
        **options)
    if len(stamps) < 2:
        raise ValueError("epoch_seconds needs at least 2 epochs")
    return float(statistic(np.diff(stamps)))


def paired_seconds(first, second, rounds):
    """(first(), second()) timed alternately for ``rounds`` rounds: the pair from the round
    whose ratio is the median.  Timings next to each other see the same machine: on a
    shared machine the memory bandwidth moves by a third from one second to the next, and
    a ratio of timings taken apart would measure that instead."""
    pairs = [(first(), second()) for _ in range(rounds)]
    pairs.sort(key=lambda pair: pair[0] / pair[1])
    return pairs[len(pairs) // 2]


# The probe's reads are also tried with software prefetching this far ahead (the distance
# the kernels use for float32 and short rows): on this project's CI machine two threads read
# ~10% more that way when the memory is slow, and the yardstick must be the fastest read.
PROBE_PREFETCH_BYTES = 12800


def probe_seconds(X, n_threads, repeats):
    """Seconds for the probe (a threaded sum in vector registers) to read all of X once with
    n_threads threads: the best of ``repeats`` plain reads and ``repeats`` of each
    prefetching one (with the kernels' locality hint and with the non-temporal hint)."""
    flat = X.reshape(-1)
    reads = [(0, False), (PROBE_PREFETCH_BYTES, False), (PROBE_PREFETCH_BYTES, True)]
    with quiet_blas():
        return min(_best(lambda ahead=ahead, nt=nt: _core.stream_sum(flat, n_threads, ahead, nt),
                         repeats)
                   for ahead, nt in reads)


def read_bandwidth(X, n_threads, repeats=5):
    """Seconds for the probe to read all of X once: the best over one thread and n_threads
    threads, so the yardstick is the fastest read this machine managed."""
    return min(probe_seconds(X, k, repeats) for k in sorted({1, max(1, n_threads)}))


def available_memory():
    """Bytes of memory available on this machine (/proc/meminfo's MemAvailable; a container's
    limit is not counted here, see refuse_past_memory), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def rows_that_fit(n, d, itemsize=8, share=0.6):
    """n, or fewer rows if an n × d array would take more than ``share`` of the available
    memory (d = 1000 at n = 1,000,000 is 8 GB in float64)."""
    available = available_memory()
    if available is None or n * d * itemsize <= share * available:
        return n
    return max(1000, int(share * available) // (d * itemsize))


NO_TORCH = "torch not installed (or it does not import)"


@functools.lru_cache(maxsize=None)
def baseline_available(module):
    """Whether a baseline's package imports (installed but failing to import counts as not
    installed: its rows show n/a instead of failing after minutes of timing)."""
    try:
        importlib.import_module(module)
    except Exception:   # ImportError, or whatever a broken installation raises
        return False
    return True


def check_fits_in_memory(n, d):
    """A ValueError naming --n and --d if the main problem would not fit: X in float64 and its
    float32 copy (12 bytes a value) and the Gram matrix (the bandwidth rows shrink their own
    arrays to fit; see rows_that_fit)."""
    refuse_past_memory(n, d, 12 * n * d + 3 * 8 * (d + 2) ** 2,
                       "X in float64 and float32, the Gram matrix")


def refuse_past_memory(n, d, needed, what):
    """A ValueError naming --n and --d if ``needed`` bytes (``what`` they hold) are more than
    80% of the available memory, or of the container's limit where lower: an allocation
    fails only past the machine's commit limit, and below it the arrays are filled until the
    OOM killer ends this process, or another."""
    known = [m for m in (available_memory(), _memory_limit()) if m is not None]
    if known and needed > 0.8 * min(known):
        raise ValueError(f"--n {n} --d {d} needs ~{needed / 1e9:.1f} GB ({what}), but "
                         f"{min(known) / 1e9:.1f} GB are available: use a smaller --n or --d")


def _sklearn_sgd_epoch(X, y, lr, seed):
    try:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import SGDRegressor
    except ImportError:
        return None, None
    model = SGDRegressor(max_iter=1, tol=None, penalty=None, learning_rate="constant",
                         eta0=lr, shuffle=True, random_state=seed, average=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        started = time.perf_counter()
        model.fit(X, y)
        seconds = time.perf_counter() - started
    return seconds, _mse(X, y, model.coef_, model.intercept_[0])


def _mse(X, y, coef, intercept):
    """Mean squared error of a fit, with BLAS on one thread: no BLAS worker is left spinning
    into the next timing."""
    with quiet_blas():
        return float(np.mean((X @ coef + intercept - y) ** 2))


def _torch_adam(X, y, lr, n_threads, batch_size=None, epochs=3):
    """Seconds per full-batch step, or per mini-batch epoch, of torch.optim.Adam on a
    torch.nn.Linear with the same loss (half the mean squared error)."""
    import torch
    features = torch.from_numpy(X)
    targets = torch.from_numpy(y)
    model = torch.nn.Linear(X.shape[1], 1, dtype=features.dtype)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def step(rows=None):
        xb = features if rows is None else features[rows]
        yb = targets if rows is None else targets[rows]
        optimizer.zero_grad()
        loss = 0.5 * torch.mean((model(xb).squeeze(1) - yb) ** 2)
        loss.backward()
        optimizer.step()

    def epoch():
        perm = torch.randperm(X.shape[0])
        for start in range(0, X.shape[0], batch_size):
            step(perm[start:start + batch_size])

    # torch's best over one thread and n_threads, as the probe's: its many small parallel
    # operations can lose to contention where one thread does not
    best = float("inf")
    for threads in sorted({1, max(1, n_threads)}):
        torch.set_num_threads(threads)
        if batch_size is None:
            step()
            best = min(best, _best(step, epochs * 2))
        else:
            for _ in range(8):      # warm-up steps, as gdcore's first epoch is not timed
                step(torch.randint(X.shape[0], (batch_size,)))
            best = min(best, _best(epoch, epochs))
    torch.set_num_threads(max(1, n_threads))
    return best


def _against_torch(gdcore_seconds, torch_seconds, rounds):
    """(gdcore, torch) seconds from alternating rounds (see paired_seconds), or (gdcore, None)
    without torch.  torch's threads are given time to go idle after each of its timings."""
    if not baseline_available("torch"):
        return gdcore_seconds(), None
    return paired_seconds(gdcore_seconds, _settled(torch_seconds), rounds)


def _bandwidth_comparisons(n, width, threads, full, rounds, seed):
    """A full-batch epoch at d = width against the bandwidth probe (and, at d = 10, two
    threads against one), each timed in alternating rounds."""
    rows = rows_that_fit(n, width)
    X, y, _ = _problem(rows, width, seed)
    epochs = 4 if width > 100 else 6
    # Both sides are their fastest reading of the round: the probe's best of its repeats,
    # the epoch's shortest gap.
    probe, epoch = paired_seconds(
        lambda: read_bandwidth(X, threads, repeats=3),
        lambda: epoch_seconds(X, y, 1, fastest=True, epochs=epochs, **full), rounds)
    note = f"{X.nbytes / epoch / 1e9:.1f} GB/s"
    if rows < n:
        note += f"; {rows:,} rows: {n:,} would not fit in the available memory"
    out = [Comparison(f"full-batch epoch d={width} ({rows:,} rows) vs read of X", epoch,
                      f"bandwidth probe {X.nbytes / probe / 1e9:.1f} GB/s", probe, 0.8,
                      note=note, numbers=dict(rows=rows, bytes_of_X=X.nbytes,
                                              epoch_gb_per_s=X.nbytes / epoch / 1e9,
                                              probe_gb_per_s=X.nbytes / probe / 1e9))]
    if width == 10 and threads < 2:
        out.append(Comparison("full-batch epoch d=10, 2 threads vs 1", None,
                              "1 thread", None, 1.7,
                              note=f"not run: n_threads={threads} asks for one thread"))
    elif width == 10:
        one, two = paired_seconds(
            lambda: epoch_seconds(X, y, 1, epochs=6, **dict(full, n_threads=1)),
            lambda: epoch_seconds(X, y, 1, epochs=6, **dict(full, n_threads=2)), rounds)
        # What the machine allows: an epoch that already reads at one core's bandwidth can
        # only gain what a second core adds to the read, so the probe's own ratio is shown.
        probe_one, probe_two = paired_seconds(lambda: probe_seconds(X, 1, 3),
                                              lambda: probe_seconds(X, 2, 3), rounds)
        out.append(Comparison("full-batch epoch d=10, 2 threads vs 1", two, "1 thread", one,
                              1.7, note=f"1 thread at {X.nbytes / one / 1e9:.1f} GB/s; the "
                              f"probe's 2 threads vs 1: {probe_one / probe_two:.2f}x",
                              numbers=dict(one_thread_gb_per_s=X.nbytes / one / 1e9,
                                           probe_two_vs_one=probe_one / probe_two)))
    return out


def run_benchmarks(n=1_000_000, d=100, n_threads=None, quick=False, seed=0, log=print):
    """Run every comparison of the performance issue; returns a list of Comparison."""
    threads = resolve_n_threads(n_threads)
    check_fits_in_memory(n, d)
    repeats = 2 if quick else 3
    out = []

    def add(comparison):
        out.append(comparison)
        if log is not None:
            log(format_row(comparison))

    if log is not None:
        log(format_header())
    full = dict(optimizer="gd", lr=0.1, tol=None, n_threads=threads, precompute=False)
    rounds = 3 if quick else 5
    # Full-batch epochs against the read bandwidth, for three widths.
    for width in (10, 100, 1000):
        for comparison in _bandwidth_comparisons(n, width, threads, full, rounds, seed):
            add(comparison)

    X, y, _ = _problem(n, d, seed)
    core_epoch, numpy_epoch = paired_seconds(
        lambda: epoch_seconds(X, y, 1, epochs=6, **full),
        _settled(lambda: epoch_seconds(X, y, 1, epochs=4, backend="numpy", **full)), rounds)
    add(Comparison(f"full-batch epoch {n:,}x{d}", core_epoch, "NumPy reference backend",
                   numpy_epoch, 2.5))

    X32, y32 = X.astype(np.float32), y.astype(np.float32)
    f64_epoch, f32_epoch = paired_seconds(lambda: epoch_seconds(X, y, 1, epochs=6, **full),
                                          lambda: epoch_seconds(X32, y32, 1, epochs=6, **full),
                                          rounds)
    add(Comparison(f"full-batch epoch {n:,}x{d} float32", f32_epoch, "same in float64",
                   f64_epoch, 1.8))
    X32 = y32 = None    # free them before the next arrays are made

    # Each fit is one epoch from the same start (the same seed, so the same result): the
    # pair of the median round, as for the bandwidth rows; one timing alone is at the mercy
    # of whatever else the machine runs in that second.
    lr_sgd = 0.001
    sgd_mses, sk_mses = [], []     # one a round (the same fit each time)

    def gdcore_sgd():
        with quiet_blas():
            started = time.perf_counter()
            sgd = fit(X, y, optimizer="sgd", lr=lr_sgd, epochs=1, batch_size=1, tol=None,
                      seed=seed, n_threads=threads)
            seconds = time.perf_counter() - started
        sgd_mses.append(_mse(X, y, sgd.coef, sgd.intercept))
        return seconds

    def sklearn_sgd():
        seconds, mse = _sklearn_sgd_epoch(X, y, lr_sgd, seed)
        sk_mses.append(mse)
        return seconds

    # the module the baseline uses: sklearn itself can import where it does not (scipy)
    if not baseline_available("sklearn.linear_model"):
        sgd_seconds, sk_seconds = gdcore_sgd(), None
    else:
        sgd_seconds, sk_seconds = paired_seconds(gdcore_sgd, sklearn_sgd, rounds)
    sgd_mse, sk_mse = sgd_mses[-1], sk_mses[-1] if sk_mses else None
    _settle()
    if sk_seconds is None:
        note, within, numbers = "scikit-learn not installed (or it does not import)", None, {}
    else:
        # the target holds only at a final loss within 5% of scikit-learn's
        within = abs(sgd_mse / sk_mse - 1) <= 0.05
        note = (f"MSE {sgd_mse:.4g} vs {sk_mse:.4g} ({100 * (sgd_mse / sk_mse - 1):+.1f}%"
                + (", within 5%)" if within else ": NOT within 5%)")
                + (f"; gdcore's finite check on {threads} threads, scikit-learn's on one"
                   if threads > 1 else ""))
        numbers = dict(mse_gdcore=sgd_mse, mse_sklearn=sk_mse)
    add(Comparison("SGD batch_size=1 epoch", sgd_seconds, "sklearn SGDRegressor max_iter=1",
                   sk_seconds, 4.0, note=note, condition_met=within, numbers=numbers))

    # torch's step is its best of several: gdcore's is its shortest epoch gap, likewise.  Both
    # Adam comparisons are timed in alternating rounds, as the rows above.
    adam = dict(optimizer="adam", lr=0.01, tol=None, n_threads=threads)
    adam_step, torch_step = _against_torch(
        lambda: epoch_seconds(X, y, 1, fastest=True, epochs=6, precompute=False, **adam),
        lambda: _torch_adam(X, y, 0.01, threads), rounds)
    add(Comparison("Adam full-batch step", adam_step, "torch.optim.Adam + nn.Linear",
                   torch_step, 5.0, note="" if torch_step is not None else NO_TORCH))
    adam_epoch, torch_epoch = _against_torch(
        lambda: epoch_seconds(X, y, 1, epochs=3, batch_size=256, seed=seed, **adam),
        lambda: _torch_adam(X, y, 0.01, threads, batch_size=256, epochs=1), min(rounds, 3))
    add(Comparison("Adam mini-batch 256 epoch", adam_epoch, "torch mini-batch loop",
                   torch_epoch, 10.0,
                   note="" if torch_epoch is not None else NO_TORCH))

    epochs_gram = 1000
    gram_options = dict(optimizer="gd", lr=0.1, tol=None, n_threads=threads)
    # The Gram fit (BLAS forms the matrix) beside streaming epochs timed in the same round:
    # 1000 streamed epochs would take ~20 s a round, so streaming is 1000 x its epoch then.
    gram, streamed_epoch = paired_seconds(
        _settled(lambda: _best(lambda: fit(X, y, epochs=epochs_gram, precompute=True,
                                           **gram_options), 1)),
        lambda: epoch_seconds(X, y, 1, epochs=6, **full), min(rounds, 3))
    equal, numbers = _gram_equals_streaming(X, y, gram_options)
    add(Comparison(f"{epochs_gram} full-batch epochs, Gram mode", gram,
                   f"streaming ({epochs_gram} x measured epoch)", epochs_gram * streamed_epoch,
                   10.0,
                   note=("results equal streaming's (rtol 1e-8, first 10 epochs)" if equal else
                         "results NOT equal to streaming's (rtol 1e-8, first 10 epochs)"),
                   condition_met=equal, numbers=numbers))
    X = y = None

    # Small problems against overhead: the same streaming epochs on both sides.  The default
    # (precompute="auto") picks Gram mode here, a different algorithm from the reference's,
    # so it is shown beside the target, not counted for it.
    Xs, ys, _ = _problem(1000, 10, seed)
    small = dict(optimizer="gd", lr=0.1, epochs=1000, tol=None, n_threads=threads)
    numpy_small = _best(lambda: fit(Xs, ys, backend="numpy", **small), repeats)
    _settle()
    with quiet_blas():
        streaming_small = _best(lambda: fit(Xs, ys, precompute=False, **small), repeats)
    add(Comparison("1000 epochs at 1000x10, streaming X", streaming_small,
                   "NumPy reference backend", numpy_small, 20.0))
    with quiet_blas():
        core_small = _best(lambda: fit(Xs, ys, **small), repeats)
    add(Comparison("1000 epochs at 1000x10 (default: Gram mode)", core_small,
                   "NumPy reference backend", numpy_small, 20.0, counted=False,
                   note="not counted: Gram mode, where the reference streams X"))
    return out


def _gram_equals_streaming(X, y, options, epochs=10, rtol=1e-8):
    """Whether Gram mode's loss history and coefficients equal streaming's over the first
    epochs (the timed 1000-epoch runs would take ~30 s more to repeat streaming), and the
    largest relative differences."""
    with quiet_blas():
        gram = fit(X, y, epochs=epochs, precompute=True, **options)
        streaming = fit(X, y, epochs=epochs, precompute=False, **options)
    _settle()

    def largest_relative(a, b):
        a, b = np.append(a, 0.0), np.append(b, 0.0)
        return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))
    numbers = dict(loss_rel_diff=largest_relative(gram.loss_history, streaming.loss_history),
                   coef_rel_diff=largest_relative(np.append(gram.coef, gram.intercept),
                                                  np.append(streaming.coef,
                                                            streaming.intercept)))
    equal = (np.allclose(gram.loss_history, streaming.loss_history, rtol=rtol, atol=0)
             and np.allclose(gram.coef, streaming.coef, rtol=rtol, atol=1e-12)
             and np.isclose(gram.intercept, streaming.intercept, rtol=rtol, atol=1e-12))
    return bool(equal), numbers


def summarize(comparisons):
    """The closing line: how many targets were met, and which were missed or not run."""
    targets = [c for c in comparisons if c.counted]
    judged = [c for c in targets if c.met is not None]
    missed = [c.name for c in judged if not c.met]
    line = f"targets met: {len(judged) - len(missed)} of {len(judged)}"
    if missed:
        line += "; missed: " + "; ".join(missed)
    skipped = len(targets) - len(judged)
    if skipped:
        line += f"; {skipped} not run (see their notes)"
    return line


def format_header():
    return (f"{'benchmark':<56}{'gdcore s':>10}  {'baseline':<38}{'baseline s':>11}"
            f" {'ratio':>9}{'target':>8}  note")


def shown_ratio(c):
    """c's ratio to two decimals, or as many more as a ratio below its target needs not to
    read as reaching it (0.7999 against 0.8 is 0.7999x, not 0.80x)."""
    if c.ratio is None:
        return "n/a"
    for decimals in range(2, 17):
        shown = f"{c.ratio:.{decimals}f}"
        if c.ratio >= c.target or float(shown) < c.target:
            break
    return shown + "x"


def format_row(c):
    ratio = shown_ratio(c)
    base = "n/a" if c.baseline_seconds is None else f"{c.baseline_seconds:.4g}"
    own = "n/a" if c.gdcore_seconds is None else f"{c.gdcore_seconds:.4g}"
    if c.met is None:
        met = ""
    elif c.counted:
        met = " ok" if c.met else " MISSED"
    else:
        met = " (ok)" if c.met else " (below)"
    return (f"{c.name:<56}{own:>10}  {c.baseline:<38}{base:>11}"
            f" {ratio:>9}{'>=' + format(c.target, 'g') + 'x':>8}{met}  {c.note}")


def _cpuinfo():
    """The first processor's fields of /proc/cpuinfo (Linux), or {}."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def _vector_extensions(flags):
    for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"),
                       ("sve", "SVE"), ("asimd", "NEON"), ("sse2", "SSE2")):
        if flag in flags:
            return name
    return None


def _caches():
    """{"L1d": "32K", "L2": "1024K", ...} for the first CPU (Linux sysfs), or {}."""
    caches = {}
    root = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return caches
    def field(entry, name):
        with open(os.path.join(root, entry, name)) as f:
            return f.read().strip()

    for entry in entries:
        if not entry.startswith("index"):
            continue
        try:
            level, kind, size = (field(entry, name) for name in ("level", "type", "size"))
        except OSError:
            continue
        if kind != "Instruction":
            caches[f"L{level}" + ("d" if kind == "Data" else "")] = size
    return caches


def machine_description():
    """What the ratios depend on: the CPU (its family and model tell microarchitectures
    apart, e.g. AMD Zen 4 is family 25 and Zen 5 family 26), its vector extensions and
    caches, and how the core was built."""
    info, core = _cpuinfo(), build_info()
    cpu = (info.get("model name") or info.get("Model") or platform.processor()
           or platform.machine())
    return {"cpu": cpu, "cpu_family": info.get("cpu family"), "cpu_model": info.get("model"),
            "vector": _vector_extensions(set(info.get("flags", info.get("Features", "")).split())),
            "caches": _caches(), "cores": os.cpu_count(), "python": platform.python_version(),
            "gdcore": __version__, "gdcore_commit": _git_commit(), "numpy": np.__version__,
            "scikit-learn": _version_of("scikit-learn"),
            "torch": _version_of("torch"), "openmp": _core.openmp_enabled(),
            "core": core["core"], "core_flags": core["flags"],
            "prefetch_locality": _core.prefetch_locality()}


def _git_commit():
    """The commit of the source tree gdcore runs from (an editable install in a git
    checkout), or None."""
    import subprocess

    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=5,
                              cwd=os.path.dirname(os.path.abspath(__file__)))
    try:
        # Only a checkout that tracks this very file: an installed gdcore under a virtual
        # environment inside some other repository (a project's .venv) is not that commit.
        if git("ls-files", "--error-unmatch", "__init__.py").returncode != 0:
            return None
        out = git("rev-parse", "--short", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _version_of(distribution):
    """The installed version of a baseline's package, or None (without importing it)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe_machine(machine):
    """One line for the top of the table."""
    details = []
    if machine.get("cpu_family") is not None:
        details.append(f"family {machine['cpu_family']} model {machine['cpu_model']}")
    if machine.get("vector"):
        details.append(machine["vector"])
    if machine.get("caches"):
        details.append(" ".join(f"{level} {size}" for level, size in machine["caches"].items()))
    cpu = machine["cpu"] + (f" ({'; '.join(details)})" if details else "")
    versions = ", ".join(f"{name} {machine.get(name) or 'not installed'}"
                         for name in ("gdcore", "numpy", "scikit-learn", "torch"))
    core = (f"core {machine['core']} ({machine['core_flags']})" if machine.get("core_flags")
            else f"core {machine.get('core')}")
    return (f"{cpu}, {machine['cores']} cores, OpenMP {'on' if machine['openmp'] else 'off'}, "
            f"prefetch locality {machine['prefetch_locality']}, {core}; {versions}")


def write_json(path, comparisons, settings):
    from ._atomic import replaced_on_success      # an earlier file stays until this one is whole
    with replaced_on_success(path) as f:
        json.dump({"machine": machine_description(), "settings": settings,
                   "results": [c.as_dict() for c in comparisons],
                   "summary": summarize(comparisons)}, f, indent=2)
