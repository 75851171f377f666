"""The exception handlers: each exception a request can raise, answered as an error code."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tilescan_service.engine import NotReadyError, QueueTimeoutError
from tilescan_service.errors.codes import ErrorCode
from tilescan_service.errors.responses import ApiError, error_response, retry_later
from tilescan_shared.image import ImageError, ImageTooLargeError, MultiFrameError, UnsupportedFormatError

log = logging.getLogger(__name__)

# The code of each kind of unusable image; any other ImageError is invalid_image.
_IMAGE_ERRORS: dict[type[ImageError], ErrorCode] = {
    ImageTooLargeError: ErrorCode.IMAGE_TOO_LARGE,
    UnsupportedFormatError: ErrorCode.UNSUPPORTED_FORMAT,
    MultiFrameError: ErrorCode.MULTI_FRAME_IMAGE,
}

# The code of each HTTP error the framework raises itself (routing, multipart parsing); others http_error.
_HTTP_ERRORS = {
    code.status: code
    for code in (
        ErrorCode.BAD_REQUEST,
        ErrorCode.NOT_FOUND,
        ErrorCode.METHOD_NOT_ALLOWED,
        ErrorCode.PAYLOAD_TOO_LARGE,
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        ErrorCode.VALIDATION_ERROR,
    )
}


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
        return error_response(exc.code, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if (
            request.method == "POST"
            and not _is_multipart(request)
            and any(e["loc"][:1] == ("body",) for e in errors)
        ):
            return error_response(ErrorCode.UNSUPPORTED_MEDIA_TYPE)
        return error_response(ErrorCode.VALIDATION_ERROR, "; ".join(_describe(e) for e in errors))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_ERRORS.get(exc.status_code, ErrorCode.HTTP_ERROR)
        return error_response(code, str(exc.detail), exc.headers, status=exc.status_code)

    @app.exception_handler(ImageError)
    async def image_error(_: Request, exc: ImageError) -> JSONResponse:
        code = _IMAGE_ERRORS.get(type(exc), ErrorCode.INVALID_IMAGE)
        # The client reads our sentence; the decoder's own message (offsets, chunk names) goes to the log.
        log.info("image refused", extra={"error": str(code), "cause": repr(exc.__cause__)})
        return error_response(code, str(exc))

    @app.exception_handler(NotReadyError)
    async def not_ready(request: Request, exc: NotReadyError) -> JSONResponse:
        return retry_later(ErrorCode.NOT_READY, str(exc), request.app.state.settings.retry_after_seconds)

    @app.exception_handler(QueueTimeoutError)
    async def queue_timeout(request: Request, exc: QueueTimeoutError) -> JSONResponse:
        return retry_later(ErrorCode.QUEUE_TIMEOUT, str(exc), request.app.state.settings.retry_after_seconds)
