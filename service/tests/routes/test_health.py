"""Liveness and readiness: /readyz is 503 until the model is loaded and warmed up."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tilescan_service.config import Settings
from tilescan_service.engine import Engine
from tilescan_service.main import create_app
from tilescan_service.testing import wait_ready


def test_healthz_answers(client: TestClient) -> None:
    response = client.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_is_200_when_ready(client: TestClient) -> None:
    response = client.get("/readyz")

    assert (response.status_code, response.json()) == (200, {"status": "ready", "detail": None})


def test_readyz_is_503_and_predict_waits_while_the_model_loads(
    settings: Settings, square_png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real_load = Engine.load

    def slow_load(self: Engine) -> None:
        release.wait(timeout=10)
        real_load(self)

    monkeypatch.setattr(Engine, "load", slow_load)
    with TestClient(create_app(settings)) as client:
        loading = client.get("/readyz")
        early = client.post("/predict", files={"image": ("t.png", square_png)})
        alive = client.get("/healthz")
        release.set()
        wait_ready(client.get)
        later = client.post("/predict", files={"image": ("t.png", square_png)})

    assert (loading.status_code, loading.json()["status"]) == (503, "loading")
    assert (early.status_code, early.json()["error"]) == (503, "not_ready")
    assert early.headers["retry-after"] == "1"
    assert alive.status_code == 200
    assert later.status_code == 200


def test_readyz_reports_a_model_that_fails_to_load_without_internals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")

    with TestClient(create_app(Settings(model_path=broken, log_level="ERROR"))) as client:
        ready = wait_ready(client.get, "failed")
        model = client.get("/model")
    log = capsys.readouterr().err

    assert ready.status_code == 503
    assert ready.json()["status"] == "failed"
    assert "failed to load" in ready.json()["detail"]
    assert (model.status_code, model.json()["error"]) == (503, "not_ready")
    # Where the file is and what onnxruntime said are for the operator's log, not for clients.
    for body in (ready.text, model.text):
        assert str(tmp_path) not in body and "broken.onnx" not in body
        assert "INVALID_PROTOBUF" not in body and "onnxruntime" not in body.lower()
    assert str(broken) in log and "INVALID_PROTOBUF" in log


def test_startup_refuses_a_missing_model_file(tmp_path: Path) -> None:
    app = create_app(Settings(model_path=tmp_path / "missing.onnx"))

    with pytest.raises(RuntimeError, match="does not exist"), TestClient(app):
        pass
