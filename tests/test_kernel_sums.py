"""The fused pass's raw sums (gdcore._core.block_sums_of: Σ sᵢrᵢxᵢ, Σ sᵢrᵢ, Σ sᵢrᵢ², Σ sᵢ)
against the same sums formed in float64 NumPy, for every short-row width and the counts of
rows that reach each of the kernels taking rows in order: blocks of 8 (float64) or 16
(float32) rows read as d whole vectors (from 64 / 128 rows a call), the four-row kernel for
fewer rows and for the rows left after the last block, the one-row kernel after that, and
float32's block sums (spilled every 64 rows)."""

import numpy as np
import pytest

from gdcore import _core

from conftest import starting_within_a_line

TOLERANCE = {np.float64: 1e-13, np.float32: 2e-6}


def reference_sums(X, y, weights, theta):
    """The sums in float64, and the sums of the terms' magnitudes (the scale of rounding)."""
    X, y, theta = (a.astype(np.float64) for a in (X, y, theta))
    s = np.ones(len(y)) if weights is None else weights.astype(np.float64)
    r = X @ theta[:-1] + theta[-1] - y
    terms = [(s * r)[:, None] * X, s * r, s * r * r, s]
    sums = np.concatenate([terms[0].sum(axis=0), [t.sum() for t in terms[1:]]])
    scale = np.concatenate([np.abs(terms[0]).sum(axis=0), [np.abs(t).sum() for t in terms[1:]]])
    return sums, scale


def problems(rng, d, dtype, row_counts):
    """For each row count, (X, y, θ, weights, weights as block_sums_of takes them): random
    rows of d values, without weights, then with weights in [0, 2)."""
    for n in row_counts:
        X = rng.standard_normal((n, d)).astype(dtype)
        y = rng.standard_normal(n).astype(dtype)
        theta = (rng.standard_normal(d + 1) / np.sqrt(d)).astype(dtype)
        for weights in (None, rng.uniform(0.0, 2.0, n).astype(dtype)):
            yield X, y, theta, weights, np.empty(0, dtype=dtype) if weights is None else weights


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", list(range(1, 67)))
def test_sums_of_rows_in_order(d, dtype):
    rng = np.random.default_rng(d)
    # too few rows for blocks, just enough (float64, then float32) without and with rows
    # left for the four-row and one-row kernels, and enough for several float32 spills on
    # each of two threads' parts
    for X, y, theta, weights, given in problems(rng, d, dtype,
                                                (3, 17, 64, 71, 128, 143, 203, 1000)):
        n = len(y)
        expected, scale = reference_sums(X, y, weights, theta)
        for n_threads in (1, 2):
            got = _core.block_sums_of(X, y, given, theta, n_threads)
            assert got.shape == (d + 3,)
            error = np.abs(got - expected)
            assert np.all(error <= TOLERANCE[dtype] * scale * 4 + 1e-300), (
                n, weights is None, n_threads, np.max(error / scale))
            # the count (or weight) of the rows, exactly where weights are 1
            if weights is None:
                assert got[d + 2] == n


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sums_do_not_read_past_the_rows(dtype):
    """The block kernel reads a block of rows as d whole vectors, the four-row kernels a row
    as a padded vector (width 8 to 64): a view of X's first rows whose next values are NaN
    must give the sums of those rows alone (a value read past them would make a sum NaN)."""
    rng = np.random.default_rng(0)
    for d in (3, 10, 24, 37, 60):
        full = rng.standard_normal((48, d)).astype(dtype)
        full[37:] = np.nan
        X, y = full[:37], rng.standard_normal(37).astype(dtype)
        theta = rng.standard_normal(d + 1).astype(dtype)
        got = _core.block_sums_of(X, y, np.empty(0, dtype=dtype), theta, 1)
        assert np.all(np.isfinite(got))
        expected, scale = reference_sums(X, y, None, theta)
        assert np.all(np.abs(got - expected) <= TOLERANCE[dtype] * scale * 4)


def reference_sums_and_long_row_bound(X, y, weights, theta):
    """reference_sums, and a bound on the error of the four-row kernel's sums: the
    residuals' rounding grows with d, so it adds eps·(d/16 + 8)·Σᵢ sᵢ|xᵢⱼ|·Σⱼ|xᵢⱼθⱼ| (lanes
    of d/16 terms, then folded) to the rounding of the sums themselves."""
    n, d = X.shape
    eps = np.finfo(X.dtype).eps
    expected, scale = reference_sums(X, y, weights, theta)
    s = np.ones(n) if weights is None else weights.astype(np.float64)
    X64 = X.astype(np.float64)
    residual_scale = np.abs(X64) @ np.abs(theta[:-1].astype(np.float64)) + abs(
        float(theta[-1])) + np.abs(y.astype(np.float64))
    dot_rounding = eps * (d / 16 + 8) * (s * residual_scale)
    bound = TOLERANCE[X.dtype.type] * scale * 4 + np.concatenate(
        [dot_rounding @ np.abs(X64), [dot_rounding.sum(), 2 * dot_rounding @ residual_scale, 0]])
    return expected, bound


@pytest.mark.parametrize("dtype, d", [(np.float64, 48), (np.float64, 100), (np.float64, 400),
                                      (np.float64, 1000), (np.float64, 1001),
                                      (np.float32, 100), (np.float32, 128),
                                      (np.float32, 1000), (np.float32, 1024)])
def test_sums_do_not_depend_on_where_x_starts(dtype, d):
    """Where four rows are whole cache lines, the gradient sweep takes the values up to the
    first line boundary of a group's first row on their own and sums into a buffer placed
    like the rows (float64: from 65,536 values a call; float32: its block sums), so its
    vectors start on lines: every offset of X within a line must give the same sums, bit for
    bit (from offset 0 the first thread takes nothing on its own), and the right ones.
    203 rows (too few values for float64's buffer; a short last group, float32 block spills,
    a second thread's part starting at row 102, for float32 d = 100 32 bytes into a line
    further than X), then enough for float64's buffer on each of two threads."""
    offsets = range(0, 64, np.dtype(dtype).itemsize)
    row_counts = (203, 203 + 2 * 65536 // d)
    for X, y, theta, weights, given in problems(np.random.default_rng(d), d, dtype, row_counts):
        placed = [starting_within_a_line(X, offset) for offset in offsets]
        expected, bound = reference_sums_and_long_row_bound(X, y, weights, theta)
        for n_threads in (1, 2):
            sums = [_core.block_sums_of(P, y, given, theta, n_threads) for P in placed]
            assert np.all(np.abs(sums[0] - expected) <= bound)
            for offset, got in zip(offsets, sums):
                assert np.array_equal(got, sums[0]), (offset, weights is None, n_threads)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [47, 100, 511, 512, 1000, 1030])
def test_sums_of_long_rows(d, dtype):
    """Rows longer than the short-row kernels take (float64 40 values, float32 64; shorter
    here go to them): four rows a group, the dot products in 16 lanes and the
    gradient terms 16 values a step with a tail after, rows of 3,200 bytes or more (float64
    d >= 400, float32 d >= 800) prefetched as a stream."""
    rng = np.random.default_rng(d)
    # one short group only, groups and a short last group, several float32 block spills
    for X, y, theta, weights, given in problems(rng, d, dtype, (3, 9, 17, 70, 203)):
        expected, bound = reference_sums_and_long_row_bound(X, y, weights, theta)
        for n_threads in (1, 2):
            got = _core.block_sums_of(X, y, given, theta, n_threads)
            error = np.abs(got - expected)
            assert np.all(error <= bound), (len(y), weights is None, n_threads,
                                            np.max(error / bound))
