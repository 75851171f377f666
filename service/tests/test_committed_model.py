"""The model the repository ships (models/tilescan.onnx) loads, warms up and answers at full resolution,
the reduced precisions it lists answer as fp32 does on the committed example tiles, and it ships the
int8 sibling exactly when it lists int8."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tilescan_service.config import Settings
from tilescan_service.main import create_app
from tilescan_service.testing import wait_ready
from tilescan_shared.masks import segment
from tilescan_shared.panels import cut_tile
from tilescan_shared.predictor import CPU, Predictor, Variant
from tilescan_shared.runtimes import unavailable, variant_path

REPO = Path(__file__).resolve().parents[2]
COMMITTED_MODEL = REPO / "models" / "tilescan.onnx"
EXAMPLES = sorted((REPO / "evaluation" / "examples").glob("*.png"))
# Share of a tile's mask pixels a reduced precision may flip: measured on these tiles at most 0.25%
# (int8) and 0.21% (bf16); the evaluate stage judges the scores, this catches a broken file or runtime.
MAX_MASK_DISAGREEMENT = 0.01
# The reduced precisions that passed evaluation against fp32: the only ones the service may run.
LISTED = [Variant(name) for name in Predictor(COMMITTED_MODEL).info.variants if name in set(Variant)]


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


def test_the_int8_sibling_ships_exactly_when_the_model_lists_int8() -> None:
    assert variant_path(COMMITTED_MODEL, Variant.INT8).is_file() == (Variant.INT8 in LISTED)


@pytest.mark.parametrize("variant", LISTED)
def test_a_listed_reduced_precision_answers_as_fp32_does(variant: Variant) -> None:
    if (reason := unavailable(variant, COMMITTED_MODEL, [CPU])) is not None:
        pytest.skip(reason)
    fp32, other = Predictor(COMMITTED_MODEL), Predictor(COMMITTED_MODEL, variant=variant)
    rule = fp32.info.rule
    assert len(EXAMPLES) >= 5
    for example in EXAMPLES:
        tile = np.asarray(cut_tile(Image.open(example)))
        expected, got = fp32.predict(tile), other.predict(tile)
        expected_seg = segment(expected.probability, rule, expected.tile_score)
        got_seg = segment(got.probability, rule, got.tile_score)
        assert got_seg.has_defect == expected_seg.has_defect, example.name
        assert (got_seg.mask != expected_seg.mask).mean() <= MAX_MASK_DISAGREEMENT, example.name
