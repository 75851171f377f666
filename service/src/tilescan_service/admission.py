"""Admission before the body, and the time limits and client-liveness rules of a prediction request.

A ``POST /predict`` takes a ticket before a byte of its upload is read; with every inference slot and
queue place taken it is answered 503 + ``Retry-After`` at once, so an overload costs no multipart
parsing (a connection that ignores ``Retry-After`` gets its next refusal only once it has passed).
The ticket is held until the answer has been rendered and handed to the server, so encoding and
sending count against capacity too. While it holds a ticket, a request must

- receive its whole body within ``body_timeout_seconds`` (else 408, and the connection is closed);
- start its answer within ``request_timeout_seconds`` of arriving (else 504);
- keep its client: when the client hangs up, its work is dropped wherever it is (waiting for a
  slot, queued for inference), and the request is logged and counted with status 499.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tilescan_service.config import Settings
from tilescan_service.errors.codes import ErrorCode
from tilescan_service.errors.responses import error_response, retry_later
from tilescan_service.observability.metrics import ServiceMetrics

# nginx's code for "client closed the request"; only logs and metrics see it, the client is gone.
CLIENT_CLOSED = 499

log = logging.getLogger(__name__)


class Admission:
    """Tickets for prediction requests: ``capacity`` = inference slots + queue places.

    A connection that was refused and comes back before its ``Retry-After``, while every ticket is
    still taken, gets its next 503 only once that time has passed: a client ignoring
    ``Retry-After`` cannot turn the CPUs into a loop of refusals (the other half of that loop, the
    client, often shares the machine). Only refusals wait: a request is admitted the moment it
    finds a free ticket, so no admitted request ever carries that wait (issue 9: a hold before
    admission took the accepted requests' p99 to 2 s). New connections are refused at once.
    """

    def __init__(self, capacity: int, retry_after_seconds: float, metrics: ServiceMetrics) -> None:
        self.capacity = capacity
        self.retry_after_seconds = retry_after_seconds
        self.metrics = metrics
        self.held = 0
        # (host, port) of refused connections -> when they may ask again; in time order, as every
        # entry gets the same delay, so expired ones are pruned from the front.
        self._refused: dict[tuple[str, int], float] = {}

    async def enter(self, connection: tuple[str, int] | None) -> bool:
        """Take a ticket if one is free; ``False`` means answer 503 now."""
        if self.held < self.capacity:
            self.held += 1
            return True
        self.metrics.rejected.inc()
        if connection:
            loop = asyncio.get_running_loop()
            retry_at = self._refused.pop(connection, 0.0)
            if retry_at > loop.time():
                await asyncio.sleep(retry_at - loop.time())
            now = loop.time()
            while self._refused and next(iter(self._refused.values())) <= now:
                del self._refused[next(iter(self._refused))]
            self._refused[connection] = now + self.retry_after_seconds
        return False

    def release(self) -> None:
        self.held -= 1


class AdmissionMiddleware:
    """Applies :class:`Admission` and the time limits to ``POST`` on ``paths``; other requests pass."""

    def __init__(self, app: ASGIApp, admission: Admission, settings: Settings, paths: frozenset[str]) -> None:
        self.app = app
        self.admission = admission
        self.settings = settings
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        if not await self.admission.enter((client[0], client[1]) if client else None):
            await retry_later(ErrorCode.OVERLOADED, None, self.settings.retry_after_seconds)(
                scope, receive, send
            )
            return
        try:
            await _Cycle(self.app, self.settings).run(scope, receive, send)
        finally:
            self.admission.release()


class _Cycle:
    """One admitted request: its deadlines, and the watch on its client once the body is in."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.body_done = False
        self.client_gone = asyncio.Event()
        self.response_started = False

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        answer_by = arrived + self.settings.request_timeout_seconds
        watcher: asyncio.Task[None] | None = None

        async def tracked_receive() -> Message:
            nonlocal watcher
            if self.body_done:
                # After the body the only news can be a hang-up; the watcher owns the real receive.
                await self.client_gone.wait()
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.disconnect":
                self.client_gone.set()
            elif not message.get("more_body", False):
                self.body_done = True
                deadline.reschedule(answer_by)
                watcher = asyncio.create_task(watch_client())
            return message

        async def watch_client() -> None:
            # Returns only when the client hangs up (or, harmlessly, once the answer is complete).
            if (await receive())["type"] == "http.disconnect" and not self.response_started:
                self.client_gone.set()
                deadline.reschedule(loop.time())  # cancels the request's work wherever it waits

        async def tracked_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.response_started = True
                deadline.reschedule(None)  # sending is bounded by the server's own flow control
                if self.client_gone.is_set():
                    # The server drops it; the access log and metrics record the hang-up.
                    message = {**message, "status": CLIENT_CLOSED}
            await send(message)

        body_by = min(arrived + self.settings.body_timeout_seconds, answer_by)
        try:
            async with asyncio.timeout_at(body_by) as deadline:
                try:
                    await self.app(scope, tracked_receive, tracked_send)
                finally:
                    if watcher is not None:
                        watcher.cancel()
        except TimeoutError:
            if not deadline.expired() or self.response_started:
                raise
            await self._answer_late(scope, receive, send)

    async def _answer_late(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The request's work was cancelled by a deadline or a hang-up: say so (or log it)."""
        if self.client_gone.is_set():
            log.info("client closed the connection; its request was dropped")
            await send({"type": "http.response.start", "status": CLIENT_CLOSED, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        elif not self.body_done:
            seconds = self.settings.body_timeout_seconds
            response = error_response(
                ErrorCode.REQUEST_TIMEOUT,
                f"the upload did not arrive within {seconds:g} s",
                # The rest of the body may still be on its way: end the connection instead of reading it.
                {"Connection": "close"},
            )
            await response(scope, receive, send)
        else:
            seconds = self.settings.request_timeout_seconds
            detail = f"no answer within {seconds:g} s; retry later"
            response = error_response(ErrorCode.DEADLINE_EXCEEDED, detail)
            await response(scope, receive, send)
