"""Helpers for tests and benchmarks of the service: a free port, the model's readiness with a deadline,
an app on a live server in a thread, a real ``tilescan-serve`` process. (The multipart body of
``/predict`` is in :mod:`tilescan_service.client`.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fastapi import FastAPI

from tilescan_service.serve import build_server


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
def live_server(app: FastAPI, timeout: float = 15.0, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` in a thread with the server ``tilescan-serve`` runs (header timeout, connection cap,
    drain; :func:`~tilescan_service.serve.build_server`) on ``port`` of 127.0.0.1 (default: a free one);
    yield its base URL.

    The server has started (the lifespan ran) when this yields; the model may still be loading.
    """
    settings = app.state.settings.model_copy(update={"host": "127.0.0.1", "port": port or free_port()})
    server = build_server(app, settings)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise TimeoutError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)


@dataclass(frozen=True)
class ServedProcess:
    url: str
    process: subprocess.Popen

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def start_serve(
    model: Path, port: int | None = None, timeout: float = 60.0, log: IO | None = None, **settings: str
) -> ServedProcess:
    """Start a real ``tilescan-serve`` on ``port`` of 127.0.0.1 (default: a free one) serving ``model``,
    with ``settings`` as extra environment variables (``TILESCAN_MAX_QUEUE="4"``) over this process's;
    return once ``/readyz`` answers 200. Its output goes to ``log`` (default: this process's).

    Raises :class:`TimeoutError` when it is not ready within ``timeout`` seconds or exits first (it is
    stopped then). Stop it with :func:`stop_serve`.
    """
    port = port or free_port()
    env = os.environ | {
        "PORT": str(port),
        "TILESCAN_HOST": "127.0.0.1",
        "TILESCAN_MODEL_PATH": str(model),
        "TILESCAN_LOG_LEVEL": "WARNING",
        "TILESCAN_DRAIN_SECONDS": "0",  # no load balancer to wait for: stop_serve returns at once
    }
    process = subprocess.Popen(
        [Path(sys.executable).parent / "tilescan-serve"], env=env | settings, stdout=log, stderr=log
    )
    served = ServedProcess(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + timeout
    while not _ready(served.url):
        if time.monotonic() > deadline or process.poll() is not None:
            stop_serve(served)
            raise TimeoutError(f"tilescan-serve on {served.url} not ready within {timeout} s")
        time.sleep(0.1)
    return served


def stop_serve(served: ServedProcess) -> None:
    """SIGTERM, and wait for the process to exit (after ``TILESCAN_DRAIN_SECONDS``, 0 unless set)."""
    served.process.terminate()
    served.process.wait(timeout=30)


@contextmanager
def serve_process(
    model: Path, timeout: float = 60.0, log: IO | None = None, **settings: str
) -> Iterator[ServedProcess]:
    """:func:`start_serve` for the duration of a ``with`` block."""
    served = start_serve(model, timeout=timeout, log=log, **settings)
    try:
        yield served
    finally:
        stop_serve(served)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
