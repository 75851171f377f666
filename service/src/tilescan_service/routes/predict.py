"""``POST /predict``: a tile photo in, its full-resolution defect mask out."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, Response, UploadFile

from tilescan_service.body_limit import UploadTooLargeError
from tilescan_service.capture import answer_of
from tilescan_service.deps import EngineDep, SettingsDep
from tilescan_service.errors.codes import ErrorCode
from tilescan_service.errors.docs import error_responses
from tilescan_service.errors.responses import ApiError
from tilescan_service.rendering import choose_format, render
from tilescan_service.schemas import RLE_MEDIA_TYPE, OutputFormat, PredictionJson, PredictionRle
from tilescan_shared.captures import SHADOW_DISAGREEMENT

router = APIRouter(tags=["prediction"])

# FastAPI documents one model per status; the PNG and RLE bodies are added beside it. Nested
# models (RegionOut, ModelRef) are components already, through PredictionJson; RleMask is in no
# documented model, so it is written inline (a reference to it would point nowhere).
_RLE_MODEL = PredictionRle.model_json_schema(ref_template="#/components/schemas/{model}")
_RLE_SCHEMA = {k: v for k, v in _RLE_MODEL.items() if k != "$defs"}
_RLE_SCHEMA["properties"] = {**_RLE_MODEL["properties"], "rle": _RLE_MODEL["$defs"]["RleMask"]}
_PNG_HEADERS = {
    name: {"description": description, "schema": {"type": kind}}
    for name, description, kind in [
        ("X-Defect-Pixels", "pixels in the mask", "integer"),
        ("X-Defect-Fraction", "defect pixels / all pixels", "number"),
        ("X-Has-Defect", "true or false", "string"),
        ("X-Region-Count", "regions kept by the decision rule", "integer"),
        ("X-Threshold", "threshold used", "number"),
        ("X-Views", "runs of the model behind the answer (4: the tile was looked at again)", "integer"),
        ("X-Tile-Score", "the model's tile score (models with a tile head)", "number"),
        ("X-Tile-Threshold", "the tile decision's threshold (models with a tile head)", "number"),
        ("X-Model-Name", "model name", "string"),
        ("X-Model-Version", "model version", "string"),
    ]
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": PredictionJson,
        "description": (
            "The mask at the uploaded image's full size. `format=json`: rows of 0/1 in `pred`; "
            "`format=png`: 8-bit grayscale PNG (0 = no defect, 255 = defect) with the summary in the "
            "`X-*` headers (sent with PNG answers only, except `X-Model-Name` and `X-Model-Version`, "
            "sent with every format); `format=rle`: COCO RLE in `rle`."
        ),
        "headers": _PNG_HEADERS,
        "content": {
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            RLE_MEDIA_TYPE: {"schema": _RLE_SCHEMA},
        },
    },
    **error_responses(400, 408, 413, 415, 422, 503, 504),
}


async def read_upload(image: UploadFile, max_bytes: int) -> bytes:
    """The uploaded bytes, refusing empty files and files over ``max_bytes`` (413)."""
    data = await image.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UploadTooLargeError(max_bytes)
    if not data:
        raise ApiError(ErrorCode.EMPTY_FILE)
    return data


@router.post("/predict", response_class=Response, responses=_RESPONSES)
async def predict(
    request: Request,
    image: Annotated[
        UploadFile, File(description="the tile photo: JPEG, PNG, BMP, TIFF or WebP; any bit depth")
    ],
    engine: EngineDep,
    settings: SettingsDep,
    output_format: Annotated[
        OutputFormat | None,
        Query(
            alias="format",
            description=(
                "json (default), png or rle; without it the Accept header decides "
                f"(image/png, {RLE_MEDIA_TYPE}, application/json)"
            ),
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        Query(ge=0, le=1, allow_inf_nan=False, description="overrides the model's threshold", examples=[0.5]),
    ] = None,
) -> Response:
    """Predict the defect mask of one tile photo (multipart field `image`)."""
    data = await read_upload(image, settings.max_upload_bytes)
    fmt = choose_format(output_format, request.headers.get("accept"))
    prediction, response = await engine.predict(data, threshold, partial(render, fmt=fmt))
    # Both only queue work: an answer never waits for the shadow or the capture store.
    capturer, disagreement = request.app.state.capturer, None
    if capturer is not None:
        answer = answer_of(prediction)
        capturer.offer(data, answer)
        disagreement = partial(capturer.offer, data, answer, SHADOW_DISAGREEMENT)
    if (shadow := request.app.state.shadow) is not None:
        shadow.offer(data, threshold, prediction.segmentation, prediction.model.version, disagreement)
    return response


# The public reference project's path; same behaviour, kept out of the docs.
router.add_api_route("/analyze", predict, methods=["POST"], response_class=Response, include_in_schema=False)
