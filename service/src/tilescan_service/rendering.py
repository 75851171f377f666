"""Turn a :class:`~tilescan_service.engine.Prediction` into the response the client asked for."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from fastapi import Response

from tilescan_service.engine import Prediction
from tilescan_service.schemas import RLE_MEDIA_TYPE, OutputFormat
from tilescan_shared.masks import encode_png, encode_rle
from tilescan_shared.model_info import ModelInfo

_MEDIA_FORMATS = {
    "image/png": OutputFormat.png,
    RLE_MEDIA_TYPE: OutputFormat.rle,
    "application/json": OutputFormat.json,
    "application/*": OutputFormat.json,
    "*/*": OutputFormat.json,
}


def choose_format(requested: OutputFormat | None, accept: str | None) -> OutputFormat:
    """``?format=`` wins; else the most preferred media type of ``Accept`` we can produce; else JSON."""
    if requested is not None:
        return requested
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate((accept or "").split(",")):
        media, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media.lower() in _MEDIA_FORMATS and quality > 0:
            ranked.append((-quality, position, media.lower()))
    # An Accept we cannot satisfy still gets JSON: a mask the client can read beats a bare 406.
    return _MEDIA_FORMATS[min(ranked)[2]] if ranked else OutputFormat.json


def summary(prediction: Prediction, model: ModelInfo) -> dict[str, Any]:
    seg = prediction.segmentation
    return {
        "height": prediction.height,
        "width": prediction.width,
        "defect_pixels": seg.defect_pixels,
        "defect_fraction": prediction.defect_fraction,
        "has_defect": seg.has_defect,
        "regions": [{"bbox": list(r.bbox), "area": r.area} for r in seg.regions],
        "threshold": prediction.rule.threshold,
        "min_region_area": prediction.rule.min_region_area,
        "min_region_peak": prediction.rule.min_region_peak,
        "inference_ms": round(prediction.inference_seconds * 1000, 3),
        "model": {"name": model.name, "version": model.version},
    }


def rows_json(mask: np.ndarray) -> bytes:
    """``json.dumps(mask_rows(mask))`` without the Python loop: bytes laid out by numpy.

    A 0/1 mask row serialises as ``[d,d,...,d]``, so every row has the same length and the
    whole document can be written into one byte array (tens of times faster for a tile).
    """
    height, width = mask.shape
    row = np.full((height, 2 * width + 2), ord(","), dtype=np.uint8)
    row[:, 0] = ord("[")
    row[:, 1 : 2 * width : 2] = (mask > 0).astype(np.uint8) + ord("0")
    row[:, 2 * width] = ord("]")
    return b"[" + row.tobytes()[:-1] + b"]"


def render(prediction: Prediction, model: ModelInfo, fmt: OutputFormat) -> Response:
    """Encode the answer (CPU work: call it off the event loop)."""
    info = summary(prediction, model)
    mask = prediction.segmentation.mask
    if fmt is OutputFormat.png:
        headers = {
            "X-Defect-Pixels": str(info["defect_pixels"]),
            "X-Defect-Fraction": repr(info["defect_fraction"]),
            "X-Has-Defect": "true" if info["has_defect"] else "false",
            "X-Region-Count": str(len(info["regions"])),
            "X-Threshold": repr(info["threshold"]),
            "X-Model-Name": model.name,
            "X-Model-Version": model.version,
        }
        return Response(encode_png(mask), media_type="image/png", headers=headers)
    if fmt is OutputFormat.rle:
        return Response(json.dumps({**info, "rle": encode_rle(mask)}).encode(), media_type=RLE_MEDIA_TYPE)
    # {"pred": [...], <summary fields>}: the big array first, spliced in without re-serialising it.
    body = b'{"pred":' + rows_json(mask) + b"," + json.dumps(info).encode()[1:]
    return Response(body, media_type="application/json")
