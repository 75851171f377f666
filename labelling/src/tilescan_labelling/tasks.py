"""``tilescan-label export``: captures -> Label Studio tasks, the model's answer as the pre-annotation.

Writes, into a folder that Label Studio serves as local files (its ``LOCAL_FILES_DOCUMENT_ROOT``):
``images/<sha256>.png`` (the captured tile, lossless 8-bit gray: every browser shows it),
``tasks.json`` (one task a tile, uncertain ones first) and, on request, ``coco.json`` (COCO with RLE
masks, for CVAT). A task's prediction score is the distance of the model's score from its decision
threshold, so sorting by prediction score in Label Studio puts the tiles the model was least sure of
first.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tilescan_labelling.interface import IMAGE, UNKNOWN, label_of, painted, ticked_defect_free
from tilescan_shared.captures import CaptureRecord, CaptureStore
from tilescan_shared.image import decode_gray
from tilescan_shared.masks import decode_rle

TASKS_FILE, COCO_FILE, IMAGES = "tasks.json", "coco.json", "images"


def certainty(record: CaptureRecord) -> float:
    """How far the model's score was from its decision threshold: 0 = a coin toss."""
    return round(abs(record.score - record.threshold), 6)


def image_url(sha256: str) -> str:
    """Where Label Studio serves a tile exported into its document root (local files serving)."""
    return f"/data/local-files/?d={IMAGES}/{sha256}.png"


def task(record: CaptureRecord) -> dict[str, Any]:
    """One Label Studio task: the tile, what the capture knows of it, and the model's answer."""
    mask = decode_rle(record.rle)
    result = painted(mask, label_of(UNKNOWN)) if mask.any() else ticked_defect_free()
    return {
        "data": {
            IMAGE: image_url(record.sha256),
            "sha256": record.sha256,
            "reason": record.reason,
            "captured_at": record.captured_at,
            "model_score": record.score,
            "model_threshold": record.threshold,
        },
        "predictions": [
            {"model_version": record.model_version, "score": certainty(record), "result": result}
        ],
    }


def coco(records: list[CaptureRecord]) -> dict[str, Any]:
    """COCO instances with the model's masks as uncompressed RLE (``iscrowd`` 1), as CVAT imports them."""
    images, annotations = [], []
    for i, record in enumerate(records, start=1):
        images.append(
            {
                "id": i,
                "file_name": f"{IMAGES}/{record.sha256}.png",
                "width": record.width,
                "height": record.height,
            }
        )
        mask = decode_rle(record.rle)
        if mask.any():
            ys, xs = np.nonzero(mask)
            x0, y0 = int(xs.min()), int(ys.min())
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": 1,
                    "segmentation": record.rle,
                    "area": int(mask.sum()),
                    "bbox": [x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0],
                    "iscrowd": 1,
                    "score": record.score,
                }
            )
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": UNKNOWN}]}


def least_certain_first(store: CaptureStore) -> list[CaptureRecord]:
    return sorted(store.records(), key=lambda r: (certainty(r), r.sha256))


def export_tasks(store: CaptureStore, out: Path, with_coco: bool = False) -> list[dict[str, Any]]:
    """Every capture of ``store`` as a task in ``out`` (see the module); returns the tasks."""
    records = least_certain_first(store)
    (out / IMAGES).mkdir(parents=True, exist_ok=True)
    for record in records:
        png = io.BytesIO()
        # max_pixels=None: the service decoded this tile within its own limits before it kept it
        Image.fromarray(decode_gray(store.image(record.sha256), max_pixels=None)).save(png, "PNG")
        (out / IMAGES / f"{record.sha256}.png").write_bytes(png.getvalue())
    tasks = [task(r) for r in records]
    (out / TASKS_FILE).write_text(json.dumps(tasks))
    if with_coco:
        (out / COCO_FILE).write_text(json.dumps(coco(records)))
    return tasks
