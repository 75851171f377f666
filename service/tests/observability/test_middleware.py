"""A bug inside a route still yields a JSON 500 carrying the request id, and the service goes on."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tilescan_service.config import Settings
from tilescan_service.main import create_app


def test_unexpected_error_is_a_json_500_with_the_request_id(tiny_model: Path) -> None:
    app = create_app(Settings(model_path=tiny_model, log_level="ERROR"))

    async def broken() -> None:
        raise RuntimeError("internal detail that must not leak")

    app.add_api_route("/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/broken")
        after = client.get("/healthz")
        metrics = client.get("/metrics").text

    assert response.status_code == 500
    assert response.json() == {
        "error": "internal_error",
        "detail": "an unexpected error occurred; quote the request id",
        "request_id": response.headers["x-request-id"],
    }
    assert after.status_code == 200
    assert 'tilescan_http_requests_total{method="GET",route="/broken",status="500"} 1.0' in metrics
