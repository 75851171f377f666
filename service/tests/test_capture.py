"""Capture through the real app: what is kept, what is stored with it, and that it stays bounded."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

import fsspec
import numpy as np
import pytest
from fastapi.testclient import TestClient

from tilescan_service.config import Settings
from tilescan_service.main import create_app
from tilescan_service.testing import free_port, wait_ready
from tilescan_shared.captures import SAMPLED, UNCERTAIN, CaptureRecord, CaptureStore
from tilescan_shared.masks import decode_rle
from tilescan_shared.testing import write_tiny_model

TILE_THRESHOLD = 0.5  # the tiny model's tile score is its brightest pixel / 255


def tile(brightest: int, seed: int = 0) -> np.ndarray:
    """A dark tile whose brightest pixels (a 6x8 box) are ``brightest``; ``seed`` makes it unique."""
    img = np.random.default_rng(seed).integers(0, 40, (30, 50), dtype=np.uint8)
    img[10:16, 20:28] = brightest
    return img


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("capture") / "tiny.onnx"
    return write_tiny_model(path, threshold=0.5, tile_threshold=TILE_THRESHOLD, version="capt0001")


@contextmanager
def service(model: Path, url: str, **settings: object) -> Iterator[tuple[TestClient, CaptureStore]]:
    app = create_app(Settings(model_path=model, capture_url=url, log_level="WARNING", **settings))
    with TestClient(app) as client:
        wait_ready(client.get)
        yield client, app.state.capturer.store


def metric(client: TestClient, name: str, reason: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'{name}{{reason="{reason}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_uncertain_tiles_are_captured_with_the_answer_and_nothing_about_the_client(model, tmp_path, encoder):
    uncertain, confident = encoder(tile(135)), encoder(tile(250))  # scores 0.53 and 0.98 against 0.5
    with service(model, str(tmp_path / "captures")) as (client, store):
        headers = {"User-Agent": "plant-camera-7", "X-Forwarded-For": "10.1.2.3"}
        for data in (uncertain, confident):
            files = {"image": ("station7-0001.png", data, "image/png")}
            assert client.post("/predict", files=files, headers=headers).status_code == 200
        until(lambda: metric(client, "tilescan_capture_stored_total", UNCERTAIN) == 1)

    [record] = list(store.records())
    assert (record.reason, record.model_version, record.has_defect) == (UNCERTAIN, "capt0001", True)
    assert record.score == pytest.approx(135 / 255, abs=1e-6) and record.threshold == TILE_THRESHOLD
    assert (record.height, record.width) == (30, 50)
    assert store.image(record.sha256) == uncertain
    assert decode_rle(record.rle)[10:16, 20:28].all()
    stored = {p.name for p in (tmp_path / "captures").rglob("*") if p.is_file()}
    assert stored == {record.sha256, f"{record.sha256}.json"}
    raw = (tmp_path / "captures/captures" / f"{record.sha256}.json").read_text()
    assert set(json.loads(raw)) == {f.name for f in fields(CaptureRecord)}
    for personal in ("station7", "plant-camera", "10.1.2.3", "testclient", "127.0.0.1"):
        assert personal not in raw


def test_a_tile_posted_twice_is_stored_once(model, tmp_path, encoder):
    data = encoder(tile(130))
    with service(model, str(tmp_path)) as (client, store):
        for _ in range(2):
            assert client.post("/predict", files={"image": ("t.png", data)}).status_code == 200
        until(lambda: metric(client, "tilescan_capture_dropped_total", "duplicate") == 1)
        assert metric(client, "tilescan_capture_stored_total", UNCERTAIN) == 1
    assert len(list(store.records())) == 1


def test_a_sample_of_the_confident_tiles_and_any_fsspec_url(model, encoder):
    with service(model, "memory://tilescan-capture-test", capture_sample_rate=1.0) as (client, store):
        assert client.post("/predict", files={"image": ("t.png", encoder(tile(250)))}).status_code == 200
        until(lambda: metric(client, "tilescan_capture_stored_total", SAMPLED) == 1)
    assert [r.reason for r in store.records()] == [SAMPLED]


def test_a_stuck_store_drops_and_counts_without_delaying_answers(model, tmp_path, encoder, monkeypatch):
    release = threading.Event()
    real_write = CaptureStore.write

    def stuck(self: CaptureStore, image: bytes, record: CaptureRecord) -> bool:
        release.wait(timeout=20)
        return real_write(self, image, record)

    monkeypatch.setattr(CaptureStore, "write", stuck)
    with service(model, str(tmp_path), capture_queue_size=2) as (client, store):
        started = time.monotonic()
        statuses = [
            client.post("/predict", files={"image": ("t.png", encoder(tile(130, seed)))}).status_code
            for seed in range(6)
        ]
        answered = time.monotonic() - started
        # one in the writer, two queued, three dropped
        assert metric(client, "tilescan_capture_dropped_total", "queue_full") == 3
        release.set()
        until(lambda: metric(client, "tilescan_capture_stored_total", UNCERTAIN) == 3)
    assert statuses == [200] * 6
    assert answered < 5
    assert len(list(store.records())) == 3


def test_the_daily_byte_budget_drops_and_counts(model, tmp_path, encoder):
    first = encoder(tile(130, 1))
    with service(model, str(tmp_path), capture_max_bytes_per_day=len(first) + 10) as (client, _):
        for seed in (1, 2):
            assert (
                client.post("/predict", files={"image": ("t.png", encoder(tile(130, seed)))}).status_code
                == 200
            )
        until(lambda: metric(client, "tilescan_capture_stored_total", UNCERTAIN) == 1)
        assert metric(client, "tilescan_capture_dropped_total", "daily_limit") == 1


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real S3 API on 127.0.0.1 (moto's server) with a bucket; the standard AWS variables point at it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for key, value in {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    try:
        fsspec.filesystem("s3", skip_instance_cache=True).mkdir("plant-tiles")
        yield "s3://plant-tiles/captures"
    finally:
        server.stop()


def test_captures_round_trip_through_s3(model, encoder, s3):
    data = encoder(tile(131))
    with service(model, s3) as (client, _):
        assert client.post("/predict", files={"image": ("t.png", data)}).status_code == 200
        until(lambda: metric(client, "tilescan_capture_stored_total", UNCERTAIN) == 1)
    # Read back by a fresh client, as the labelling export will.
    fresh = CaptureStore(s3)
    [record] = list(fresh.records())
    assert fresh.image(record.sha256) == data
    assert sorted(fresh.fs.ls("plant-tiles/captures")) == [
        "plant-tiles/captures/captures",
        "plant-tiles/captures/images",
    ]
