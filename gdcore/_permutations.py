"""The permutation of each shuffled epoch, drawn one epoch ahead on another core.

SPEC: each epoch begins with ``perm = rng.permutation(n)``.  For large n that draw costs
~13 ns a row (random swaps through an n-long array), which is ~8% of a classic-SGD epoch,
and numpy releases the GIL while it shuffles.  So while epoch k runs in the compiled loop,
a helper thread draws the permutation of epoch k + 1 — from a *copy* of the generator.
The generator itself is moved to the copy's state only when that permutation is taken, so
a fit that stops early (tol, a callback, Ctrl-C, divergence) leaves the generator exactly
where drawing one permutation per epoch run leaves it, and ``fit(..., init=result)`` goes
on with the same permutations a single longer fit would have used.
"""

from __future__ import annotations

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
        self._pending = None        # (thread, result box, the generator copy it draws from)

    def take(self, more_epochs: bool) -> np.ndarray:
        perm = None
        if self._pending is not None:
            thread, box, ahead = self._pending
            self._pending = None
            thread.join()
            if box:                 # drawn: the generator moves on as if it had drawn it
                perm = box[0]
                self.rng.bit_generator.state = ahead.bit_generator.state
        if perm is None:
            perm = self.rng.permutation(self.n)
        if self.draw_ahead and more_epochs:
            self._start()
        return perm.astype(np.intp, copy=False)

    def _start(self):
        ahead = copy.deepcopy(self.rng)
        box = []

        def draw():
            try:
                box.append(ahead.permutation(self.n))
            except MemoryError:     # take() then draws it itself, from the real generator
                pass

        thread = threading.Thread(target=draw, name="gdcore-permutation", daemon=True)
        thread.start()
        self._pending = (thread, box, ahead)

    def close(self):
        if self._pending is not None:
            self._pending[0].join()
            self._pending = None
