"""``tilescan-serve``'s server: header timeout, connection cap, and the drain on SIGTERM."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tilescan_service.client import multipart_body
from tilescan_service.config import Settings
from tilescan_service.testing import serve_process


def _open(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _closed_within(sock: socket.socket, seconds: float, drip: bytes = b"") -> bool:
    """Whether the server closes ``sock`` within ``seconds`` while we send ``drip`` a byte at a time."""
    deadline = time.monotonic() + seconds
    sock.settimeout(0.1)
    for byte in [drip[i : i + 1] for i in range(len(drip))] or [b""] * int(seconds * 10):
        if time.monotonic() > deadline:
            return False
        try:
            if byte:
                sock.sendall(byte)
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def test_headers_sent_too_slowly_or_not_at_all_close_the_connection(live: Callable, tiny_model: Path) -> None:
    settings = Settings(model_path=tiny_model, header_timeout_seconds=0.5, log_level="WARNING")
    # A byte every 0.1 s for 3 s: uvicorn's keep-alive timer would restart at every byte.
    drip = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 30
    with live(settings) as server:
        closed = {"silent": _closed_within(_open(server.port), 2)}
        closed["dripping"] = _closed_within(_open(server.port), 3, drip)
        after_answer = _open(server.port)
        after_answer.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        assert after_answer.recv(65536).startswith(b"HTTP/1.1 200")
        closed["dripping after an answer"] = _closed_within(after_answer, 3, drip)
        assert httpx.get(f"{server.url}/healthz").status_code == 200

    assert closed == dict.fromkeys(closed, True)


def test_connections_over_the_cap_get_503(live: Callable, tiny_model: Path) -> None:
    settings = Settings(model_path=tiny_model, max_connections=3, log_level="WARNING")
    with live(settings) as server:
        idle = [_open(server.port) for _ in range(3)]
        time.sleep(0.2)  # let the server accept them
        over = httpx.get(f"{server.url}/healthz")
        for sock in idle:
            sock.close()
        time.sleep(0.2)
        under = httpx.get(f"{server.url}/healthz")

    assert over.status_code == 503
    assert under.status_code == 200


def test_sigterm_turns_readiness_off_at_once_and_lets_requests_in_flight_finish(
    tiny_model: Path, square_png: bytes, tmp_path: Path
) -> None:
    """A real ``tilescan-serve`` process; three uploads are half sent when SIGTERM comes."""
    settings = {"TILESCAN_DRAIN_SECONDS": "1", "TILESCAN_SHUTDOWN_TIMEOUT_SECONDS": "10"}
    log = tmp_path / "serve.log"
    with open(log, "wb") as out, serve_process(tiny_model, log=out, **settings) as served:
        port = served.port
        body, content_type = multipart_body(square_png)
        head = (
            f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        in_flight = [_open(port) for _ in range(3)]
        for sock in in_flight:
            sock.sendall(head + body[: len(body) // 2])

        served.process.send_signal(signal.SIGTERM)
        readiness = httpx.get(f"{served.url}/readyz", timeout=5)
        time.sleep(1.5)  # past the drain: the server has stopped accepting
        for sock in in_flight:
            sock.sendall(body[len(body) // 2 :])
        answers = [sock.recv(65536).split(b" ", 2)[1] for sock in in_flight]
        started = time.monotonic()
        served.process.wait(timeout=15)
        exit_seconds = time.monotonic() - started

    assert (readiness.status_code, readiness.json()["status"]) == (503, "draining")
    assert answers == [b"200"] * 3, log.read_text()
    assert exit_seconds < 5
    assert served.process.returncode in (0, -signal.SIGTERM)
