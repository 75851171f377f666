"""The model the repository ships (models/tilescan.onnx) loads, warms up and answers at full resolution."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from tilescan_service.config import Settings
from tilescan_service.main import create_app
from tilescan_service.testing import wait_ready

COMMITTED_MODEL = Path(__file__).resolve().parents[2] / "models" / "tilescan.onnx"


def test_committed_model_serves_full_resolution_masks(encoder: Callable[..., bytes]) -> None:
    tile = np.full((301, 187), 90, dtype=np.uint8)
    tile[100:140, 50:60] = 15  # a dark streak, the way cracks look on these tiles

    with TestClient(create_app(Settings(model_path=COMMITTED_MODEL, log_level="WARNING"))) as client:
        ready = wait_ready(client.get)
        model = client.get("/model").json()
        body = client.post("/predict?format=rle", files={"image": encoder(tile)}).json()

    assert ready.status_code == 200, ready.json()
    assert model["name"] == "tilescan"
    assert 0 < model["threshold"] < 1
    assert model["working_size"] == [256, 256]
    assert model["metrics"], "evaluate stamps the test metrics into the model"
    assert body["rle"]["size"] == [301, 187]
    assert sum(body["rle"]["counts"]) == 301 * 187
    assert body["threshold"] == model["threshold"]
    assert body["model"] == {"name": model["name"], "version": model["version"]}
