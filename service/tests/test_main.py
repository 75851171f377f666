"""The app factory's wiring: CORS only for configured origins."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tilescan_service.config import Settings
from tilescan_service.main import create_app

PREFLIGHT = {"Access-Control-Request-Method": "POST"}


def test_no_cross_origin_access_by_default(client: TestClient) -> None:
    response = client.get("/healthz", headers={"Origin": "https://elsewhere.example"})

    assert "access-control-allow-origin" not in response.headers


def test_configured_origins_may_call_the_api(tiny_model: Path) -> None:
    settings = Settings(
        model_path=tiny_model, cors_origins=["https://line3.plant.example"], log_level="WARNING"
    )

    with TestClient(create_app(settings)) as client:
        allowed = client.options("/predict", headers={"Origin": "https://line3.plant.example", **PREFLIGHT})
        other = client.options("/predict", headers={"Origin": "https://elsewhere.example", **PREFLIGHT})

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://line3.plant.example"
    assert "access-control-allow-origin" not in other.headers
