"""Every ``error`` code an answer can carry: one list that the handlers, the OpenAPI examples and the
README's table (checked by a test) follow."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """An ``error`` value, its HTTP status and its ``detail`` sentence (an example where it varies)."""

    status: int | None  # None: the status of the HTTP error passed through
    detail: str

    def __new__(cls, code: str, status: int | None, detail: str) -> ErrorCode:
        member = str.__new__(cls, code)
        member._value_ = code
        member.status = status
        member.detail = detail
        return member

    EMPTY_FILE = "empty_file", 400, "the file is empty"
    INVALID_IMAGE = "invalid_image", 400, "the file is not a readable image"
    MULTI_FRAME_IMAGE = (
        "multi_frame_image",
        400,
        "the image has 3 frames or pages; send a single-frame image",
    )
    BAD_REQUEST = "bad_request", 400, "Missing boundary in multipart."
    NOT_FOUND = "not_found", 404, "Not Found"
    METHOD_NOT_ALLOWED = "method_not_allowed", 405, "Method Not Allowed"
    REQUEST_TIMEOUT = "request_timeout", 408, "the upload did not arrive within 20 s"
    PAYLOAD_TOO_LARGE = (
        "payload_too_large",
        413,
        "the upload is larger than the limit of 20971520 bytes",
    )
    IMAGE_TOO_LARGE = (
        "image_too_large",
        413,
        "the image has 10000x10000 = 100000000 pixels, more than the limit of 2000000",
    )
    UNSUPPORTED_MEDIA_TYPE = (
        "unsupported_media_type",
        415,
        "send the image as multipart/form-data with the file in a field named 'image'",
    )
    UNSUPPORTED_FORMAT = (
        "unsupported_format",
        415,
        "image format GIF is not supported; send one of BMP, JPEG, PNG, TIFF, WEBP",
    )
    VALIDATION_ERROR = (
        "validation_error",
        422,
        "query parameter 'threshold': Input should be less than or equal to 1",
    )
    INTERNAL_ERROR = "internal_error", 500, "an unexpected error occurred; quote the request id"
    OVERLOADED = (
        "overloaded",
        503,
        "the service is busy (every inference slot and queue place is taken); retry later",
    )
    NOT_READY = "not_ready", 503, "the model is still loading"
    QUEUE_TIMEOUT = "queue_timeout", 503, "no inference turn within 1.5 s: the service is busy; retry later"
    # Any other HTTP error the framework raises, with its own status and message.
    HTTP_ERROR = "http_error", None, "Not Acceptable"
    DEADLINE_EXCEEDED = "deadline_exceeded", 504, "no answer within 30 s; retry later"
