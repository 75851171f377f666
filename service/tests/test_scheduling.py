"""Who runs next, and on which lane (tilescan_service.scheduling), driven on a real event loop."""

from __future__ import annotations

import asyncio

import pytest

from tilescan_service import scheduling
from tilescan_service.scheduling import InferenceSlots, Lane


async def _settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_lone_request_runs_solo_and_keeps_the_others_waiting() -> None:
    async def scenario() -> None:
        slots = InferenceSlots(concurrency=2, pixel_budget=1000)
        assert await slots.acquire(100) is Lane.SOLO
        second = asyncio.ensure_future(slots.acquire(100))
        await _settle()
        assert not second.done()  # a solo run has every thread: nobody runs beside it
        slots.release(Lane.SOLO, 100)
        assert await second is Lane.SOLO  # alone again by then
        slots.release(Lane.SOLO, 100)
        assert (slots.running, slots.running_pixels) == (0, 0)

    run(scenario())


def test_waiting_requests_run_side_by_side_up_to_the_concurrency_in_arrival_order() -> None:
    async def scenario() -> None:
        slots = InferenceSlots(concurrency=2, pixel_budget=1000)
        assert await slots.acquire(100) is Lane.SOLO
        waiting = [asyncio.ensure_future(slots.acquire(100 + i)) for i in range(3)]
        await _settle()
        slots.release(Lane.SOLO, 100)
        await _settle()
        assert [w.done() for w in waiting] == [True, True, False]
        assert [w.result() for w in waiting[:2]] == [Lane.SHARED, Lane.SHARED]
        assert (slots.running, slots.running_pixels) == (2, 201)
        slots.release(Lane.SHARED, 100)
        assert await waiting[2] is Lane.SHARED  # the other shared run is still going
        assert (slots.running, slots.running_pixels) == (2, 203)

    run(scenario())


def test_the_pixel_budget_keeps_big_images_from_running_together() -> None:
    async def scenario() -> None:
        slots = InferenceSlots(concurrency=4, pixel_budget=1000)
        assert await slots.acquire(10) is Lane.SOLO
        big, small = asyncio.ensure_future(slots.acquire(900)), asyncio.ensure_future(slots.acquire(10))
        await _settle()
        slots.release(Lane.SOLO, 10)
        await _settle()
        assert big.result() is Lane.SHARED and small.result() is Lane.SHARED  # 910 <= 1000
        bigger = asyncio.ensure_future(slots.acquire(800))
        after = asyncio.ensure_future(slots.acquire(300))
        await _settle()
        slots.release(Lane.SHARED, 10)
        await _settle()
        assert not bigger.done() and not after.done()  # 900 + 800 is over the budget; no overtaking
        slots.release(Lane.SHARED, 900)
        # The next in line would not fit beside it (800 + 300): all threads for the big one.
        assert await bigger is Lane.SOLO
        await _settle()
        assert not after.done()
        slots.release(Lane.SOLO, 800)
        assert await after is Lane.SOLO

    run(scenario())


def test_one_slot_always_runs_solo() -> None:
    async def scenario() -> None:
        slots = InferenceSlots(concurrency=1, pixel_budget=1000)
        assert await slots.acquire(10) is Lane.SOLO
        waiting = [asyncio.ensure_future(slots.acquire(10)) for _ in range(2)]
        await _settle()
        slots.release(Lane.SOLO, 10)
        assert await waiting[0] is Lane.SOLO
        assert not waiting[1].done()

    run(scenario())


def test_a_dropped_waiter_gives_its_turn_to_the_next() -> None:
    async def scenario() -> None:
        slots = InferenceSlots(concurrency=2, pixel_budget=1000)
        assert await slots.acquire(10) is Lane.SOLO
        dropped, kept = asyncio.ensure_future(slots.acquire(10)), asyncio.ensure_future(slots.acquire(10))
        await _settle()
        assert slots.waiting == 2
        dropped.cancel()
        await _settle()
        assert slots.waiting == 1
        slots.release(Lane.SOLO, 10)
        assert await kept is Lane.SOLO  # the dropped one is not counted as waiting beside it
        assert (slots.running, slots.running_pixels) == (1, 10)
        with pytest.raises(asyncio.CancelledError):
            await dropped

    run(scenario())


def test_a_turn_granted_as_its_request_is_dropped_is_given_back() -> None:
    async def scenario() -> None:
        slots = InferenceSlots(concurrency=2, pixel_budget=1000)
        assert await slots.acquire(10) is Lane.SOLO
        granted = asyncio.ensure_future(slots.acquire(10))
        await _settle()
        slots.release(Lane.SOLO, 10)  # grants it its turn...
        granted.cancel()  # ...which its request drops before it could run
        await _settle()
        assert granted.cancelled()
        assert (slots.running, slots.running_pixels, slots.solo_running) == (0, 0, False)

    run(scenario())


def test_while_arrivals_find_the_line_long_the_newest_starts_first(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(scheduling.time, "monotonic", lambda: now[0])

    async def scenario() -> None:
        slots = InferenceSlots(concurrency=1, pixel_budget=1000, newest_first_at=3, standing_seconds=1.0)
        assert await slots.acquire(10) is Lane.SOLO

        def arrive(pixels: int) -> asyncio.Future[Lane]:
            return asyncio.ensure_future(slots.acquire(pixels))

        async def finish(pixels: int) -> None:
            slots.release(Lane.SOLO, pixels)
            await _settle()

        a, b = arrive(1), arrive(2)
        await _settle()
        assert not slots.stands() and slots.stands(arriving=True)  # the next arrival would find it long
        await finish(10)
        assert a.done() and not b.done()  # two waiting: arrival order
        c, d = arrive(3), arrive(4)  # d finds three waiting: the line stands
        await _settle()
        assert slots.stands()
        await finish(1)
        assert d.done() and not (b.done() or c.done())
        await finish(4)
        assert c.done() and not b.done()  # two left, but an arrival found it long a moment ago
        e, f = arrive(5), arrive(6)  # b, e, f
        await _settle()
        now[0] += 1.0  # no arrival since: the longest wait goes first again, however long the line
        assert not slots.stands()
        await finish(3)
        assert b.done() and not (e.done() or f.done())

    run(scenario())


def test_without_a_threshold_the_line_keeps_arrival_order_however_long() -> None:
    async def scenario() -> None:
        slots = InferenceSlots(concurrency=1, pixel_budget=10_000)
        assert await slots.acquire(10) is Lane.SOLO
        waiting = [asyncio.ensure_future(slots.acquire(i + 1)) for i in range(20)]
        await _settle()
        for i, turn in enumerate(waiting):
            slots.release(Lane.SOLO, 10 if i == 0 else i)
            assert await turn is Lane.SOLO
            assert not any(later.done() for later in waiting[i + 1 :])

    run(scenario())
