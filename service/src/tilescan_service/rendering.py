"""Turn a :class:`~tilescan_service.engine.Prediction` into the response the client asked for."""

from __future__ import annotations

import numpy as np
from fastapi import Response

from tilescan_service.engine import Prediction
from tilescan_service.schemas import (
    RLE_MEDIA_TYPE,
    ModelRef,
    OutputFormat,
    PredictionRle,
    PredictionSummary,
    RegionOut,
    RleMask,
)
from tilescan_shared.masks import encode_png, encode_rle

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


def summary(prediction: Prediction) -> PredictionSummary:
    """The summary every format carries, built by the model that documents it in the OpenAPI schema."""
    seg, rule, model = prediction.segmentation, prediction.rule, prediction.model
    return PredictionSummary(
        height=prediction.height,
        width=prediction.width,
        defect_pixels=seg.defect_pixels,
        defect_fraction=prediction.defect_fraction,
        has_defect=seg.has_defect,
        regions=[RegionOut(bbox=list(r.bbox), area=r.area) for r in seg.regions],
        tile_score=seg.tile_score,
        **PredictionSummary.of(rule),
        views=prediction.views,
        inference_ms=round(prediction.inference_seconds * 1000, 3),
        model=ModelRef(name=model.name, version=model.version),
    )


def json_body(mask: np.ndarray, info: PredictionSummary) -> memoryview:
    """:class:`PredictionJson` as bytes: ``{"pred": <rows of 0/1>, <summary fields>}``.

    ``pred`` is the one field not serialised by pydantic: a 0/1 row serialises as ``[d,d,...,d]``,
    so every row has the same length and the whole document is laid out by numpy in one buffer,
    tens of times faster than a list of lists and with no second copy of a big mask.
    """
    height, width = mask.shape
    head = b'{"pred":['
    tail = b"]," + info.model_dump_json().encode()[1:]
    row_bytes = 2 * width + 2  # "[d,...,d],"
    body = np.empty(len(head) + height * row_bytes - 1 + len(tail), dtype=np.uint8)
    body[: len(head)] = np.frombuffer(head, dtype=np.uint8)
    rows = body[len(head) : len(head) + height * row_bytes].reshape(height, row_bytes)
    rows.fill(ord(","))
    rows[:, 0] = ord("[")
    digits = rows[:, 1 : 2 * width : 2]
    np.minimum(mask, 1, out=digits, casting="unsafe")
    digits += ord("0")
    rows[:, 2 * width] = ord("]")
    # The last row's trailing comma is the first byte of the tail.
    body[len(head) + height * row_bytes - 1 :] = np.frombuffer(tail, dtype=np.uint8)
    return memoryview(body)


def render(prediction: Prediction, fmt: OutputFormat) -> Response:
    """Encode the answer (CPU work: call it off the event loop)."""
    info = summary(prediction)
    mask = prediction.segmentation.mask
    # Every answer names its model: during a hot swap or a rolling update, clients and proxies can tell.
    headers = {"X-Model-Name": info.model.name, "X-Model-Version": info.model.version}
    if fmt is OutputFormat.png:
        headers |= {
            "X-Defect-Pixels": str(info.defect_pixels),
            "X-Defect-Fraction": repr(info.defect_fraction),
            "X-Has-Defect": "true" if info.has_defect else "false",
            "X-Region-Count": str(len(info.regions)),
            "X-Threshold": repr(info.threshold),
            "X-Views": str(info.views),
        }
        if info.tile_score is not None:
            headers["X-Tile-Score"] = repr(info.tile_score)
        if info.tile_threshold is not None:
            headers["X-Tile-Threshold"] = repr(info.tile_threshold)
        return Response(encode_png(mask), media_type="image/png", headers=headers)
    if fmt is OutputFormat.rle:
        body = PredictionRle(**dict(info), rle=RleMask(**encode_rle(mask)))
        return Response(body.model_dump_json(), media_type=RLE_MEDIA_TYPE, headers=headers)
    return Response(json_body(mask, info), media_type="application/json", headers=headers)
