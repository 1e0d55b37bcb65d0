"""Gram mode: one pass over the data forms the weighted means and centred second moments of
zᵢ = (xᵢ, yᵢ), after which every full-batch epoch costs O(d²) instead of O(n·d).

From them the core recovers, for any θ = (w, b), the sums of a pass over X (Σ sᵢrᵢxᵢ, Σ sᵢrᵢ,
Σ sᵢrᵢ², Σ sᵢ; see ``sums_from_gram`` in src/gd_gram.pxi).  The moments are centred so that
an offset in y or in a column of X does not swamp the loss: uncentred, Σ sᵢrᵢ² is a small
difference of terms of the size of Σ sᵢyᵢ², and with y ≈ 1e7 it came out 1000x too large.

The (d+2) × (d+2) float64 matrix packs, with S = Σ sᵢ, z̄ = Σ sᵢzᵢ / S rounded to float64
and z̃ᵢ = zᵢ − z̄:

    [:d+1, :d+1] = Σ sᵢz̃ᵢz̃ᵢᵀ      [:d+1, d+1] = z̄      [d+1, :d+1] = Σ sᵢz̃ᵢ      [d+1, d+1] = S

The stored mean is the true one rounded, so the first moments Σ sᵢz̃ᵢ about it are not 0 but
S·(its rounding), up to S·ulp(z̄)/2: kept, they make the sums exact identities in the stored
values.  Left out, a loss read 2e-9 off with y ≈ 1e6 (a term
2e·Σ sᵢ(x̃ᵢ·w − ỹᵢ), e the offset of sums_from_gram, went missing).  Terms of second order in
the means' rounding, S·ulp(z̄)², are left out of the merged moments.

Blocks of rows are merged as in Chan, Golub and LeVeque's pairwise update, in place: the
matrix and one scratch of its size are all a fit holds at once, besides an 8 MB row block.
"""

from __future__ import annotations

import os

import numpy as np

from . import _core

# Rows per block: keeps the float64 working copy of a block near 8 MB, whatever d is.
_BLOCK_BYTES = 8 << 20


def augmented_gram(X, y, sample_weight=None, into=None):
    """The packed means and centred moments of (xᵢ, yᵢ) (see the module docstring), in
    float64, formed block by block with BLAS.  Entries are inf or NaN if they overflow
    float64 (see ``gram_is_finite``).  ``into``: the packed moments of earlier rows (a
    chunk's), which these rows are merged into in place and which is returned."""
    n, d = X.shape
    rows = max(64, _BLOCK_BYTES // (8 * (d + 1)))
    block = np.empty((rows, d + 1), dtype=np.float64)
    total = np.zeros((d + 2, d + 2)) if into is None else into
    scratch = np.empty((d + 1, d + 1))
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, n, rows):
            stop = min(n, start + rows)
            z = block[:stop - start]
            z[:, :d] = X[start:stop]
            z[:, d] = y[start:stop]
            weights = None if sample_weight is None else sample_weight[start:stop]
            _merge_block(total, z, weights, scratch)
    return total


def _merge_block(total, z, weights, scratch):
    """Merge the rows z (centred here, in place) with their weights into total."""
    if weights is None:
        S = float(len(z))
        mean = z.mean(axis=0)
    else:
        weights = np.asarray(weights, dtype=np.float64)
        S = float(weights.sum())
        if not S > 0:
            return
        mean = (weights @ z) / S
    z -= mean
    first = z.sum(axis=0) if weights is None else weights @ z     # Σ sᵢz̃ᵢ: S·(mean's rounding)
    np.dot(z.T, z if weights is None else z * weights[:, None], out=scratch)
    _merge(total, S, mean, first, scratch, scratch)


def _merge(total, S_b, mean_b, first_b, moments_b, scratch):
    """total ← the packed moments of total's rows and rows with (S_b, mean_b, first_b,
    moments_b) (first_b = Σ sᵢ(zᵢ − mean_b)); scratch (which may be moments_b itself) is
    overwritten."""
    k = total.shape[0] - 1                   # z has k = d + 1 entries
    S_a = total[k, k]
    if not S_b > 0:
        return
    moments = total[:k, :k]
    if not S_a > 0:
        moments[...] = moments_b
        total[:k, k] = mean_b
        total[k, :k] = first_b
        total[k, k] = S_b
        return
    S = S_a + S_b
    mean_a, first_a = total[:k, k].copy(), total[k, :k].copy()
    # Chan et al.'s update, with the difference of the blocks' true means (the stored means
    # plus their rounding, first / S), not of their rounded ones
    delta = (mean_b - mean_a) + (first_b / S_b - first_a / S_a)
    moments += moments_b
    np.multiply.outer(delta, delta * (S_a * (S_b / S)), out=scratch)
    moments += scratch
    mean = mean_a + delta * (S_b / S)
    total[:k, k] = mean
    # Σ sᵢ(zᵢ − mean) over both blocks, with the stored (rounded) mean
    total[k, :k] = (first_a + first_b) + (S_a * (mean_a - mean) + S_b * (mean_b - mean))
    total[k, k] = S


def merge_grams(a, b):
    """The packed moments of the union of the rows of a and b (a new array)."""
    out = a.copy()
    k = b.shape[0] - 1
    with np.errstate(over="ignore", invalid="ignore"):     # see gram_is_finite
        _merge(out, b[k, k], b[:k, k], b[k, :k], b[:k, :k], np.empty((k, k)))
    return out


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


# Above this many features the Gram matrix ((d + 2)² float64) is not formed by "auto".
GRAM_MAX_FEATURES = 4096


def check_gram_fits_in_memory(d, auto=True):
    """precompute=True: a ValueError, before any work, if Gram mode's two (d + 2)² float64
    matrices (the moments and a scratch of their size) would take more than half of the
    memory this process may use (_memory_limit; unchecked where that is not known): so large
    an allocation fails, or is granted lazily (overcommit) until the system kills the
    process as the matrix fills.  auto: whether the caller takes
    precompute="auto" (gdcore.dask.fit does not), which the message then suggests too."""
    if not gram_fits_in_memory(d):
        needed, memory = _gram_bytes(d), _memory_limit()
        or_auto = ' (or "auto")' if auto else ""
        raise ValueError(f"precompute=True: Gram mode holds two {d + 2:,} x {d + 2:,} float64 "
                         f"matrices for d={d:,} features, {needed / 2**30:,.1f} GiB, more "
                         f"than half of the {memory / 2**30:,.1f} GiB of memory this process "
                         f"may use; use precompute=False{or_auto}, which streams X every epoch")


def _gram_bytes(d):
    """What Gram mode's two (d + 2)² float64 matrices take."""
    return 2 * 8 * (d + 2) ** 2


def gram_fits_in_memory(d):
    """Whether Gram mode's matrices take at most half of the memory this process may use
    (True where that is not known): precompute=True refuses a width where they do not, and
    "auto" streams X there instead."""
    memory = _memory_limit()
    return memory is None or _gram_bytes(d) <= memory // 2


# A container's memory limit: cgroup v2's file, then v1's.
_CGROUP_LIMIT_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def _memory_limit():
    """The memory this process may use, in bytes: the machine's, or its container's limit
    (cgroup v2 or v1) where that is lower; None where the system says neither (Windows)."""
    try:
        limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        limit = None
    for path in _CGROUP_LIMIT_FILES:
        try:
            with open(path) as file:
                text = file.read().strip()
        except OSError:
            continue
        if text.isdigit():      # "max" (v2), or v1's huge number, when there is no limit
            limit = int(text) if limit is None else min(limit, int(text))
    return limit


def gram_is_cheaper(n, d, epochs):
    """``precompute="auto"``: forming the Gram matrix reads X once (like an epoch, n·d) and
    costs n·d² multiply-adds at BLAS speed (roughly 25× the rate of a memory-bound streaming
    epoch); then each epoch costs d².  Pick it when the epochs it saves outweigh that, and
    the matrix is small (and would not be refused by precompute=True's memory check)."""
    if d > GRAM_MAX_FEATURES or epochs < 2:
        return False
    # the choice is the same for any count past this one, and the costs below are floats:
    # epochs past float's range (10**400) would raise OverflowError
    epochs = min(epochs, 1 << 62)
    streaming = epochs * n * d
    gram = n * d * (1.0 + d / 25.0) + epochs * d * d
    return gram < streaming and gram_fits_in_memory(d)


def gram_epoch_sums(gram, streamed_sums):
    """An epoch's sums for run_full_batch in Gram mode: from the Gram matrix, or from
    ``streamed_sums`` (a pass over the data) when the fit is so near exact that the Gram
    matrix's loss is mostly rounding (as the core's own Gram epochs do)."""
    def sums(theta):
        from_gram, precise = _core.gram_sums(gram, theta)
        return from_gram if precise else streamed_sums(theta)
    return sums
