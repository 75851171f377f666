"""The upload limit, in one place: refuse oversized bodies before reading them or while reading them.

A declared ``Content-Length`` over the limit is answered at once, without reading a byte; a chunked
body is counted as it arrives; a file part over the limit inside an allowed body is refused by the
route. All three say the same sentence, :class:`UploadTooLargeError`'s.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tilescan_service.errors.codes import ErrorCode
from tilescan_service.errors.responses import error_response

# Room for the multipart boundary and part headers around a file of exactly the upload limit.
MULTIPART_OVERHEAD = 64 * 1024


class UploadTooLargeError(HTTPException):
    """413 for an upload over ``limit`` bytes.

    An ``HTTPException`` because FastAPI lets those through while it parses the form (any other
    exception raised by ``receive`` would become its generic 400); the app's handler renders it.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"the upload is larger than the limit of {limit} bytes")


class BodyLimitMiddleware:
    """At most the upload limit plus :data:`MULTIPART_OVERHEAD` bytes of body ever enter the app."""

    def __init__(self, app: ASGIApp, upload_limit: int) -> None:
        self.app = app
        self.upload_limit = upload_limit
        self.max_bytes = upload_limit + MULTIPART_OVERHEAD

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            refusal = UploadTooLargeError(self.upload_limit)
            await error_response(ErrorCode.PAYLOAD_TOO_LARGE, refusal.detail)(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise UploadTooLargeError(self.upload_limit)
            return message

        await self.app(scope, counting_receive, send)
