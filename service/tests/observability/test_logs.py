"""Structured logs: one JSON line per request, carrying the id echoed in X-Request-ID."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tilescan_service.config import Settings
from tilescan_service.main import create_app
from tilescan_service.testing import wait_ready


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_each_request_logs_one_json_line_with_its_request_id(
    tiny_model: Path, square_png: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    with TestClient(create_app(Settings(model_path=tiny_model, log_format="json"))) as client:
        wait_ready(client.get)
        capsys.readouterr()
        mine = client.post("/predict", files={"image": square_png}, headers={"X-Request-ID": "cam-7.0042"})
        forged = client.get("/healthz", headers={"X-Request-ID": "bad id\nlevel=ERROR"})

    lines = _lines(capsys.readouterr().err)
    access = [line for line in lines if line["logger"] == "tilescan_service.access"]

    assert mine.headers["x-request-id"] == "cam-7.0042"
    assert len(forged.headers["x-request-id"]) == 32  # replaced by a fresh id
    assert access[0]["request_id"] == "cam-7.0042"
    assert access[0] | {"duration_ms": 0} == {
        "ts": access[0]["ts"],
        "level": "INFO",
        "logger": "tilescan_service.access",
        "msg": "request",
        "request_id": "cam-7.0042",
        "method": "POST",
        "path": "/predict",
        "route": "/predict",
        "status": 200,
        "duration_ms": 0,
        "client": "testclient",
    }
    assert access[1]["request_id"] == forged.headers["x-request-id"]


def test_model_load_is_logged(tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with TestClient(create_app(Settings(model_path=tiny_model))) as client:
        wait_ready(client.get)

    ready = [line for line in _lines(capsys.readouterr().err) if line["msg"] == "model ready"]
    assert ready[0]["version"] == "tiny0001"
    assert ready[0]["providers"] == ["CPUExecutionProvider"]
