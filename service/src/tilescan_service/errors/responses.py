"""The JSON error answers: every refusal of the service is built here."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from tilescan_service.errors.codes import ErrorCode
from tilescan_service.observability.logs import request_id_var
from tilescan_service.schemas import ErrorBody


class ApiError(Exception):
    """Raised by routes for a request that cannot be served; turned into an :class:`ErrorBody`."""

    def __init__(
        self, code: ErrorCode, detail: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail or code.detail)
        self.code, self.detail, self.headers = code, detail or code.detail, headers


def error_response(
    code: ErrorCode,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    status: int | None = None,
) -> JSONResponse:
    """``code``'s status (or ``status``, for HTTP errors passed through) with ``detail``, else its own."""
    body = ErrorBody(
        error=code, detail=code.detail if detail is None else detail, request_id=request_id_var.get()
    )
    status = status or code.status
    assert status is not None, f"{code} answers with the status of the error it passes through"
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def retry_later(code: ErrorCode, detail: str | None, retry_after_seconds: int) -> JSONResponse:
    """503 with ``Retry-After``: every answer that means "busy or loading, come back"."""
    return error_response(code, detail, {"Retry-After": str(retry_after_seconds)})
