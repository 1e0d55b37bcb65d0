"""Same seed and thread count: the same bits.  Different thread counts: the same up to
rounding."""

import threading

import numpy as np
import pytest

import gdcore

from conftest import problem


def run(X, y, **options):
    r = gdcore.fit(X, y, tol=None, **options)
    return np.concatenate([r.loss_history, r.coef, [r.intercept]])


@pytest.fixture(scope="module")
def big():
    # large enough that a pass is cut between threads (n·(d+1) ≥ 32768)
    X, y, _ = problem(n=20000, d=10)
    return X, y


# Full-batch fits in both modes, asked for explicitly (precompute="auto" would pick Gram
# mode here, whose epochs never stream X); mini-batches always stream.
MODES = {"full-streaming": dict(batch_size=None, precompute=False),
         "full-gram": dict(batch_size=None, precompute=True),
         "mini-64": dict(batch_size=64),
         "mini-8192": dict(batch_size=8192)}


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("mode", MODES)
def test_bitwise_repeatable(big, n_threads, mode):
    X, y = big
    options = dict(optimizer="adam", lr=0.01, epochs=3, seed=7, n_threads=n_threads,
                   **MODES[mode])
    assert np.array_equal(run(X, y, **options), run(X, y, **options))


@pytest.mark.parametrize("mode", ["full-streaming", "full-gram", "mini-8192"])
def test_one_and_two_threads_agree(big, mode):
    X, y = big
    options = dict(optimizer="sgd", lr=0.1, epochs=4, seed=3, **MODES[mode])
    np.testing.assert_allclose(run(X, y, n_threads=1, **options),
                               run(X, y, n_threads=2, **options), rtol=1e-12)


def test_seed_controls_the_shuffle(big):
    X, y = big
    a = run(X, y, optimizer="sgd", lr=0.01, epochs=2, batch_size=32, seed=1)
    b = run(X, y, optimizer="sgd", lr=0.01, epochs=2, batch_size=32, seed=2)
    assert not np.array_equal(a, b)
    c = run(X, y, optimizer="sgd", lr=0.01, epochs=2, batch_size=32, seed=1, shuffle=False)
    d = run(X, y, optimizer="sgd", lr=0.01, epochs=2, batch_size=32, seed=2, shuffle=False)
    assert np.array_equal(c, d)


def test_permutation_is_numpys(big):
    """The rows of each epoch follow numpy.random.default_rng(seed).permutation(n)."""
    X, y = big
    X, y = X[:10], y[:10]
    order = np.random.default_rng(4).permutation(10)
    by_hand = gdcore.fit(X[order], y[order], optimizer="sgd", lr=0.05, epochs=1,
                         batch_size=3, shuffle=False, tol=None)
    shuffled = gdcore.fit(X, y, optimizer="sgd", lr=0.05, epochs=1, batch_size=3, seed=4,
                          tol=None)
    np.testing.assert_array_equal(shuffled.coef, by_hand.coef)


@pytest.fixture(scope="module")
def many_rows():
    # enough rows that each epoch's permutation is drawn ahead, on a helper thread
    X, y, _ = problem(n=70000, d=3)
    return X, y


def _epoch_params(X, y, **options):
    params = []
    result = gdcore.fit(X, y, tol=None, callback=lambda p: params.append(
        np.append(p.coef, p.intercept)), **options)
    return np.array(params), result


@pytest.mark.parametrize("batch_size", [1, 512])
def test_permutations_drawn_ahead_are_the_spec_ones(many_rows, batch_size):
    """Each epoch's rows follow default_rng(seed).permutation(n), drawn once per epoch in
    order, however far ahead the core draws them: its trajectory equals the reference's,
    which draws each one when its epoch starts."""
    X, y = many_rows
    options = dict(optimizer="sgd", lr=0.002, batch_size=batch_size, seed=11, n_threads=1)
    epochs = 3 if batch_size > 1 else 2
    if batch_size == 1:
        # The reference's Python loop would take a minute here: the rows are put in each
        # epoch's order by hand instead, and fitted in that order.
        rng = np.random.default_rng(11)
        by_hand, by_hand_epochs = None, []
        for _ in range(epochs):
            order = rng.permutation(len(y))
            by_hand = gdcore.fit(X[order], y[order], optimizer="sgd", lr=0.002, batch_size=1,
                                 shuffle=False, epochs=1, tol=None, init=by_hand, n_threads=1)
            by_hand_epochs.append(np.append(by_hand.coef, by_hand.intercept))
        core, _ = _epoch_params(X, y, epochs=epochs, **options)
        # every epoch's parameters, not only the last: each epoch has its own permutation
        assert core.shape == (epochs, X.shape[1] + 1)
        np.testing.assert_array_equal(core, np.array(by_hand_epochs))
        return
    core, _ = _epoch_params(X, y, epochs=epochs, **options)
    ref, _ = _epoch_params(X, y, epochs=epochs, backend="numpy", **options)
    np.testing.assert_allclose(core, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("stop_after", [1, 2])
def test_a_fit_stopped_early_continues_with_the_same_permutations(many_rows, stop_after):
    """A permutation drawn ahead for an epoch that never runs must not move the generator:
    stopping (here by the callback) and continuing with init= equals one longer fit."""
    X, y = many_rows
    options = dict(optimizer="sgd", lr=0.002, batch_size=256, seed=5, n_threads=1, tol=None)
    whole = gdcore.fit(X, y, epochs=4, **options)
    first = gdcore.fit(X, y, epochs=4, callback=lambda p: p.epoch >= stop_after, **options)
    assert first.n_epochs == stop_after
    rest = gdcore.fit(X, y, epochs=4 - stop_after, init=first, **options)
    np.testing.assert_array_equal(rest.coef, whole.coef)
    assert rest.intercept == whole.intercept
    np.testing.assert_array_equal(rest.loss_history, whole.loss_history)


def test_a_shared_generator_drawn_from_between_epochs_is_not_rewound(many_rows):
    """seed=Generator: the fit draws from the caller's generator.  Draws the callback makes
    from it between epochs are the user's, and the next epoch's permutation comes after them
    (SPEC: perm = rng.permutation(n) as each epoch begins), as in the reference: a
    permutation drawn ahead from a copy of the generator must be thrown away, not let rewind
    the generator and hand out the same numbers twice."""
    X, y = many_rows
    runs = {}
    for backend in ("core", "numpy"):
        rng = np.random.default_rng(123)
        drawn, params = [], []

        def callback(progress, rng=rng, drawn=drawn, params=params):
            params.append(np.append(progress.coef, progress.intercept))
            drawn.append(rng.integers(0, 2**62))

        gdcore.fit(X, y, optimizer="sgd", lr=0.002, batch_size=256, epochs=4, seed=rng,
                   n_threads=1, tol=None, backend=backend, callback=callback)
        runs[backend] = (np.array(params), drawn, rng.integers(0, 2**62))
    (core, core_drawn, core_after), (ref, ref_drawn, ref_after) = runs["core"], runs["numpy"]
    np.testing.assert_allclose(core, ref, rtol=1e-10, atol=1e-12)
    assert core_drawn == ref_drawn and core_after == ref_after
    assert len(set(core_drawn)) == len(core_drawn)
    # and the callback's draws do change the permutations that follow them
    untouched, _ = _epoch_params(X, y, optimizer="sgd", lr=0.002, batch_size=256, epochs=4,
                                 seed=np.random.default_rng(123), n_threads=1)
    np.testing.assert_array_equal(core[0], untouched[0])
    assert not np.array_equal(core[1:], untouched[1:])


def test_no_permutation_thread_outlives_a_fit(many_rows):
    X, y = many_rows
    gdcore.fit(X, y, optimizer="sgd", lr=0.002, batch_size=256, epochs=3, seed=1, tol=None,
               n_threads=1, callback=lambda p: p.epoch >= 2)
    assert not [t for t in threading.enumerate() if t.name == "gdcore-permutation"]


@pytest.mark.parametrize("batch_size", [96, 128])
def test_threaded_shuffled_batches_are_repeatable(batch_size):
    """Batches of gathered long rows are cut between threads in a fixed way: the same bits
    every run with two threads, and the one-thread result up to rounding."""
    X, y, _ = problem(n=4000, d=48)
    options = dict(optimizer="adam", lr=0.01, epochs=3, batch_size=batch_size, seed=3)
    two = run(X, y, n_threads=2, **options)
    assert np.array_equal(two, run(X, y, n_threads=2, **options))
    np.testing.assert_allclose(two, run(X, y, n_threads=1, **options), rtol=1e-10, atol=1e-12)


FALLBACK_SCRIPT = """
import numpy as np, gdcore
rng = np.random.default_rng(0)
out = []
for n, d in [(200, 20), (700, 20), (3000, 40)]:
    X = rng.standard_normal((n, d))
    y = X @ rng.standard_normal(d) + 0.3 * rng.standard_normal(n)
    r = gdcore.fit(X, y, optimizer="adam", lr=0.05, epochs=30, tol=None, precompute=False,
                   n_threads=2)
    out.append(r.coef.tobytes().hex() + np.float64(r.intercept).tobytes().hex())
    out.append(repr(gdcore.check_grad(X, y, r.coef, r.intercept, n_threads=2)))
print(" ".join(out))
"""


@pytest.mark.parametrize("setting", ["OMP_THREAD_LIMIT=1", "OMP_MAX_ACTIVE_LEVELS=0"])
def test_bits_do_not_depend_on_the_threads_openmp_grants(setting):
    """n_threads=2 where OpenMP grants one thread: a full-batch fit falls back from its team to
    the one-thread loop, whose passes must cut the rows as the team does (the sizes straddle
    the team's and the threaded pass's thresholds, n·(d+1) = 4,200, 14,700 and 123,000; the
    middle one differed in its last bits), and check_grad's passes likewise."""
    import os
    import subprocess
    import sys

    def bits(extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
        env.update(extra)
        done = subprocess.run([sys.executable, "-c", FALLBACK_SCRIPT], env=env, check=True,
                              capture_output=True, text=True, timeout=300)
        return done.stdout.split()

    name, value = setting.split("=")
    granted, refused = bits({}), bits({name: value})
    assert len(granted) == 6
    assert granted == refused
