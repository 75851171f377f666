from __future__ import annotations

import json

import numpy as np
import pytest

from tilescan_service.rendering import choose_format, json_body
from tilescan_service.schemas import ModelRef, OutputFormat, PredictionSummary
from tilescan_shared.testing import mask_rows


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (37, 53)])
def test_json_body_is_the_summary_plus_mask_rows(shape: tuple[int, int]) -> None:
    mask = (np.random.default_rng(1).random(shape) > 0.5).astype(np.uint8)
    info = PredictionSummary(
        height=shape[0],
        width=shape[1],
        defect_pixels=0,
        defect_fraction=0.0,
        has_defect=False,
        regions=[],
        threshold=0.5,
        min_region_area=0,
        min_region_peak=0.0,
        views=1,
        inference_ms=1.5,
        model=ModelRef(name="m", version="v"),
    )

    body = bytes(json_body(mask, info))

    assert json.loads(body) == {"pred": mask_rows(mask), **info.model_dump()}
    assert body.startswith(b'{"pred":' + json.dumps(mask_rows(mask), separators=(",", ":")).encode() + b",")


@pytest.mark.parametrize(
    ("requested", "accept", "expected"),
    [
        (OutputFormat.png, "application/json", OutputFormat.png),
        (None, None, OutputFormat.json),
        (None, "IMAGE/PNG", OutputFormat.png),
        (None, "application/vnd.tilescan.rle+json;q=0.8, image/png;q=0.7", OutputFormat.rle),
        (None, "image/png;q=bogus, application/*", OutputFormat.json),
        (None, "image/webp, text/*", OutputFormat.json),
    ],
)
def test_choose_format(requested: OutputFormat | None, accept: str | None, expected: OutputFormat) -> None:
    assert choose_format(requested, accept) is expected
