from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families


def _samples(client: TestClient) -> dict[tuple[str, frozenset], float]:
    text = client.get("/metrics").text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_requests_by_route_and_status_and_time_inference(
    client: TestClient, square_png: bytes
) -> None:
    client.post("/predict", files={"image": ("t.png", square_png)})
    client.post("/predict", files={"image": ("t.png", b"junk")})
    client.get("/no/such/page/42")

    samples = _samples(client)
    response = client.get("/metrics")

    assert response.headers["content-type"].startswith("text/plain")
    ok = frozenset({("route", "/predict"), ("method", "POST"), ("status", "200")})
    bad = frozenset({("route", "/predict"), ("method", "POST"), ("status", "400")})
    assert samples[("tilescan_http_requests_total", ok)] >= 1
    assert samples[("tilescan_http_requests_total", bad)] >= 1
    assert samples[("tilescan_http_request_duration_seconds_count", ok)] >= 1
    unmatched = frozenset({("route", "<unmatched>"), ("method", "GET"), ("status", "404")})
    assert samples[("tilescan_http_requests_total", unmatched)] >= 1
    assert samples[("tilescan_inference_duration_seconds_count", frozenset())] >= 1
    assert samples[("tilescan_image_pixels_sum", frozenset())] >= 2400
    assert samples[("tilescan_http_requests_in_flight", frozenset())] == 1  # the scrape itself
    info = frozenset(
        {("name", "tilescan-tiny"), ("version", "tiny0001"), ("providers", "CPUExecutionProvider")}
    )
    assert samples[("tilescan_model_info", info)] == 1
