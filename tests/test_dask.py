"""gdcore.dask.fit on a real local cluster (2 worker processes): equal to the in-memory fit,
surviving a killed worker, and refusing what it does not do."""

import gc
import os
import signal
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="gdcore.dask needs the optional dask extra")
distributed = pytest.importorskip("distributed", reason="the tests start a distributed cluster")

import gdcore  # noqa: E402
import gdcore.dask  # noqa: E402

from conftest import problem  # noqa: E402
from test_dask_local import assert_same_fit, blocks_fits  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=40) as cluster:
        with distributed.Client(cluster) as client:
            yield client


@pytest.fixture(scope="module")
def data():
    X, y, _ = problem(n=6000, d=6)
    w = np.random.default_rng(5).uniform(0.0, 2.0, 6000)
    return X, y, w


@pytest.mark.parametrize("optimizer", ["gd", "adam", "rmsprop"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("precompute", [False, True])
def test_equals_in_memory_fit(client, data, optimizer, weighted, precompute):
    X, y, w = data
    dX, dy = da.from_array(X, chunks=(1000, 3)), da.from_array(y, chunks=700)
    dw = da.from_array(w, chunks=1000) if weighted else None
    options = dict(optimizer=optimizer, lr=0.05, epochs=8, tol=None, l2=0.01)
    distributed_fit = gdcore.dask.fit(dX, dy, sample_weight=dw, precompute=precompute,
                                      **options)
    memory = gdcore.fit(X, y, sample_weight=w if weighted else None, precompute=False,
                        **options)
    np.testing.assert_allclose(distributed_fit.loss_history, memory.loss_history, rtol=1e-10)
    np.testing.assert_allclose(distributed_fit.coef, memory.coef, rtol=1e-10, atol=1e-14)
    assert distributed_fit.intercept == pytest.approx(memory.intercept, rel=1e-10)


def test_dask_dataframe(client, data):
    dd = pytest.importorskip("dask.dataframe", reason="dask DataFrames need pandas")
    import pandas as pd
    X, y, _ = data
    frame = dd.from_pandas(pd.DataFrame(X, columns=list("abcdef")).assign(target=y),
                           npartitions=4)
    result = gdcore.dask.fit(frame[list("abcdef")], frame["target"], optimizer="gd", lr=0.3,
                             epochs=10, tol=None)
    memory = gdcore.fit(X, y, optimizer="gd", lr=0.3, epochs=10, tol=None, precompute=False)
    np.testing.assert_allclose(result.coef, memory.coef, rtol=1e-10)


def test_survives_a_killed_worker(client, data):
    X, y, _ = data
    dX, dy = da.from_array(X, chunks=(500, 6)), da.from_array(y, chunks=500)
    killed = []

    def kill_one_worker(progress):
        if progress.epoch == 3 and not killed:
            pids = client.run(os.getpid)
            victim = sorted(pids)[0]
            # SIGKILL, as an out-of-memory killer would: the nanny starts a new worker and
            # the lost blocks are recomputed from their graph
            os.kill(pids[victim], signal.SIGKILL)
            killed.append(victim)
        return False
    result = gdcore.dask.fit(dX, dy, optimizer="adam", lr=0.05, epochs=8, tol=None,
                             callback=kill_one_worker)
    memory = gdcore.fit(X, y, optimizer="adam", lr=0.05, epochs=8, tol=None, precompute=False)
    assert killed
    np.testing.assert_allclose(result.loss_history, memory.loss_history, rtol=1e-10)
    np.testing.assert_allclose(result.coef, memory.coef, rtol=1e-10)


def test_refusals(client, data):
    X, y, _ = data
    dX, dy = da.from_array(X, chunks=(1000, 6)), da.from_array(y, chunks=1000)
    with pytest.raises(ValueError, match="full-batch"):
        gdcore.dask.fit(dX, dy, batch_size=32)
    with pytest.raises(ValueError, match="len\\(y\\)"):
        gdcore.dask.fit(dX, dy[:-1])
    bad = X.copy()
    bad[4321, 2] = np.inf
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        gdcore.dask.fit(da.from_array(bad, chunks=(1000, 6)), dy, epochs=2)
    # weights spanning past float64's range: the row is counted in the whole data
    w = np.ones(len(y))
    w[0], w[2500] = 1e300, 1e-30
    for precompute in (False, True):
        with pytest.raises(ValueError, match=r"sample_weight\[2500\] = 1e-30 is 0 in float64"):
            gdcore.dask.fit(dX, dy, sample_weight=da.from_array(w, chunks=1000), epochs=2,
                            precompute=precompute)


def test_float64_weights_past_float32s_range_on_a_cluster(client):
    """float64 weights with float32 X, past float32's range or all below its normal range:
    the workers scale each block's by the one power of two before converting them, as
    gdcore.fit scales them (they were refused); a weight that scaling loses is named as
    gdcore.fit names it, with its block."""
    X, y, _ = problem(n=3000, d=4, dtype=np.float32)
    base = np.random.default_rng(3).uniform(0.5, 1.5, 3000)
    dX, dy = da.from_array(X, chunks=(700, 4)), da.from_array(y, chunks=700)
    options = dict(optimizer="adam", lr=0.05, epochs=5, tol=None)
    for scale in (1e40, 1e-45):
        memory = gdcore.fit(X, y, sample_weight=base * scale, precompute=False, **options)
        for precompute in (False, True):
            result = gdcore.dask.fit(dX, dy, sample_weight=da.from_array(base * scale,
                                                                         chunks=700),
                                     precompute=precompute, **options)
            np.testing.assert_allclose(result.loss_history, memory.loss_history, rtol=1e-6)
            np.testing.assert_allclose(result.coef, memory.coef, rtol=1e-6)
    w = base.copy()
    w[0], w[2500] = 1e30, 1e-50
    with pytest.raises(ValueError) as caught:
        gdcore.fit(X, y, sample_weight=w)
    expected = f"block 3 (rows 2100 to 2799): {caught.value}"
    with pytest.raises(ValueError) as caught:
        gdcore.dask.fit(dX, dy, sample_weight=da.from_array(w, chunks=700), epochs=2)
    assert str(caught.value) == expected


def test_blocks_add_in_block_order_on_a_cluster(client, data):
    # the same bits with the blocks' futures (persist=True), from their graph (persist=False)
    # and through fit_chunks in this process, whichever worker finishes first
    X, y, w = data
    fits = blocks_fits(X, y, w, 700, optimizer="rmsprop", lr=0.02, epochs=6, tol=None)
    for other in fits[1:]:
        assert_same_fit(fits[0], other)


def test_persist_false_does_not_hold_the_data_in_the_cluster(client):
    # persist=False is how data larger than the cluster's memory is fitted: each epoch reads
    # the blocks from their graph again.  Under a Client the blocks were computed once into
    # futures and held for the whole fit, persist=False or not.
    # computed from their graph block by block (dask's random generators differ between the
    # releases tested)
    i = da.arange(40_000, chunks=5_000)[:, None]
    X = da.sin(0.1 * i + da.arange(10)[None, :] * 1.7)
    y = X[:, 0] * 2.0 + 1.0

    def held_bytes():
        return sum(client.nbytes(summary=True).values())
    gc.collect()    # what earlier tests left in the cluster is not this fit's
    before, held = held_bytes(), []

    def settled_bytes(progress):
        # the scheduler releases an epoch's blocks shortly after its result is gathered
        deadline = time.monotonic() + 3.0
        while held_bytes() - before >= X.nbytes / 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        held.append(held_bytes() - before)
    result = gdcore.dask.fit(X, y, optimizer="gd", lr=0.3, epochs=3, tol=None, persist=False,
                             callback=settled_bytes)
    assert len(held) == 3
    assert max(held) < X.nbytes / 10, (held, X.nbytes)
    memory = gdcore.fit(X.compute(), y.compute(), optimizer="gd", lr=0.3, epochs=3, tol=None,
                        precompute=False)
    np.testing.assert_allclose(result.loss_history, memory.loss_history, rtol=1e-10)
    np.testing.assert_allclose(result.coef, memory.coef, rtol=1e-10)
