"""/metrics: series by route template, method and status, bounded whatever clients send."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tilescan_service.routes import metrics as metrics_route


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
    solo = frozenset({("lane", "solo")})  # one request alone runs solo
    assert samples[("tilescan_inference_duration_seconds_count", solo)] >= 1
    assert samples[("tilescan_inference_cpu_seconds_total", solo)] > 0
    assert samples[("tilescan_image_pixels_sum", frozenset())] >= 2400
    assert samples[("tilescan_http_requests_in_flight", frozenset())] == 1  # the scrape itself
    info = frozenset(
        {
            ("name", "tilescan-tiny"),
            ("version", "tiny0001"),
            ("providers", "CPUExecutionProvider"),
            ("precision", "fp32"),
        }
    )
    assert samples[("tilescan_model_info", info)] == 1


def test_made_up_methods_and_paths_share_one_label(client: TestClient) -> None:
    """Whatever a client sends, the number of series stays bounded (issue 9: +449 kB for 200 methods)."""
    client.request("BREW", "/coffee/1")
    before = len(client.get("/metrics").content)
    for i in range(50):
        client.request(f"MADEUP{i}", f"/made/up/{i}")

    text = client.get("/metrics").text
    samples = _samples(client)

    other = frozenset({("route", "<unmatched>"), ("method", "<other>"), ("status", "404")})
    assert samples[("tilescan_http_requests_total", other)] >= 51
    assert "MADEUP" not in text and "/made/up" not in text
    # The counters of the one label grew; no new series (a series is ~0.1-1 kB).
    assert len(text) - before < 200


def test_metrics_are_rendered_off_the_event_loop(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[bool] = []

    def recording(registry: CollectorRegistry) -> bytes:
        try:
            asyncio.get_running_loop()
            threads.append(True)
        except RuntimeError:  # no loop running in this thread: a worker thread
            threads.append(False)
        return generate_latest(registry)

    monkeypatch.setattr(metrics_route, "generate_latest", recording)

    assert client.get("/metrics").status_code == 200
    assert threads == [False]
