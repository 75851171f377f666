"""Helpers for tests of the service: wait for the model with a deadline, run an app on a live server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI


def wait_ready(get: Callable[[str], Any], status: str = "ready", timeout: float = 10.0) -> Any:
    """Poll ``GET /readyz`` until the model's status is ``status``; return that answer.

    ``get`` is a client's ``get`` (TestClient or httpx). ``status="failed"`` waits for a load to
    fail. Raises :class:`TimeoutError` after ``timeout`` seconds, and :class:`AssertionError` when
    the load ends the other way (ready while waiting for failed, or the reverse).
    """
    deadline = time.monotonic() + timeout
    while (response := get("/readyz")).json()["status"] == "loading":
        if time.monotonic() > deadline:
            raise TimeoutError(f"the model was still loading after {timeout} s")
        time.sleep(0.01)
    assert response.json()["status"] == status, response.json()
    return response


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server(app: FastAPI, timeout: float = 15.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free 127.0.0.1 port in a thread; yield its base URL.

    The server has started (the lifespan ran) when this yields; the model may still be loading.
    """
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise TimeoutError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)
