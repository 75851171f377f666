"""``tilescan-serve``: run the API with uvicorn, with a header timeout, a connection cap and a drain."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from types import FrameType

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tilescan_service.config import Settings, get_settings
from tilescan_service.main import create_app
from tilescan_service.memory import keep_inference_buffers

log = logging.getLogger(__name__)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose next request's headers take too long.

    uvicorn times out only idle keep-alive connections, and any byte restarts that; a client sending
    its headers (or an unread body after our answer) one byte at a time would hold a connection
    forever. Here the clock starts when the connection opens or an answer ends, and only a complete
    request line + headers stops it. Bodies have their own limit (:mod:`tilescan_service.admission`).
    httptools (C) rather than h11 (Python): less CPU a request (docs/benchmarks.md, "Serving").
    """

    header_timeout: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._disarm_header_timer()

    def on_response_complete(self) -> None:
        # A pipelined request whose headers are parsed already starts in super(): the timer may fire
        # while it runs, but _headers_late closes only between requests, and its answer re-arms it.
        self._arm_header_timer()
        super().on_response_complete()

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        between_requests = self.cycle is None or self.cycle.response_complete
        if between_requests and not self.transport.is_closing():
            self.transport.close()


def header_timeout_protocol(seconds: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class with its timeout (uvicorn builds protocols from a class and its own Config)."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout": seconds})


class DrainingServer(uvicorn.Server):
    """uvicorn's server, draining on SIGTERM before uvicorn's own graceful shutdown.

    SIGTERM turns ``/readyz`` to 503 at once and keeps serving for ``drain_seconds`` (a load balancer
    needs that long to stop sending new requests); then uvicorn stops accepting, lets in-flight and
    queued requests finish within ``timeout_graceful_shutdown``, runs the lifespan's shutdown and exits.
    SIGINT (Ctrl+C) skips the drain.
    """

    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_seconds: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_seconds = drain_seconds
        self._drain_ends: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self._drain_ends is None:
            # A signal handler: set flags only; the event loop's tick does the rest.
            self.app.state.draining = True
            self._drain_ends = time.monotonic() + self.drain_seconds
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_ends is not None and not self.should_exit and time.monotonic() >= self._drain_ends:
            log.info("drain over; finishing in-flight requests", extra={"drain_seconds": self.drain_seconds})
            super().handle_exit(signal.SIGTERM, None)
        return await super().on_tick(counter)


def build_server(app: FastAPI, settings: Settings) -> DrainingServer:
    """The server ``tilescan-serve`` runs, with every limit from ``settings``."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        # Our middleware writes one structured line per request; uvicorn's access log would repeat it.
        access_log=False,
        http=header_timeout_protocol(settings.header_timeout_seconds),
        limit_concurrency=settings.max_connections,
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,  # type: ignore[arg-type]
    )
    return DrainingServer(config, app, settings.drain_seconds)


def main() -> None:
    settings = get_settings()
    keep_inference_buffers()  # process-wide, so here and not in create_app (tests build many apps)
    build_server(create_app(settings), settings).run()


if __name__ == "__main__":
    main()
