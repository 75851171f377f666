"""Bounded concurrency: a full queue is answered at once with 503 + Retry-After."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tilescan_service.config import Settings
from tilescan_service.engine import Engine
from tilescan_service.main import create_app
from tilescan_service.testing import wait_ready
from tilescan_shared.masks import DecisionRule
from tilescan_shared.predictor import Inference


def _block_inference(client: TestClient, release: threading.Event, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """Wait for /readyz, then make every inference wait until ``release`` is set."""
    wait_ready(client.get)
    engine = client.app.state.engine  # type: ignore[attr-defined]
    real_predict = engine.predictor.predict

    def blocked_predict(gray: np.ndarray, rule: DecisionRule | None = None) -> Inference:
        release.wait(timeout=10)
        return real_predict(gray, rule)

    monkeypatch.setattr(engine.predictor, "predict", blocked_predict)
    return engine


def test_full_queue_answers_503_with_retry_after_and_recovers(
    tiny_model: Path, square_png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        model_path=tiny_model,
        inference_concurrency=1,
        max_queue=1,
        retry_after_seconds=3,
        log_level="WARNING",
    )
    release = threading.Event()
    with TestClient(create_app(settings)) as client:
        engine = _block_inference(client, release, monkeypatch)
        answers: list[int] = []

        def post() -> None:
            answers.append(client.post("/predict", files={"image": ("t.png", square_png)}).status_code)

        # One request runs, one waits in the queue: capacity is full.
        waiting = [threading.Thread(target=post) for _ in range(2)]
        for thread in waiting:
            thread.start()
        deadline = time.monotonic() + 10
        while engine.pending < 2 and time.monotonic() < deadline:
            time.sleep(0.005)

        refused = client.post("/predict", files={"image": ("t.png", square_png)})
        release.set()
        for thread in waiting:
            thread.join(timeout=10)
        after = client.post("/predict", files={"image": ("t.png", square_png)})

    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "3"
    assert refused.json()["error"] == "overloaded"
    assert answers == [200, 200]
    assert after.status_code == 200
    assert engine.pending == 0


def test_inference_runs_off_the_event_loop(
    tiny_model: Path, square_png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While an inference is stuck, the same app still answers other requests."""
    release = threading.Event()
    with TestClient(create_app(Settings(model_path=tiny_model, log_level="WARNING"))) as client:
        engine = _block_inference(client, release, monkeypatch)
        stuck = threading.Thread(
            target=client.post, args=("/predict",), kwargs={"files": {"image": square_png}}
        )
        stuck.start()
        deadline = time.monotonic() + 10
        while engine.pending < 1 and time.monotonic() < deadline:
            time.sleep(0.005)

        started = time.monotonic()
        health = client.get("/healthz")
        seconds = time.monotonic() - started
        release.set()
        stuck.join(timeout=10)

    assert health.status_code == 200
    assert seconds < 2  # a blocked loop would have answered only after the 10 s inference
