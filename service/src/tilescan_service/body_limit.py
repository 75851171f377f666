"""Refuse oversized request bodies before reading them (``Content-Length``) or while reading (chunked)."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tilescan_service.errors import error_response


class BodyTooLargeError(HTTPException):
    def __init__(self) -> None:
        super().__init__(status_code=413, detail="request body too large")


class BodyLimitMiddleware:
    """At most ``max_bytes`` of request body ever enter the app; beyond that the client gets a JSON 413.

    A declared ``Content-Length`` over the limit is answered at once, without reading a byte. A
    chunked body is counted as it arrives; the receive call that crosses the limit raises
    :class:`BodyTooLargeError`, which the app's HTTP error handler turns into the same JSON 413.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, upload_limit: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.message = f"the upload is larger than the limit of {upload_limit} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(413, "payload_too_large", self.message)(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError
            return message

        await self.app(scope, counting_receive, send)
