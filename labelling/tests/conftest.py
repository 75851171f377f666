import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tilescan_shared.captures import UNCERTAIN, CaptureRecord, CaptureStore
from tilescan_shared.masks import encode_rle


def capture(
    store: CaptureStore, seed: int, shape: tuple[int, int], score: float, box: tuple[slice, slice] | None
):
    """Store a random tile with the model's answer: a rectangle at ``box``, or no defect."""
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)).save(out, "PNG")
    data = out.getvalue()
    mask = np.zeros(shape, np.uint8)
    if box is not None:
        mask[box] = 1
    record = CaptureRecord(
        sha256=hashlib.sha256(data).hexdigest(),
        reason=UNCERTAIN,
        captured_at="2026-12-06T06:00:00+00:00",
        model_version="abc123",
        image_bytes=len(data),
        height=shape[0],
        width=shape[1],
        has_defect=box is not None,
        score=score,
        threshold=0.15,
        rle=encode_rle(mask),
    )
    store.write(data, record)
    return record, mask


@pytest.fixture
def store(tmp_path: Path) -> CaptureStore:
    """Three captures: two with a defect (scores 0.16 and 0.40), one without (0.10)."""
    store = CaptureStore(str(tmp_path / "captures"))
    capture(store, 1, (30, 40), 0.40, (slice(2, 6), slice(3, 9)))
    capture(store, 2, (20, 24), 0.16, (slice(10, 12), slice(0, 24)))
    capture(store, 3, (25, 25), 0.10, None)
    return store
