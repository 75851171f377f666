"""The error answers in the OpenAPI document: a description per status, an example per code."""

from __future__ import annotations

from typing import Any

from tilescan_service.errors.codes import ErrorCode
from tilescan_service.schemas import ErrorBody

_DESCRIPTIONS = {
    400: "The upload is empty, not an image, truncated or corrupt, has several frames or pages, or the "
    "multipart body is malformed.",
    408: "The upload did not arrive in time; the connection is closed.",
    413: "The file is larger than the byte limit, or the image has more pixels than allowed.",
    415: "The body is not multipart/form-data, or the image format is not accepted.",
    422: "A parameter is invalid (threshold outside [0, 1], unknown format) or the 'image' field is missing.",
    503: "The model is still loading, every inference slot and queue place is taken, or no inference turn "
    "came within TILESCAN_QUEUE_TIMEOUT_SECONDS; see Retry-After.",
    504: "The answer could not start within the request deadline.",
}
_RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses, with an example of each code."""
    return {status: _response(status) for status in statuses}


def _response(status: int) -> dict[str, Any]:
    examples = {
        code.value: {"value": {"error": code.value, "detail": code.detail, "request_id": "0f6c2a54d3b84a6f"}}
        for code in ErrorCode
        if code.status == status
    }
    return {
        "model": ErrorBody,
        "description": _DESCRIPTIONS[status],
        **({"headers": _RETRY_AFTER} if status == 503 else {}),
        "content": {"application/json": {"examples": examples}},
    }
