"""Which admitted prediction runs its inference next, and how: alone on every thread, or side by side.

On a CPU, one onnxruntime run spread over all cores is the fastest way to answer one request, but
not to answer many: its threads wait for each other at every operator, and any other work on the
machine (decoding the next upload, the HTTP server, a neighbour) makes them wait longer. Several
single-thread runs side by side never wait for each other. Measured on the 2-vCPU VM
(docs/benchmarks.md): 8 clients got 19.3 answers/s with one two-thread run at a time and 26.2/s
with two one-thread runs, while a lone request took 51 ms on two threads and 67 ms on one.

So a prediction that finds nothing running and nobody else waiting runs **solo** (on the
``intra_op_threads`` session, every other prediction waits for it); otherwise predictions run on the
**shared** lane, up to ``concurrency`` at once on single-thread sessions, while the pixels running
together stay within a budget (the service's pixel limit, so two big images never run at once and
memory stays what one image at the limit needs). Waiters start in arrival order.

The waiting is done by the inference worker threads themselves, after reading the image's header
and before decoding its pixels: decoding, inference and rendering then run in one worker call, with
no hop back to the event loop between them (a hop cost ~2 ms of CPU time a tile, issue 9).
"""

from __future__ import annotations

import enum
import threading
from collections import deque


class Lane(enum.Enum):
    SOLO = "solo"
    SHARED = "shared"


class Turn:
    """One prediction's place in line: made by its request, taken by its worker thread."""

    __slots__ = ("_granted", "abandoned", "lane", "pixels")

    def __init__(self) -> None:
        self.pixels = 0
        self.lane: Lane | None = None  # set when granted
        self.abandoned = False  # its request is gone
        self._granted = threading.Event()


class InferenceSlots:
    """Grants lanes to waiting predictions; thread-safe."""

    def __init__(self, concurrency: int, pixel_budget: int) -> None:
        self.concurrency = concurrency
        self.pixel_budget = pixel_budget
        self.running = 0
        self.running_pixels = 0
        self.solo_running = False
        self._lock = threading.Lock()
        self._waiters: deque[Turn] = deque()

    def take(self, turn: Turn, pixels: int) -> Lane | None:
        """Block this (worker) thread until ``turn`` runs an image of ``pixels`` pixels.

        The lane granted, to be given back with :meth:`release`; None when the turn was abandoned
        before it came (nothing to give back).
        """
        with self._lock:
            if turn.abandoned:
                return None
            turn.pixels = pixels
            self._waiters.append(turn)
            self._dispatch()
        turn._granted.wait()
        return turn.lane

    def abandon(self, turn: Turn) -> None:
        """The request behind ``turn`` is gone: a waiting turn leaves the line; a granted one is
        the worker's to give back (it checks :attr:`Turn.abandoned` before starting)."""
        with self._lock:
            turn.abandoned = True
            if turn.lane is None and turn in self._waiters:
                self._waiters.remove(turn)
                turn._granted.set()
                self._dispatch()  # it may have been the head that held the others back

    def release(self, turn: Turn) -> None:
        with self._lock:
            self.running -= 1
            self.running_pixels -= turn.pixels
            if turn.lane is Lane.SOLO:
                self.solo_running = False
            self._dispatch()

    def _dispatch(self) -> None:
        """Grant the turns at the head of the line that may run now (called with the lock held)."""
        while self._waiters:
            turn = self._waiters[0]
            if self.running == 0:
                # Shared only when the next in line could run beside it; else all threads for this one.
                after = self._waiters[1].pixels if len(self._waiters) > 1 else None
                fits = after is not None and turn.pixels + after <= self.pixel_budget
                lane = Lane.SHARED if fits and self.concurrency > 1 else Lane.SOLO
            elif (
                self.solo_running
                or self.running >= self.concurrency
                or self.running_pixels + turn.pixels > self.pixel_budget
            ):
                return
            else:
                lane = Lane.SHARED
            self._waiters.popleft()
            self.running += 1
            self.running_pixels += turn.pixels
            self.solo_running = lane is Lane.SOLO
            turn.lane = lane
            turn._granted.set()
