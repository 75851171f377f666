"""The drift watch: the service's last tiles against the model's training reference, and the report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from tilescan_service.config import Settings
from tilescan_service.main import create_app
from tilescan_service.testing import live_server, wait_ready
from tilescan_shared import drift
from tilescan_shared.testing import write_tiny_model

from .conftest import encode

REPORT = Path(__file__).resolve().parents[2] / "scripts" / "drift_report.py"

RNG = np.random.default_rng(0)


def _tiles(mean: float, count: int) -> list[np.ndarray]:
    return [RNG.normal(mean, 12, (200, 300)).clip(0, 255).astype(np.uint8) for _ in range(count)]


@pytest.fixture(scope="module")
def dark_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained, so its reference says, on dark tiles (mean gray level about 60)."""
    stats = [drift.tile_stats(tile) for tile in _tiles(60, 200)]
    reference = drift.reference({stat: [s[stat] for s in stats] for stat in drift.INPUT_STATS})
    return write_tiny_model(tmp_path_factory.mktemp("drift") / "dark.onnx", reference=reference)


def _samples(client: TestClient) -> dict[str, float]:
    lines = [
        line for line in client.get("/metrics").text.splitlines() if line.startswith("tilescan_input_drift")
    ]
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines}


def test_a_window_of_brighter_tiles_drifts_and_the_histograms_count_every_tile(dark_model: Path) -> None:
    with TestClient(
        create_app(Settings(model_path=dark_model, drift_window=20, log_level="WARNING"))
    ) as client:
        wait_ready(client.get)
        for tile in _tiles(60, 10):
            assert client.post("/predict?format=rle", files={"image": encode(tile)}).status_code == 200
        calm = _samples(client)
        for tile in _tiles(140, 20):  # the window now holds only bright tiles
            client.post("/predict?format=rle", files={"image": encode(tile)})
        drifted = _samples(client)
        histogram = client.get("/metrics").text
    assert calm["tilescan_input_drift_window_tiles"] == 10
    assert calm['tilescan_input_drift_psi{stat="mean_intensity"}'] < 0.1
    assert drifted["tilescan_input_drift_window_tiles"] == 20
    assert drifted['tilescan_input_drift_psi{stat="mean_intensity"}'] > drift.DRIFTED
    assert drifted['tilescan_input_drift_psi{stat="pixels"}'] < 0.1  # same sizes throughout
    assert "tilescan_input_mean_intensity_count 30.0" in histogram
    assert 'tilescan_input_mean_intensity_bucket{le="60.0"}' in histogram


def _report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPORT), *args], capture_output=True, text=True, timeout=60)


def test_the_report_names_what_drifted_from_a_service(dark_model: Path) -> None:
    with live_server(create_app(Settings(model_path=dark_model, log_level="WARNING"))) as url:
        wait_ready(lambda path: httpx.get(f"{url}{path}"))
        for tile in _tiles(140, 12):
            httpx.post(
                f"{url}/predict?format=rle", files={"image": encode(tile)}, timeout=20
            ).raise_for_status()
        report = _report("--url", url)
    assert report.returncode == 1, report.stderr
    assert "12 tiles against the model's training reference" in report.stdout
    assert "| mean_intensity |" in report.stdout
    assert "drifted: mean_intensity (threshold 0.25)" in report.stdout


def test_the_report_reads_the_sampled_captures(dark_model: Path, tmp_path: Path) -> None:
    settings = Settings(  # every tile sampled (none uncertain: those are no fair picture of the inputs)
        model_path=dark_model,
        capture_url=str(tmp_path),
        capture_sample_rate=1.0,
        capture_band=0.0,
        log_level="WARNING",
    )
    with TestClient(create_app(settings)) as client:  # leaving it drains the capture queue
        wait_ready(client.get)
        for tile in _tiles(60, 8):
            client.post("/predict?format=rle", files={"image": encode(tile)})
    report = _report("--captures", str(tmp_path), "--model", str(dark_model))
    assert report.returncode == 0, report.stdout + report.stderr
    assert "8 tiles against" in report.stdout and "no input drifted" in report.stdout
    empty = _report("--captures", str(tmp_path / "empty"), "--model", str(dark_model))
    assert empty.returncode == 2 and "nothing to compare" in empty.stdout
