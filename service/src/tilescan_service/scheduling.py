"""Which admitted prediction runs its inference next, and how: alone on every thread, or side by side.

On a CPU, one onnxruntime run spread over all cores is the fastest way to answer one request, but
not to answer many: its threads wait for each other at every operator, and any other work on the
machine (decoding the next upload, the HTTP server, a neighbour) makes them wait longer. Several
single-thread runs side by side never wait for each other: more answers per second under load, a
longer answer for a request alone (docs/benchmarks.md, "Serving").

So a prediction that finds nothing running and nobody else waiting runs **solo** (on the
``intra_op_threads`` session, every other prediction waits for it); otherwise predictions run on the
**shared** lane, up to ``concurrency`` at once on single-thread sessions, while the pixels running
together stay within a budget (the service's pixel limit, so two big images never run at once and
memory stays what one image at the limit needs).

Waiters start in arrival order, unless the line stands: while arrivals keep finding
``newest_first_at`` or more predictions waiting, and for ``standing_seconds`` after the last did, the
newest starts first (adaptive LIFO, as in Maurer's "Fail at Scale", ACM Queue 2015). Under overload
the line stays long whatever the order, and in arrival order every answer carries the whole line's
wait; newest first, the answers that come are fresh, and the waiters left behind leave at their own
queue limit (:meth:`tilescan_service.engine.Engine.queue_limit`, set on arrival from the work ahead of
them, at the standing line's own ratio) before any inference work. The service gives the
``Retry-After`` of its refusals as ``standing_seconds``, so a line stays standing while the clients it
turned away are still to come back. A line that never grows that long (the capacity's clients, each
waiting for its answer before it asks again) keeps arrival order, and once arrivals stop finding it
long, what is left of it is served in arrival order again: the longest waits first.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque


class Lane(enum.Enum):
    SOLO = "solo"
    SHARED = "shared"


class InferenceSlots:
    """Grants lanes to waiting predictions; use on the event loop only (no locks)."""

    def __init__(
        self, concurrency: int, pixel_budget: int, newest_first_at: int = 0, standing_seconds: float = 1.0
    ) -> None:
        self.concurrency = concurrency
        self.pixel_budget = pixel_budget
        self.newest_first_at = newest_first_at  # waiting requests from which the newest goes first; 0: never
        self.standing_seconds = standing_seconds
        self.running = 0
        self.running_pixels = 0
        self.solo_running = False
        self._standing_until = 0.0  # time.monotonic() until which the line counts as standing
        self._waiters: deque[tuple[int, asyncio.Future[Lane]]] = deque()

    @property
    def waiting(self) -> int:
        """Predictions waiting for a turn."""
        return sum(not turn.done() for _, turn in self._waiters)

    @property
    def waiting_pixels(self) -> int:
        """The pixels of the predictions waiting for a turn."""
        return sum(pixels for pixels, turn in self._waiters if not turn.done())

    def stands(self, arriving: bool = False) -> bool:
        """Whether the newest start first now (``arriving``: or will, once one more prediction waits)."""
        return time.monotonic() < self._standing_until or (arriving and self._long(extra=1))

    def _long(self, extra: int) -> bool:
        """Whether ``extra`` more waiters would find the line long enough to stand."""
        return 0 < self.newest_first_at <= self.waiting + extra

    async def acquire(self, pixels: int) -> Lane:
        """Wait for a turn for an image of ``pixels`` pixels; the caller must :meth:`release` it."""
        turn: asyncio.Future[Lane] = asyncio.get_running_loop().create_future()
        self._waiters.append((pixels, turn))
        if self._long(extra=0):
            self._standing_until = time.monotonic() + self.standing_seconds
        self._dispatch()
        try:
            return await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release(turn.result(), pixels)  # granted just as its request was dropped
            else:
                self._dispatch()  # it may have been the head that held the others back
            raise

    def release(self, lane: Lane, pixels: int) -> None:
        self.running -= 1
        self.running_pixels -= pixels
        if lane is Lane.SOLO:
            self.solo_running = False
        self._dispatch()

    def _dispatch(self) -> None:
        # Requests dropped while waiting leave the line first.
        self._waiters = deque(waiter for waiter in self._waiters if not waiter[1].done())
        while self._waiters:
            newest_first = time.monotonic() < self._standing_until
            line = reversed(self._waiters) if newest_first else iter(self._waiters)
            pixels, turn = next(line)
            if self.running == 0:
                # Shared only when the next in line could run beside it; else all threads for this one.
                after = next(line, None)
                fits = after is not None and pixels + after[0] <= self.pixel_budget
                lane = Lane.SHARED if fits and self.concurrency > 1 else Lane.SOLO
            elif (
                self.solo_running
                or self.running >= self.concurrency
                or self.running_pixels + pixels > self.pixel_budget
            ):
                return
            else:
                lane = Lane.SHARED
            if newest_first:
                self._waiters.pop()
            else:
                self._waiters.popleft()
            self.running += 1
            self.running_pixels += pixels
            self.solo_running = lane is Lane.SOLO
            turn.set_result(lane)
