"""Hot model swap: a replaced model file is loaded, warmed up and swapped in without a failed request."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tilescan_service.config import Settings
from tilescan_service.main import create_app
from tilescan_service.model_watch import FileStamp
from tilescan_service.testing import live_server, wait_ready
from tilescan_shared.masks import DecisionRule
from tilescan_shared.predictor import Inference
from tilescan_shared.testing import write_tiny_model

# Fast polling so the test spends its time serving, not waiting.
WATCH = 0.05


def _replace_atomically(path: Path, version: str | None) -> None:
    """What a deployment does: write beside the file, then rename over it (``None``: a broken file)."""
    staged = path.with_name(f".{path.name}.staged")
    if version is None:
        staged.write_bytes(b"half an onnx file")
    else:
        write_tiny_model(staged, version=version)
    os.replace(staged, path)


def _wait_for(check, what: str, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.02)
    return result


def _reloads(http: httpx.Client) -> dict[str, float]:
    return {
        sample.labels["result"]: sample.value
        for family in text_string_to_metric_families(http.get("/metrics").text)
        if family.name == "tilescan_model_reloads"
        for sample in family.samples
        if sample.name == "tilescan_model_reloads_total"
    }


def test_file_stamp_changes_when_the_file_is_replaced(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path / "m.onnx")
    before = FileStamp.of(path)
    _replace_atomically(path, "tiny0002")

    assert FileStamp.of(path) not in (None, before)
    assert FileStamp.of(tmp_path / "missing.onnx") is None


def test_swap_under_load_fails_no_request(tmp_path: Path, square_png: bytes) -> None:
    """Four clients post without pause while the file is replaced by a new model, then by a broken one."""
    model = write_tiny_model(tmp_path / "model.onnx", version="tiny0001")
    app = create_app(Settings(model_path=model, model_watch_interval=WATCH, log_level="ERROR"))
    stop = threading.Event()
    answers: list[list[tuple[int, str]]] = [[] for _ in range(4)]

    def client(base_url: str, seen: list[tuple[int, str]]) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as http:
            deadline = time.monotonic() + 30  # bounded even if the test body fails
            while not stop.is_set() and time.monotonic() < deadline:
                response = http.post("/predict?format=rle", files={"image": ("t.png", square_png)})
                seen.append((response.status_code, response.headers.get("x-model-version", "")))

    with live_server(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        wait_ready(http.get)
        threads = [threading.Thread(target=client, args=(base_url, seen)) for seen in answers]
        for thread in threads:
            thread.start()
        try:
            _wait_for(lambda: all(len(seen) >= 5 for seen in answers), "the clients to get going")
            _replace_atomically(model, "tiny0002")
            _wait_for(lambda: http.get("/model").json()["version"] == "tiny0002", "the new model")
            _wait_for(lambda: all(seen[-1][1] == "tiny0002" for seen in answers), "clients on the new model")
            _replace_atomically(model, None)
            _wait_for(lambda: _reloads(http).get("failure") == 1, "the broken file to be refused")
            served = sum(len(seen) for seen in answers)
            _wait_for(lambda: sum(len(seen) for seen in answers) >= served + 20, "more answers after it")
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
        model_card = http.get("/model").json()
        ready = http.get("/readyz")
        reloads = _reloads(http)

    statuses = [status for seen in answers for status, _ in seen]
    assert statuses.count(200) == len(statuses), f"failed requests: {len(statuses) - statuses.count(200)}"
    for seen in answers:
        versions = [version for _, version in seen]
        # Each client moves from the old model to the new one once, and never back.
        first_new = versions.index("tiny0002")
        assert set(versions[:first_new]) == {"tiny0001"} and set(versions[first_new:]) == {"tiny0002"}
    assert model_card["version"] == "tiny0002"  # the broken file left the new model serving
    assert ready.status_code == 200
    assert reloads == {"success": 1, "failure": 1}


def test_in_flight_request_finishes_on_the_old_model(
    tmp_path: Path, square_png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = write_tiny_model(tmp_path / "model.onnx", version="tiny0001")
    release = threading.Event()
    settings = Settings(model_path=model, model_watch_interval=WATCH, log_level="ERROR")
    with TestClient(create_app(settings)) as client:
        wait_ready(client.get)
        engine = client.app.state.engine  # type: ignore[attr-defined]
        old = engine.predictor
        real_predict = old.predict

        def held_predict(gray: np.ndarray, rule: DecisionRule | None = None) -> Inference:
            release.wait(timeout=10)
            return real_predict(gray, rule)

        monkeypatch.setattr(old, "predict", held_predict)
        in_flight: list[httpx.Response] = []
        request = threading.Thread(
            target=lambda: in_flight.append(client.post("/predict", files={"image": ("t.png", square_png)}))
        )
        request.start()
        _wait_for(lambda: engine.pending == 1, "the request to reach inference")

        _replace_atomically(model, "tiny0002")
        _wait_for(lambda: client.get("/model").json()["version"] == "tiny0002", "the new model")
        answers: list[httpx.Response] = []
        later = threading.Thread(
            target=lambda: answers.append(client.post("/predict", files={"image": ("t.png", square_png)}))
        )
        later.start()  # admitted after the swap; waits for the old model's request to end
        _wait_for(lambda: engine.pending == 2, "the later request to be admitted")
        still_waiting = not in_flight
        release.set()
        request.join(timeout=10)
        later.join(timeout=10)
        after = answers[0]

    assert still_waiting  # the old model's request was in flight all through the swap
    assert (in_flight[0].status_code, in_flight[0].json()["model"]["version"]) == (200, "tiny0001")
    assert in_flight[0].headers["x-model-version"] == "tiny0001"
    assert (after.status_code, after.json()["model"]["version"]) == (200, "tiny0002")


def test_a_model_that_failed_to_load_is_replaced_by_a_good_one(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not a model yet")
    settings = Settings(model_path=model, model_watch_interval=WATCH, log_level="ERROR")
    with TestClient(create_app(settings)) as client:
        wait_ready(client.get, "failed")
        _replace_atomically(model, "tiny0003")
        _wait_for(lambda: client.get("/readyz").status_code == 200, "the good model")
        version = client.get("/model").json()["version"]

    assert version == "tiny0003"
