"""Gram mode: one pass over the data forms the (d+2) × (d+2) matrix Σ sᵢzᵢzᵢᵀ of
zᵢ = (xᵢ, 1, yᵢ), after which every full-batch epoch costs O(d²) instead of O(n·d).

From it the core recovers, for any θ = (w, b), exactly the sums of a pass over X
(Σ sᵢrᵢxᵢ, Σ sᵢrᵢ, Σ sᵢrᵢ², Σ sᵢ; see ``sums_from_gram`` in src/_core.pyx).
"""

from __future__ import annotations

import numpy as np

# Rows per block: keeps the float64 working copy of a block near 8 MB, whatever d is.
_BLOCK_BYTES = 8 << 20


def augmented_gram(X, y, sample_weight=None):
    """Σ sᵢ zᵢzᵢᵀ with zᵢ = (xᵢ, 1, yᵢ), in float64, formed block by block with BLAS."""
    n, d = X.shape
    width = d + 2
    gram = np.zeros((width, width), dtype=np.float64)
    rows = max(64, _BLOCK_BYTES // (8 * width))
    block = np.empty((rows, width), dtype=np.float64)
    # Overflow to inf is reported by the fit as a DivergenceError, not as a warning here.
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, n, rows):
            _accumulate(gram, block, X, y, sample_weight, start, min(n, start + rows), d)
    return gram


def _accumulate(gram, block, X, y, sample_weight, start, stop, d):
    """gram += Σ sᵢzᵢzᵢᵀ over rows start..stop−1, through the float64 scratch block."""
    z = block[:stop - start]
    z[:, :d] = X[start:stop]
    z[:, d] = 1.0
    z[:, d + 1] = y[start:stop]
    if sample_weight is None:
        gram += z.T @ z
    else:
        gram += (z * sample_weight[start:stop, None]).T @ z


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
