from __future__ import annotations

import json

import numpy as np
import pytest

from tilescan_service.rendering import choose_format, rows_json
from tilescan_service.schemas import OutputFormat
from tilescan_shared.masks import mask_rows


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (37, 53)])
def test_rows_json_is_json_of_mask_rows(shape: tuple[int, int]) -> None:
    mask = (np.random.default_rng(1).random(shape) > 0.5).astype(np.uint8)

    assert json.loads(rows_json(mask)) == mask_rows(mask)
    assert rows_json(mask) == json.dumps(mask_rows(mask), separators=(",", ":")).encode()


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
