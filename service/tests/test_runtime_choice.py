"""The precision and layout served are chosen by timing them here, and say why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tilescan_service.config import Settings
from tilescan_service.engine import MIN_QUEUE_WAIT_SECONDS, Engine
from tilescan_service.main import create_app
from tilescan_service.memory import BIG_IMAGE_PIXELS
from tilescan_service.observability.metrics import ServiceMetrics
from tilescan_service.runtime_choice import choose
from tilescan_service.scheduling import Lane
from tilescan_service.testing import wait_ready
from tilescan_shared.runtimes import Variant, unavailable, variant_path
from tilescan_shared.testing import openvino_cache_capacities, write_tiny_model

PASSED = {"passed": True, "test": {"dice": 1.0}}


@pytest.fixture
def with_int8(tmp_path: Path) -> Path:
    """A tiny model that lists int8 as passed, with its int8 file beside it."""
    model = write_tiny_model(tmp_path / "tilescan.onnx", variants={"int8": PASSED})
    shutil.copyfile(model, variant_path(model, Variant.INT8))
    return model


def test_auto_times_fp32_and_each_listed_precision_and_serves_the_fastest(with_int8: Path) -> None:
    choice = choose(Settings(model_path=with_int8, intra_op_threads=2, inference_concurrency=2))
    timings = {t.precision: t for t in choice.timings}
    assert set(timings) == {"fp32", "int8"}
    assert all(t.solo_ms > 0 and t.shared_ms and t.shared_ms > 0 for t in timings.values())
    fastest = min(timings.values(), key=lambda t: t.best_ms)
    assert choice.precision == fastest.precision
    assert choice.reason.startswith(f"{fastest.precision}: the fastest per tile (fp32 ")
    assert choice.side_by_side == (fastest.best_ms < fastest.solo_ms)
    assert choice.seconds_per_pixel == pytest.approx(fastest.best_ms / 1000 / 64)  # an 8 x 8 working size


def test_a_model_without_variants_runs_fp32_and_says_so(tiny_model: Path) -> None:
    choice = choose(Settings(model_path=tiny_model, intra_op_threads=1))
    assert choice.precision == "fp32" and [t.precision for t in choice.timings] == ["fp32"]
    assert choice.reason == "fp32: the only precision this model may run at here"
    assert choice.timings[0].shared_ms is None and not choice.side_by_side  # one thread: one lane


def test_a_pinned_precision_is_served(with_int8: Path) -> None:
    choice = choose(Settings(model_path=with_int8, precision="int8", intra_op_threads=1))
    assert choice.precision == "int8" and choice.reason == "pinned by TILESCAN_PRECISION=int8"
    assert choice.sessions.solo.providers == ["CPUExecutionProvider"]


def test_with_bf16_chosen_big_images_run_fp32_on_onnxruntime(tmp_path: Path) -> None:
    model = write_tiny_model(tmp_path / "tilescan.onnx", variants={"bf16": PASSED})
    if unavailable(Variant.BF16, model, ["CPUExecutionProvider"]) is not None:
        pytest.skip("no bf16 here")
    choice = choose(Settings(model_path=model, precision="bf16", intra_op_threads=1))
    assert choice.precision == "bf16"
    for lane in Lane:
        assert choice.sessions.lane(lane, BIG_IMAGE_PIXELS - 1).variant is Variant.BF16
        big = choice.sessions.lane(lane, BIG_IMAGE_PIXELS)
        assert big.variant is Variant.FP32 and big.providers == ["CPUExecutionProvider"]


def test_the_openvino_cache_setting_reaches_every_bf16_session(tmp_path: Path) -> None:
    model = write_tiny_model(tmp_path / "tilescan.onnx", variants={"bf16": PASSED})
    if unavailable(Variant.BF16, model, ["CPUExecutionProvider"]) is not None:
        pytest.skip("no bf16 here")
    settings = Settings(model_path=model, precision="bf16", intra_op_threads=2, openvino_cache_capacity=7)
    with openvino_cache_capacities() as asked:
        assert choose(settings).precision == "bf16"
    assert asked == ["7", "7"]  # the solo lane and the shared lane


@pytest.mark.parametrize(
    ("precision", "why"),
    [
        ("bf16", "bf16: the model does not list it as having passed evaluation against fp32"),
        ("int8", "int8: tilescan.int8.onnx is not beside the model"),
    ],
)
def test_a_pinned_precision_that_cannot_run_falls_back_to_fp32(
    tmp_path: Path, precision: str, why: str
) -> None:
    model = write_tiny_model(tmp_path / "tilescan.onnx", variants={"int8": PASSED})  # no int8 file
    choice = choose(Settings(model_path=model, precision=precision, intra_op_threads=1))
    assert choice.precision == "fp32"
    assert choice.reason == f"TILESCAN_PRECISION={precision} cannot run here, so fp32; {why}"


def test_model_metrics_and_log_report_the_choice(with_int8: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(model_path=with_int8, precision="int8", intra_op_threads=1)
    with TestClient(create_app(settings)) as client:
        wait_ready(client.get)
        card = client.get("/model").json()
        metrics = client.get("/metrics").text
    assert card["variants"] == {"int8": PASSED}
    runtime = card["runtime"]
    assert runtime["precision"] == "int8" and runtime["reason"] == "pinned by TILESCAN_PRECISION=int8"
    assert [t["precision"] for t in runtime["timings"]] == ["int8"] and runtime["side_by_side"] is False
    assert 'precision="int8"' in metrics.split("tilescan_model_info{")[1].split("}")[0]
    assert 'tilescan_runtime_inference_seconds{lane="solo",precision="int8"}' in metrics
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    ready = next(line for line in lines if line["msg"] == "model ready")
    assert ready["precision"] == "int8" and ready["precision_reason"] == runtime["reason"]
    assert [t["precision"] for t in ready["timings_ms"]] == ["int8"]


def test_the_queue_wait_scales_with_the_pixels_ahead(tiny_model: Path) -> None:
    engine = Engine(Settings(model_path=tiny_model, queue_wait_ratio=2.0), ServiceMetrics())
    spp = 1e-6  # seconds per pixel: a 200,000-px tile takes 0.2 s
    assert engine.queue_limit(200_000, spp) == pytest.approx(0.4)  # alone: its own work, twice over
    engine.slots.running_pixels = 2_000_000  # a 2-Mpx image runs: the tile behind it may wait for it
    assert engine.queue_limit(100_000, spp) == pytest.approx(2 * 2.1)
    assert engine.queue_limit(1, spp) == pytest.approx(2 * 2.000001)
    engine.slots.running_pixels = 0
    assert engine.queue_limit(1_000, spp) == MIN_QUEUE_WAIT_SECONDS  # never sooner than that


def test_while_the_line_stands_the_overtaken_wait_at_most_the_standing_ratio(tiny_model: Path) -> None:
    settings = Settings(model_path=tiny_model, queue_wait_ratio=2.0, standing_wait_ratio=1.0, max_queue=4)
    engine = Engine(settings, ServiceMetrics())
    spp = 1e-6
    engine.slots.running_pixels = 100_000
    assert engine.queue_limit(200_000, spp) == pytest.approx(2 * 0.3)  # the line is short
    engine.slots.newest_first_at = 1  # the next arrival finds the line long: it stands
    assert engine.queue_limit(200_000, spp) == pytest.approx(0.3)


def test_a_tile_may_wait_for_the_second_looks_running_ahead_of_it(tiny_model: Path) -> None:
    engine = Engine(Settings(model_path=tiny_model, queue_wait_ratio=1.25), ServiceMetrics())
    engine.slots.concurrency = 2
    engine.slots.running_pixels = 250_000  # one big tile: 0.25 s of the line's pace (2 threads)
    spp = 1e-6
    assert engine.queue_limit(100_000, spp) == pytest.approx(0.5)  # its turn on one of the 2 threads
    # With a review band the tile ahead may run 4 views on its thread: 4 x 0.5 s.
    assert engine.queue_limit(100_000, spp, views=4) == pytest.approx(2.0)
    engine.slots.running_pixels = 0
    assert engine.queue_limit(100_000, spp, views=4) == MIN_QUEUE_WAIT_SECONDS  # nothing ahead


def test_a_fixed_queue_timeout_caps_the_scaled_wait(tiny_model: Path) -> None:
    capped = Engine(Settings(model_path=tiny_model, queue_timeout_seconds=0.5), ServiceMetrics())
    capped.slots.running_pixels = 10_000_000
    assert capped.queue_limit(100_000, 1e-6) == 0.5
    unbounded = Engine(Settings(model_path=tiny_model, queue_wait_ratio=0), ServiceMetrics())
    assert unbounded.queue_limit(100_000, 1e-6) is None
