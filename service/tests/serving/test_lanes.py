"""Solo and shared inference lanes (tilescan_service.scheduling) over real HTTP against ``build_server``."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tilescan_service import runtime_choice
from tilescan_service.config import Settings
from tilescan_service.runtime_choice import Timing


def test_requests_that_wait_run_side_by_side_and_get_the_same_masks(
    live: Callable,
    blocked_inference: Callable,
    until: Callable,
    tiny_model: Path,
    square_png: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The tiny model's timing may favour either layout; this machine "measured" side by side as faster.
    monkeypatch.setattr(runtime_choice, "_time", lambda sessions, tile, slots: Timing("fp32", 2.0, 1.0))
    settings = Settings(
        model_path=tiny_model,
        intra_op_threads=2,
        inference_concurrency=2,
        queue_wait_ratio=0,  # the line is held up on purpose
        log_level="WARNING",
    )

    def post() -> httpx.Response:
        return httpx.post(f"{server.url}/predict", files={"image": ("t.png", square_png)}, timeout=20)

    with live(settings) as server, ThreadPoolExecutor(3) as pool:
        engine = server.app.state.engine
        with blocked_inference(server.app) as (release, ran):  # blocks the solo lane's session
            alone = pool.submit(post)
            until(lambda: engine.slots.running == 1, what="the first request running alone")
            waiting = [pool.submit(post) for _ in range(2)]
            # Waiting for a turn, not only admitted: one still decoding would find the lane free and run solo.
            until(lambda: engine.slots.waiting == 2, what="two more requests waiting for a turn")
            assert engine.slots.running == 1  # nothing runs beside a solo inference
            release.set()
            answers = [alone.result(), *(request.result() for request in waiting)]
        solo = server.metric("tilescan_inference_duration_seconds_count", lane="solo")
        shared = server.metric("tilescan_inference_duration_seconds_count", lane="shared")

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert answers[1].json()["pred"] == answers[2].json()["pred"] == answers[0].json()["pred"]
    assert len(ran) == 1  # only the first ran on the solo session
    assert (solo, shared) == (1, 2)


def test_where_one_inference_on_every_thread_is_faster_nothing_runs_side_by_side(
    live: Callable, tiny_model: Path, square_png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime_choice, "_time", lambda sessions, tile, slots: Timing("fp32", 1.0, 2.0))
    settings = Settings(
        model_path=tiny_model, intra_op_threads=2, inference_concurrency=2, log_level="WARNING"
    )
    with live(settings) as server, ThreadPoolExecutor(4) as pool:
        assert server.app.state.engine.slots.concurrency == 1
        posts = [
            pool.submit(httpx.post, f"{server.url}/predict", files={"image": square_png}) for _ in range(8)
        ]
        assert [p.result().status_code for p in posts] == [200] * 8
        assert server.metric("tilescan_inference_duration_seconds_count", lane="shared") == 0
        assert server.metric("tilescan_inference_duration_seconds_count", lane="solo") == 8
