"""The permutation of each shuffled epoch, drawn one epoch ahead on another core.

SPEC: each epoch begins with ``perm = rng.permutation(n)``.  For large n that draw costs
~13 ns a row (random swaps through an n-long array), which is ~8% of a classic-SGD epoch,
and numpy releases the GIL while it shuffles.  So while epoch k runs in the compiled loop,
a helper thread draws the permutation of epoch k + 1 — from a *copy* of the generator.
The generator itself is moved to the copy's state only when that permutation is taken, so
a fit that stops early (tol, a callback, Ctrl-C, divergence) leaves the generator exactly
where drawing one permutation per epoch run leaves it, and ``fit(..., init=result)`` goes
on with the same permutations a single longer fit would have used.  If anyone drew from the
generator meanwhile (it may be the caller's, seed=Generator: a callback or another thread),
the permutation drawn ahead is thrown away and drawn again from the generator as it is:
moving it to the copy's state would rewind it and hand out the same numbers twice.
"""

from __future__ import annotations

import contextlib
import copy
import threading

import numpy as np

# Below this many rows a permutation costs less than starting a thread; above the second
# bound, a second permutation alive at once (8 bytes a row) would cost more memory than the
# ~8% of an epoch it saves is worth.
DRAW_AHEAD_MIN_ROWS = 1 << 16
DRAW_AHEAD_MAX_ROWS = 1 << 23


class EpochPermutations:
    """``take(more_epochs)`` returns this epoch's permutation (as intp) and, if more epochs
    may follow and drawing ahead is on, starts drawing the next one.  ``close()`` waits for
    a draw in flight (call it in a ``finally``)."""

    def __init__(self, rng: np.random.Generator, n: int, draw_ahead: bool):
        self.rng = rng
        self.n = n
        self.draw_ahead = draw_ahead and DRAW_AHEAD_MIN_ROWS <= n <= DRAW_AHEAD_MAX_ROWS
        self._pending = None        # (thread, result box, the generator copy it draws from,
                                    #  the generator's state when the copy was taken)
        # The generator may be the caller's (seed=Generator), drawn from meanwhile by a
        # callback or by another thread: its own lock makes "unchanged? then move on"
        # atomic with their draws.
        self._lock = getattr(rng.bit_generator, "lock", None) or contextlib.nullcontext()

    def take(self, more_epochs: bool) -> np.ndarray:
        perm = None
        if self._pending is not None:
            thread, box, ahead, started_from = self._pending
            self._pending = None
            thread.join()
            with self._lock:
                # drawn, and nobody drew from the generator since the copy was taken: it
                # moves on as if it had drawn it (else the draw is discarded: assigning the
                # copy's state would undo the other draws and repeat their numbers)
                if box and _same_state(self.rng.bit_generator.state, started_from):
                    perm = box[0]
                    self.rng.bit_generator.state = ahead.bit_generator.state
        if perm is None:
            perm = self.rng.permutation(self.n)
        if self.draw_ahead and more_epochs:
            self._start()
        return perm.astype(np.intp, copy=False)

    def _start(self):
        with self._lock:
            started_from = self.rng.bit_generator.state
            ahead = copy.deepcopy(self.rng)
        box = []

        def draw():
            try:
                box.append(ahead.permutation(self.n))
            except MemoryError:     # take() then draws it itself, from the real generator
                pass

        thread = threading.Thread(target=draw, name="gdcore-permutation", daemon=True)
        thread.start()
        self._pending = (thread, box, ahead, started_from)

    def close(self):
        if self._pending is not None:
            self._pending[0].join()
            self._pending = None


def _same_state(a, b):
    """Whether two bit-generator states (dicts of ints, strings and arrays) are equal."""
    if isinstance(a, dict) or isinstance(b, dict):
        return (isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys()
                and all(_same_state(a[k], b[k]) for k in a))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    return a == b
