"""Who runs next, and on which lane (tilescan_service.scheduling), with real waiting threads."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from tilescan_service.scheduling import InferenceSlots, Lane, Turn


@pytest.fixture
def workers() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(8) as pool:
        yield pool


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = 5.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


def take(workers: ThreadPoolExecutor, slots: InferenceSlots, pixels: int) -> tuple[Turn, Future[Lane | None]]:
    """A worker thread waiting for its turn, as the engine's workers do; in line when this returns."""
    turn = Turn()
    waiting = len(slots._waiters)
    granted = workers.submit(slots.take, turn, pixels)
    wait_for(lambda: granted.done() or len(slots._waiters) > waiting, "the worker in line")
    return turn, granted


def test_a_lone_request_runs_solo_and_keeps_the_others_waiting(workers: ThreadPoolExecutor) -> None:
    slots = InferenceSlots(concurrency=2, pixel_budget=1000)
    first, lane = take(workers, slots, 100)
    assert lane.result(timeout=5) is Lane.SOLO
    second, later = take(workers, slots, 100)
    time.sleep(0.05)
    assert not later.done()  # a solo run has every thread: nobody runs beside it
    slots.release(first)
    assert later.result(timeout=5) is Lane.SOLO  # alone again by then
    slots.release(second)
    assert (slots.running, slots.running_pixels, slots.solo_running) == (0, 0, False)


def test_waiting_requests_run_side_by_side_up_to_the_concurrency_in_arrival_order(
    workers: ThreadPoolExecutor,
) -> None:
    slots = InferenceSlots(concurrency=2, pixel_budget=1000)
    first, _ = take(workers, slots, 100)
    waiting = [take(workers, slots, 100 + i) for i in range(3)]
    slots.release(first)
    assert [lane.result(timeout=5) for _, lane in waiting[:2]] == [Lane.SHARED, Lane.SHARED]
    time.sleep(0.05)
    assert not waiting[2][1].done()
    assert (slots.running, slots.running_pixels) == (2, 201)
    slots.release(waiting[0][0])
    assert waiting[2][1].result(timeout=5) is Lane.SHARED  # the other shared run is still going
    assert (slots.running, slots.running_pixels) == (2, 203)


def test_the_pixel_budget_keeps_big_images_from_running_together(workers: ThreadPoolExecutor) -> None:
    slots = InferenceSlots(concurrency=4, pixel_budget=1000)
    first, _ = take(workers, slots, 10)
    (big, big_lane), (small, small_lane) = take(workers, slots, 900), take(workers, slots, 10)
    slots.release(first)
    assert (big_lane.result(timeout=5), small_lane.result(timeout=5)) == (Lane.SHARED, Lane.SHARED)
    (bigger, bigger_lane), (_, after_lane) = take(workers, slots, 800), take(workers, slots, 300)
    slots.release(small)
    time.sleep(0.05)
    assert not bigger_lane.done() and not after_lane.done()  # 900 + 800 is over the budget; no overtaking
    slots.release(big)
    # The next in line would not fit beside it (800 + 300): all threads for the big one.
    assert bigger_lane.result(timeout=5) is Lane.SOLO
    time.sleep(0.05)
    assert not after_lane.done()
    slots.release(bigger)
    assert after_lane.result(timeout=5) is Lane.SOLO


def test_one_slot_always_runs_solo(workers: ThreadPoolExecutor) -> None:
    slots = InferenceSlots(concurrency=1, pixel_budget=1000)
    first, _ = take(workers, slots, 10)
    waiting = [take(workers, slots, 10) for _ in range(2)]
    slots.release(first)
    assert waiting[0][1].result(timeout=5) is Lane.SOLO
    time.sleep(0.05)
    assert not waiting[1][1].done()
    slots.abandon(waiting[1][0])  # lets its worker go


def test_an_abandoned_waiter_leaves_the_line_and_its_worker_goes(workers: ThreadPoolExecutor) -> None:
    slots = InferenceSlots(concurrency=2, pixel_budget=1000)
    first, _ = take(workers, slots, 10)
    (dropped, dropped_lane), (_, kept_lane) = take(workers, slots, 10), take(workers, slots, 10)
    slots.abandon(dropped)
    assert dropped_lane.result(timeout=5) is None  # its worker stops waiting, with nothing to give back
    slots.release(first)
    assert kept_lane.result(timeout=5) is Lane.SOLO  # the dropped one is not counted as waiting beside it
    assert (slots.running, slots.running_pixels) == (1, 10)


def test_a_turn_abandoned_before_its_worker_asks_is_never_granted() -> None:
    slots = InferenceSlots(concurrency=2, pixel_budget=1000)
    turn = Turn()
    slots.abandon(turn)  # the request went while its worker was still reading the header

    assert slots.take(turn, 10) is None
    assert (slots.running, slots.running_pixels) == (0, 0)


def test_a_turn_granted_as_its_request_is_dropped_stays_the_workers_to_give_back(
    workers: ThreadPoolExecutor,
) -> None:
    slots = InferenceSlots(concurrency=2, pixel_budget=1000)
    first, _ = take(workers, slots, 10)
    granted, lane = take(workers, slots, 10)
    slots.release(first)  # grants it its turn...
    assert lane.result(timeout=5) is Lane.SOLO
    slots.abandon(granted)  # ...which its request drops before its worker could start

    assert granted.abandoned  # the worker sees it and gives the turn back without running
    assert (slots.running, slots.solo_running) == (1, True)
    slots.release(granted)
    assert (slots.running, slots.running_pixels, slots.solo_running) == (0, 0, False)
