"""Gram mode: one pass over the data forms the weighted means and centred second moments of
zᵢ = (xᵢ, yᵢ), after which every full-batch epoch costs O(d²) instead of O(n·d).

From them the core recovers, for any θ = (w, b), the sums of a pass over X (Σ sᵢrᵢxᵢ, Σ sᵢrᵢ,
Σ sᵢrᵢ², Σ sᵢ; see ``sums_from_gram`` in src/_core.pyx).  The moments are centred so that
an offset in y or in a column of X does not swamp the loss: uncentred, Σ sᵢrᵢ² is a small
difference of terms of the size of Σ sᵢyᵢ², and with y ≈ 1e7 it came out 1000x too large.

The (d+2) × (d+2) float64 matrix packs, with S = Σ sᵢ, means x̄, ȳ and deviations x̃ᵢ, ỹᵢ:

    [:d, :d] = Σ sᵢx̃ᵢx̃ᵢᵀ    [:d, d] = x̄    [:d, d+1] = Σ sᵢx̃ᵢỹᵢ
    [d, d] = S             [d, d+1] = ȳ   [d+1, d+1] = Σ sᵢỹᵢ²

(symmetric).  Blocks of rows are merged as in Chan, Golub and LeVeque's pairwise update.
"""

from __future__ import annotations

import numpy as np

# Rows per block: keeps the float64 working copy of a block near 8 MB, whatever d is.
_BLOCK_BYTES = 8 << 20


def augmented_gram(X, y, sample_weight=None):
    """The packed means and centred moments of (xᵢ, yᵢ) (see the module docstring), in
    float64, formed block by block with BLAS.  Entries are inf or NaN if they overflow
    float64 (see ``gram_is_finite``)."""
    n, d = X.shape
    rows = max(64, _BLOCK_BYTES // (8 * (d + 1)))
    block = np.empty((rows, d + 1), dtype=np.float64)
    total = None
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, n, rows):
            stop = min(n, start + rows)
            part = _block_moments(block[:stop - start], X[start:stop], y[start:stop],
                                  None if sample_weight is None else sample_weight[start:stop])
            total = part if total is None else merge_grams(total, part)
    return total


def _block_moments(z, X, y, weights):
    """The packed moments of one block of rows, through the float64 scratch z."""
    d = X.shape[1]
    z[:, :d] = X
    z[:, d] = y
    if weights is None:
        S = float(len(z))
        mean = z.mean(axis=0)
    else:
        weights = np.asarray(weights, dtype=np.float64)
        S = float(weights.sum())
        if not S > 0:
            return _pack(0.0, np.zeros(d + 1), np.zeros((d + 1, d + 1)), d)
        mean = (weights @ z) / S
    z -= mean
    moments = (z.T @ z) if weights is None else (z * weights[:, None]).T @ z
    return _pack(S, mean, moments, d)


def _pack(S, mean, moments, d):
    """The (d+2)² layout from S, the means of z = (x, y) and Σ sᵢz̃ᵢz̃ᵢᵀ ((d+1)² each)."""
    packed = np.empty((d + 2, d + 2))
    keep = np.r_[0:d, d + 1]                 # z's entries take packed's rows/columns but d
    packed[np.ix_(keep, keep)] = moments
    packed[keep, d] = mean
    packed[d, keep] = mean
    packed[d, d] = S
    return packed


def _unpack(packed):
    d = packed.shape[0] - 2
    keep = np.r_[0:d, d + 1]
    return packed[d, d], packed[keep, d], packed[np.ix_(keep, keep)], d


def merge_grams(a, b):
    """The packed moments of the union of the rows of a and b."""
    S_a, mean_a, moments_a, d = _unpack(a)
    S_b, mean_b, moments_b, _ = _unpack(b)
    if not S_b > 0:
        return a.copy()
    if not S_a > 0:
        return b.copy()
    with np.errstate(over="ignore", invalid="ignore"):     # see gram_is_finite
        S = S_a + S_b
        delta = mean_b - mean_a
        mean = mean_a + delta * (S_b / S)
        moments = moments_a + moments_b + np.outer(delta, delta) * (S_a * (S_b / S))
    return _pack(S, mean, moments, d)


def gram_is_finite(gram):
    """False if forming the moments overflowed float64 (values of X or y near 1e154 or
    more): Gram mode cannot represent such data; a streaming pass can."""
    return bool(np.isfinite(gram).all())


def check_gram(gram):
    """For precompute=True: a ValueError if the moments overflowed (see gram_is_finite)."""
    if not gram_is_finite(gram):
        raise ValueError("precompute=True: the Gram matrix of X and y overflows float64 "
                         "(values near 1e154 or more); use precompute=False, which streams "
                         "X, or rescale the data")


def gram_is_cheaper(n, d, epochs):
    """``precompute="auto"``: forming the Gram matrix reads X once (like an epoch, n·d) and
    costs n·d² multiply-adds at BLAS speed (roughly 25× the rate of a memory-bound streaming
    epoch); then each epoch costs d².  Pick it when the epochs it saves outweigh that, and
    the matrix is small."""
    if d > 4096 or epochs < 2:
        return False
    streaming = epochs * n * d
    gram = n * d * (1.0 + d / 25.0) + epochs * d * d
    return gram < streaming
