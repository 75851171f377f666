"""Every failure becomes a JSON :class:`~tilescan_service.schemas.ErrorBody` with a fitting status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tilescan_service.engine import NotReadyError, QueueTimeoutError
from tilescan_service.observability.logs import request_id_var
from tilescan_service.schemas import ErrorBody
from tilescan_shared.image import ImageError, ImageTooLargeError, MultiFrameError, UnsupportedFormatError

log = logging.getLogger(__name__)

# Status and code of each kind of unusable image; any other ImageError is a 400 invalid_image.
_IMAGE_ERRORS: dict[type[ImageError], tuple[int, str]] = {
    ImageTooLargeError: (413, "image_too_large"),
    UnsupportedFormatError: (415, "unsupported_format"),
    MultiFrameError: (400, "multi_frame_image"),
}

_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    503: "unavailable",
}


class ApiError(Exception):
    """Raised by routes for a request that cannot be served; turned into an :class:`ErrorBody`."""

    def __init__(
        self, status_code: int, error: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status_code, self.error, self.detail, self.headers = status_code, error, detail, headers


def error_response(
    status_code: int, error: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=error, detail=detail, request_id=request_id_var.get())
    return JSONResponse(body.model_dump(), status_code=status_code, headers=headers)


def retry_later(error: str, detail: str, retry_after_seconds: int) -> JSONResponse:
    """503 with ``Retry-After``: every answer that means "busy or loading, come back"."""
    return error_response(503, error, detail, {"Retry-After": str(retry_after_seconds)})


def _describe(error: dict[str, Any]) -> str:
    """One validation error as a sentence naming the parameter, e.g. ``query parameter 'threshold': ...``."""
    loc = [str(part) for part in error.get("loc", ())]
    where = (
        {"query": "query parameter", "body": "form field", "header": "header"}.get(loc[0], loc[0])
        if loc
        else ""
    )
    name = ".".join(loc[1:])
    if error.get("type") == "missing" and loc[:1] == ["body"]:
        return f"the multipart form field '{name}' is missing; send the image file in a field named '{name}'"
    if loc[:1] == ["body"] and name == "image":
        return "the form field 'image' must be a file upload, not a text value"
    return f"{where} '{name}': {error.get('msg', 'invalid')}"


def _is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every exception into an :class:`ErrorBody`."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status_code, exc.error, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if (
            request.method == "POST"
            and not _is_multipart(request)
            and any(e["loc"][:1] == ("body",) for e in errors)
        ):
            return error_response(
                415,
                "unsupported_media_type",
                "send the image as multipart/form-data with the file in a field named 'image'",
            )
        return error_response(422, "validation_error", "; ".join(_describe(e) for e in errors))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), exc.headers)

    @app.exception_handler(ImageError)
    async def image_error(_: Request, exc: ImageError) -> JSONResponse:
        status, code = _IMAGE_ERRORS.get(type(exc), (400, "invalid_image"))
        # The client reads our sentence; the decoder's own message (offsets, chunk names) goes to the log.
        log.info("image refused", extra={"error": code, "cause": repr(exc.__cause__)})
        return error_response(status, code, str(exc))

    @app.exception_handler(NotReadyError)
    async def not_ready(request: Request, exc: NotReadyError) -> JSONResponse:
        return retry_later("not_ready", str(exc), request.app.state.settings.retry_after_seconds)

    @app.exception_handler(QueueTimeoutError)
    async def queue_timeout(request: Request, exc: QueueTimeoutError) -> JSONResponse:
        return retry_later("queue_timeout", str(exc), request.app.state.settings.retry_after_seconds)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses, each with examples."""
    return {status: {"model": ErrorBody, **_ERROR_DOCS[status]} for status in statuses}


def _examples(*cases: tuple[str, str]) -> dict[str, Any]:
    return {
        "content": {
            "application/json": {
                "examples": {
                    code: {"value": {"error": code, "detail": detail, "request_id": "0f6c2a54d3b84a6f"}}
                    for code, detail in cases
                }
            }
        }
    }


_ERROR_DOCS: dict[int, dict[str, Any]] = {
    400: {
        "description": "The upload is empty, not an image, truncated or corrupt, has several frames or "
        "pages, or the multipart body is malformed.",
        **_examples(
            ("empty_file", "the file is empty"),
            ("invalid_image", "the file is not a readable image"),
            ("multi_frame_image", "the image has 3 frames or pages; send a single-frame image"),
            ("bad_request", "Missing boundary in multipart."),
        ),
    },
    408: {
        "description": "The upload did not arrive in time; the connection is closed.",
        **_examples(("request_timeout", "the upload did not arrive within 20 s")),
    },
    413: {
        "description": "The file is larger than the byte limit, or the image has more pixels than allowed.",
        **_examples(
            ("payload_too_large", "the upload is larger than the limit of 20971520 bytes"),
            (
                "image_too_large",
                "the image has 10000x10000 = 100000000 pixels, more than the limit of 2000000",
            ),
        ),
    },
    415: {
        "description": "The body is not multipart/form-data, or the image format is not accepted.",
        **_examples(
            (
                "unsupported_media_type",
                "send the image as multipart/form-data with the file in a field named 'image'",
            ),
            (
                "unsupported_format",
                "image format GIF is not supported; send one of BMP, JPEG, PNG, TIFF, WEBP",
            ),
        ),
    },
    422: {
        "description": "A parameter is invalid (threshold outside [0, 1], unknown format) or the 'image' "
        "field is missing.",
        **_examples(
            ("validation_error", "query parameter 'threshold': Input should be less than or equal to 1"),
        ),
    },
    503: {
        "description": "The model is still loading, every inference slot and queue place is taken, or "
        "no inference turn came within TILESCAN_QUEUE_TIMEOUT_SECONDS; see Retry-After.",
        "headers": {
            "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
        },
        **_examples(
            (
                "overloaded",
                "the service is busy (all 17 inference slots and queue places are taken); retry later",
            ),
            ("not_ready", "the model is still loading"),
            ("queue_timeout", "no inference turn within 1.5 s: the service is busy; retry later"),
        ),
    },
    504: {
        "description": "The answer could not start within the request deadline.",
        **_examples(("deadline_exceeded", "no answer within 30 s; retry later")),
    },
}
