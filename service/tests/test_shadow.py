"""Shadow comparison between two live uvicorn services on 127.0.0.1 with different decision rules."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tilescan_service.config import Settings
from tilescan_service.main import create_app
from tilescan_service.shadow import (
    DOWN_RETRY_SECONDS,
    MAX_VERSION_PAIRS,
    OTHER,
    Comparison,
    ShadowAnswerError,
    ShadowMirror,
    compare,
)
from tilescan_service.testing import free_port, live_server
from tilescan_shared.captures import CaptureStore
from tilescan_shared.masks import encode_rle
from tilescan_shared.testing import bright_square, write_tiny_model

REPO = Path(__file__).resolve().parents[2]
# The tiny model's probability is pixel / 255: 255 -> 1.0, GRAY -> 0.78, the background 20 -> 0.08.
GRAY = 200
PRIMARY_THRESHOLD, SHADOW_THRESHOLD = 0.5, 0.9
PAIR = {"primary_version": "prim0001", "shadow_version": "shad0001"}


def tile(bright: bool, gray: bool) -> np.ndarray:
    """40x60 dark tile; a 20x15 white box (both rules see it), a 10x10 gray one (only the primary's)."""
    img = bright_square() if bright else np.full((40, 60), 20, dtype=np.uint8)
    if gray:
        img[25:35, 40:50] = GRAY
    return img


@contextmanager
def serve(settings: Settings, port: int | None = None) -> Iterator[str]:
    """A real server in a thread (on a free port by default); yields its URL once /readyz is 200."""
    with live_server(create_app(settings), port=port) as base_url:
        wait_for(lambda: httpx.get(f"{base_url}/readyz").status_code == 200)
        yield base_url


def wait_for(condition: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.02)


def scrape(base_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``{(sample name, labels): value}`` of the service's /metrics."""
    text = httpx.get(f"{base_url}/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(metrics: dict, name: str, **labels: str) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


def dropped(metrics: dict) -> dict[str, float]:
    return {
        dict(labels)["reason"]: v
        for (name, labels), v in metrics.items()
        if name == "tilescan_shadow_dropped_total"
    }


def predict(
    base_url: str, encoder: Callable[..., bytes], image: np.ndarray, **params: float
) -> httpx.Response:
    return httpx.post(
        f"{base_url}/predict", params={"format": "rle", **params}, files={"image": ("t.png", encoder(image))}
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("shadow-models")
    return (
        write_tiny_model(folder / "primary.onnx", threshold=PRIMARY_THRESHOLD, version="prim0001"),
        write_tiny_model(folder / "shadow.onnx", threshold=SHADOW_THRESHOLD, version="shad0001"),
    )


def primary_settings(model: Path, shadow_url: str, **overrides: object) -> Settings:
    return Settings(model_path=model, log_level="WARNING", shadow_url=shadow_url, **overrides)


def test_agreement_of_two_decision_rules_is_recorded_and_reported(
    models: tuple[Path, Path], encoder: Callable[..., bytes]
) -> None:
    primary_model, shadow_model = models
    # (image, threshold query, primary's mask size, shadow's, shared pixels)
    cases = [
        (tile(bright=True, gray=True), {}, 400, 300, 300),  # the gray box: only the primary's rule
        (tile(bright=False, gray=False), {}, 0, 0, 0),  # nothing on either side: Dice 1
        (tile(bright=False, gray=True), {}, 100, 0, 0),  # only the primary calls it a defect
        (tile(bright=True, gray=True), {"threshold": 0.3}, 400, 400, 400),  # threshold goes along too
    ]
    pair = PAIR
    with (
        serve(Settings(model_path=shadow_model, log_level="WARNING")) as shadow_url,
        serve(primary_settings(primary_model, shadow_url)) as primary_url,
    ):
        for image, params, primary_pixels, _, _ in cases:
            answer = predict(primary_url, encoder, image, **params)
            assert answer.status_code == 200
            assert answer.json()["defect_pixels"] == primary_pixels  # the primary's own rule answers
        wait_for(lambda: value(scrape(primary_url), "tilescan_shadow_dice_count", **pair) == 4)
        metrics = scrape(primary_url)
        shadow_metrics = scrape(shadow_url)
        report = subprocess.run(
            [sys.executable, str(REPO / "scripts/shadow_report.py"), primary_url],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout

    dice = [2 * both / (p + s) if p + s else 1.0 for _, _, p, s, both in cases]
    iou = [both / (p + s - both) if p + s else 1.0 for _, _, p, s, both in cases]
    assert value(metrics, "tilescan_shadow_dice_count", **pair) == 4
    assert value(metrics, "tilescan_shadow_dice_sum", **pair) == pytest.approx(sum(dice))
    assert value(metrics, "tilescan_shadow_iou_sum", **pair) == pytest.approx(sum(iou))
    # Dice 0.857 (first case) and 0 (third) fall at or under the 0.9 bucket; the two Dice-1 cases do not.
    assert value(metrics, "tilescan_shadow_dice_bucket", **pair, le="0.9") == 2
    compared = {
        (flags, shadow_flag): value(
            metrics,
            "tilescan_shadow_compared_total",
            **pair,
            primary_has_defect=flags,
            shadow_has_defect=shadow_flag,
        )
        for flags in ("true", "false")
        for shadow_flag in ("true", "false")
    }
    assert compared == {
        ("true", "true"): 2,
        ("false", "false"): 1,
        ("true", "false"): 1,
        ("false", "true"): 0,
    }
    assert value(metrics, "tilescan_shadow_sampled_total") == 4
    assert set(dropped(metrics).values()) == {0}
    # The mirrored requests really reached the shadow, as RLE.
    assert (
        value(shadow_metrics, "tilescan_http_requests_total", route="/predict", method="POST", status="200")
        == 4
    )

    assert "sampled 4: compared 4, dropped 0" in report
    mean_dice, mean_iou = sum(dice) / 4, sum(iou) / 4
    assert (
        f"| prim0001 | shad0001 | 4 | {mean_dice:.4f} | {mean_iou:.4f} | 50.0% | 50.0% | 75.0% | 1 | 0 |"
        in report
    )


def test_shadow_down_never_fails_the_primary_and_drops_are_counted(
    models: tuple[Path, Path], encoder: Callable[..., bytes]
) -> None:
    shadow_port = free_port()  # nobody listens there yet
    with serve(primary_settings(models[0], f"http://127.0.0.1:{shadow_port}")) as primary_url:
        for _ in range(5):
            answer = predict(primary_url, encoder, tile(bright=True, gray=True))
            assert answer.status_code == 200
            assert answer.json()["defect_pixels"] == 400
        wait_for(lambda: dropped(scrape(primary_url))["shadow_down"] == 5)
        metrics = scrape(primary_url)
        # The shadow comes up: once DOWN_RETRY_SECONDS have passed, mirroring resumes by itself.
        with serve(Settings(model_path=models[1], log_level="WARNING"), port=shadow_port):
            time.sleep(DOWN_RETRY_SECONDS)
            assert predict(primary_url, encoder, tile(bright=True, gray=True)).status_code == 200
            wait_for(lambda: value(scrape(primary_url), "tilescan_shadow_dice_count", **PAIR) == 1)
    assert value(metrics, "tilescan_shadow_sampled_total") == 5
    assert value(metrics, "tilescan_http_requests_total", route="/predict", method="POST", status="200") == 5


def test_slow_shadow_times_out_and_a_full_queue_drops(
    models: tuple[Path, Path], encoder: Callable[..., bytes]
) -> None:
    # Connections complete in the kernel's backlog, but nobody ever answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings = primary_settings(
            models[0], silent_url, shadow_timeout_seconds=1.0, shadow_queue_size=1, shadow_concurrency=1
        )
        with serve(settings) as primary_url:
            started = time.perf_counter()
            # One request waits on the shadow, one in the queue; the third finds the queue full.
            statuses = [
                predict(primary_url, encoder, tile(bright=True, gray=False)).status_code for _ in range(3)
            ]
            answered = time.perf_counter() - started
            wait_for(lambda: dropped(scrape(primary_url))["timeout"] == 2)
            reasons = dropped(scrape(primary_url))
    assert statuses == [200, 200, 200]
    assert answered < 1.0  # the primary never waited for the shadow's timeout
    assert reasons["queue_full"] == 1
    assert reasons["shadow_down"] == reasons["shadow_error"] == 0


def test_an_error_answer_is_dropped_as_shadow_error(
    models: tuple[Path, Path], encoder: Callable[..., bytes]
) -> None:
    with (
        serve(Settings(model_path=models[1], log_level="WARNING")) as shadow_url,
        # A path under which the shadow has no /predict: it answers 404.
        serve(primary_settings(models[0], f"{shadow_url}/nowhere")) as primary_url,
    ):
        assert predict(primary_url, encoder, tile(bright=True, gray=False)).status_code == 200
        wait_for(lambda: dropped(scrape(primary_url))["shadow_error"] == 1)


def test_sample_rate_zero_mirrors_nothing(models: tuple[Path, Path], encoder: Callable[..., bytes]) -> None:
    down_url = f"http://127.0.0.1:{free_port()}"
    with serve(primary_settings(models[0], down_url, shadow_sample_rate=0)) as primary_url:
        for _ in range(3):
            assert predict(primary_url, encoder, tile(bright=True, gray=False)).status_code == 200
        metrics = scrape(primary_url)
    assert value(metrics, "tilescan_shadow_sampled_total") == 0
    assert set(dropped(metrics).values()) == {0}


def test_without_a_shadow_url_there_are_no_shadow_series(client: TestClient) -> None:
    assert "tilescan_shadow_" not in client.get("/metrics").text


def test_version_labels_stay_bounded(models: tuple[Path, Path]) -> None:
    from prometheus_client import CollectorRegistry

    mirror = ShadowMirror(primary_settings(models[0], "http://127.0.0.1:9"), CollectorRegistry())
    pairs = [mirror._pair("prim", f"v{i}") for i in range(MAX_VERSION_PAIRS + 3)]
    assert pairs[:MAX_VERSION_PAIRS] == [("prim", f"v{i}") for i in range(MAX_VERSION_PAIRS)]
    assert set(pairs[MAX_VERSION_PAIRS:]) == {(OTHER, OTHER)}
    assert mirror._pair("prim", "v0") == ("prim", "v0")  # a pair seen before keeps its labels


def test_shadow_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILESCAN_SHADOW_URL", "http://dev.example:8000")
    monkeypatch.setenv("TILESCAN_SHADOW_SAMPLE_RATE", "0.25")
    monkeypatch.setenv("TILESCAN_SHADOW_QUEUE_SIZE", "4")
    monkeypatch.setenv("TILESCAN_SHADOW_TIMEOUT_SECONDS", "2.5")
    settings = Settings()
    assert str(settings.shadow_url) == "http://dev.example:8000/"
    assert (settings.shadow_sample_rate, settings.shadow_queue_size, settings.shadow_timeout_seconds) == (
        0.25,
        4,
        2.5,
    )
    monkeypatch.setenv("TILESCAN_SHADOW_SAMPLE_RATE", "1.5")
    with pytest.raises(ValueError, match="shadow_sample_rate"):
        Settings()
    monkeypatch.setenv("TILESCAN_SHADOW_SAMPLE_RATE", "1")
    monkeypatch.setenv("TILESCAN_SHADOW_URL", "not a url")
    with pytest.raises(ValueError, match="shadow_url"):
        Settings()


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        ({"rle": {"size": [2, 2], "counts": [4]}, "model": {"version": "x"}}, "unreadable"),
        ({"rle": {"size": [2, 3], "counts": [6]}, "has_defect": False, "model": {"version": "x"}}, "differs"),
        ({"rle": {"size": [2, 2], "counts": [4]}, "has_defect": "no", "model": {"version": "x"}}, "boolean"),
    ],
)
def test_an_unreadable_shadow_answer_is_refused(answer: dict, match: str) -> None:
    with pytest.raises(ShadowAnswerError, match=match):
        compare(np.zeros((2, 2), dtype=np.uint8), json.dumps(answer).encode())
    with pytest.raises(ShadowAnswerError, match="unreadable"):
        compare(np.zeros((2, 2), dtype=np.uint8), b"not json")


def test_compare_scores_the_two_masks() -> None:
    primary = np.array([[1, 1], [0, 0]], dtype=np.uint8)
    shadow = np.array([[1, 0], [0, 0]], dtype=np.uint8)
    body = json.dumps({"rle": encode_rle(shadow), "has_defect": True, "model": {"version": "v2"}}).encode()
    expected = Comparison(dice=2 / 3, iou=0.5, shadow_has_defect=True, shadow_version="v2")
    assert compare(primary, body) == expected


def test_a_tile_the_shadow_decides_the_other_way_is_captured(
    models: tuple[Path, Path], encoder: Callable[..., bytes], tmp_path: Path
) -> None:
    primary_model, shadow_model = models
    agreed, disputed = tile(bright=True, gray=False), tile(bright=False, gray=True)  # gray: primary only
    with (
        serve(Settings(model_path=shadow_model, log_level="WARNING")) as shadow_url,
        serve(primary_settings(primary_model, shadow_url, capture_url=str(tmp_path), capture_band=0)) as url,
    ):
        for image in (agreed, disputed):
            assert predict(url, encoder, image).status_code == 200
        wait_for(
            lambda: value(scrape(url), "tilescan_capture_stored_total", reason="shadow_disagreement") == 1
        )
        assert value(scrape(url), "tilescan_shadow_dice_count", **PAIR) == 2
    [record] = list(CaptureStore(str(tmp_path)).records())
    assert (record.reason, record.has_defect, record.height, record.width) == (
        "shadow_disagreement",
        True,
        40,
        60,
    )
