"""Admission before the body, deadlines and hang-ups, over real HTTP against ``build_server``."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tilescan_service.client import multipart_body
from tilescan_service.config import Settings
from tilescan_service.engine import MIN_QUEUE_WAIT_SECONDS
from tilescan_shared.masks import DecisionRule
from tilescan_shared.predictor import Inference

PREDICT_499 = {"route": "/predict", "method": "POST", "status": "499"}


def request_head(port: int, body: bytes, content_type: str) -> bytes:
    return (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()


def read_response(sock: socket.socket, timeout: float = 10.0) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON body of one response (read until its Content-Length or EOF)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body) if body else None


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def post(url: str, png: bytes, timeout: float = 20) -> httpx.Response:
    return httpx.post(f"{url}/predict", files={"image": ("t.png", png)}, timeout=timeout)


def test_a_full_service_answers_503_without_reading_the_upload(
    live: Callable, blocked_inference: Callable, until: Callable, tiny_model: Path, square_png: bytes
) -> None:
    settings = Settings(
        model_path=tiny_model, inference_concurrency=1, max_queue=1, retry_after_seconds=2, log_level="ERROR"
    )
    with live(settings) as server, ThreadPoolExecutor(2) as pool:
        engine = server.app.state.engine
        with blocked_inference(server.app) as (release, _):
            # One request runs, one waits for the slot: every ticket is taken.
            running = [pool.submit(post, server.url, square_png) for _ in range(2)]
            until(lambda: engine.pending == 2, what="two admitted predictions")
            body, content_type = multipart_body(square_png)
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.sendall(request_head(server.port, body, content_type))  # headers only, no body
                started = time.monotonic()
                status, headers, answer = read_response(sock, timeout=5)
                seconds = time.monotonic() - started
            release.set()
            answers = [future.result().status_code for future in running]
        after = post(server.url, square_png)

    assert (status, headers["retry-after"], answer["error"]) == (503, "2", "overloaded")
    assert seconds < 2  # answered without waiting for a body that never comes
    assert answers == [200, 200]
    assert after.status_code == 200


def test_a_connection_that_ignores_retry_after_waits_for_its_next_refusal_not_for_a_place(
    live: Callable, blocked_inference: Callable, until: Callable, tiny_model: Path, square_png: bytes
) -> None:
    settings = Settings(
        model_path=tiny_model, inference_concurrency=1, max_queue=0, retry_after_seconds=1, log_level="ERROR"
    )
    body, content_type = multipart_body(square_png)

    def timed_post(conn: http.client.HTTPConnection) -> tuple[int, float]:
        started = time.monotonic()
        conn.request("POST", "/predict", body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        response.read()
        return response.status, time.monotonic() - started

    with (
        live(settings) as server,
        ThreadPoolExecutor(1) as pool,
        blocked_inference(server.app) as (release, _),
    ):
        running = pool.submit(post, server.url, square_png)
        until(lambda: server.app.state.engine.pending == 1, what="the prediction running")
        impatient = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        first, again = timed_post(impatient), timed_post(impatient)
        fresh = timed_post(http.client.HTTPConnection("127.0.0.1", server.port, timeout=10))
        release.set()
        assert running.result().status_code == 200
        # Back at once after its second 503, but a place is free now: admitted without a wait.
        admitted = timed_post(impatient)

    assert first[0] == again[0] == fresh[0] == 503
    assert first[1] < 0.5 and fresh[1] < 0.5
    assert 0.8 < again[1] < 3  # its refusal waited until its Retry-After of 1 s had passed
    assert admitted[0] == 200 and admitted[1] < 0.5


def test_a_client_that_hangs_up_is_dropped_before_inference_and_logged_499(
    live: Callable, blocked_inference: Callable, until: Callable, tiny_model: Path, square_png: bytes
) -> None:
    settings = Settings(model_path=tiny_model, inference_concurrency=1, max_queue=4, log_level="WARNING")
    with live(settings) as server, ThreadPoolExecutor(1) as pool:
        engine = server.app.state.engine
        with blocked_inference(server.app) as (release, ran):
            first = pool.submit(post, server.url, square_png)
            until(lambda: engine.slots.running == 1, what="the first prediction running")
            body, content_type = multipart_body(square_png)
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.sendall(request_head(server.port, body, content_type) + body)
                until(lambda: engine.pending == 2, what="the second prediction queued")
            # The socket is closed: the queued prediction must go, without waiting for the first.
            until(lambda: engine.pending == 1, what="the hung-up prediction dropped")
            until(lambda: server.metric("tilescan_http_requests_total", **PREDICT_499) == 1, what="a 499")
            release.set()
            assert first.result().status_code == 200
        ok = server.metric("tilescan_http_requests_total", route="/predict", method="POST", status="200")

    assert len(ran) == 1  # only the first request reached onnxruntime
    assert ok == 1


def test_a_client_that_hangs_up_during_inference_keeps_its_slot_until_the_inference_ends(
    live: Callable, blocked_inference: Callable, until: Callable, tiny_model: Path, square_png: bytes
) -> None:
    """onnxruntime cannot be stopped: the slot is free again only when its thread is, never before."""
    settings = Settings(model_path=tiny_model, inference_concurrency=1, max_queue=4, log_level="WARNING")
    with live(settings) as server:
        engine = server.app.state.engine
        with blocked_inference(server.app) as (release, ran):
            body, content_type = multipart_body(square_png)
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.sendall(request_head(server.port, body, content_type) + body)
                until(lambda: engine.slots.running == 1, what="the inference running")
            until(lambda: server.metric("tilescan_http_requests_total", **PREDICT_499) == 1, what="a 499")
            held_while_running = engine.slots.running
            release.set()
            until(lambda: engine.slots.running == 0, what="the slot given back")
        after = post(server.url, square_png)

    assert held_while_running == 1
    assert after.status_code == 200
    assert len(ran) == 1  # the hung-up request's inference ran to its end


def test_a_slow_upload_gets_408_and_its_connection_closed(
    live: Callable, until: Callable, tiny_model: Path, square_png: bytes
) -> None:
    settings = Settings(model_path=tiny_model, body_timeout_seconds=0.5, log_level="WARNING")
    with live(settings) as server:
        body, content_type = multipart_body(square_png)
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(request_head(server.port, body, content_type) + body[:100])  # and no more
            started = time.monotonic()
            status, headers, answer = read_response(sock, timeout=5)
            seconds = time.monotonic() - started
            sock.settimeout(2)
            end_of_stream = sock.recv(1)
        after = post(server.url, square_png)

    assert (status, answer["error"], headers["connection"]) == (408, "request_timeout", "close")
    assert 0.3 < seconds < 3
    assert end_of_stream == b""
    assert after.status_code == 200


def test_a_request_past_its_deadline_gets_504(
    live: Callable, blocked_inference: Callable, tiny_model: Path, square_png: bytes
) -> None:
    settings = Settings(model_path=tiny_model, request_timeout_seconds=0.5, log_level="WARNING")
    with live(settings) as server:
        with blocked_inference(server.app) as (release, _):
            started = time.monotonic()
            late = post(server.url, square_png)
            seconds = time.monotonic() - started
            release.set()
        after = post(server.url, square_png)

    assert (late.status_code, late.json()["error"]) == (504, "deadline_exceeded")
    assert seconds < 3
    assert after.status_code == 200


@pytest.mark.parametrize(
    ("limit", "status", "error", "first_status", "queue_timeouts", "least_seconds"),
    [
        # The request deadline: every request's, the running one's too (its 504 comes first).
        ({"request_timeout_seconds": 1.0, "queue_wait_ratio": 0}, 504, "deadline_exceeded", 504, 0, 0.9),
        # The queue timeout: only a request still waiting for its turn; a busy answer to retry.
        ({"queue_timeout_seconds": 0.5, "queue_wait_ratio": 0}, 503, "queue_timeout", 200, 1, 0.45),
        # By default the wait scales with the work ahead: a stuck line (the tiny model's inference
        # takes microseconds) sheds at the floor.
        ({}, 503, "queue_timeout", 200, 1, MIN_QUEUE_WAIT_SECONDS * 0.9),
    ],
    ids=["request-deadline", "queue-timeout", "scaled-wait"],
)
def test_a_request_still_waiting_for_its_turn_past_its_time_limit_leaves_the_line(
    live: Callable,
    blocked_inference: Callable,
    until: Callable,
    tiny_model: Path,
    square_png: bytes,
    limit: dict[str, float],
    status: int,
    error: str,
    first_status: int,
    queue_timeouts: int,
    least_seconds: float,
) -> None:
    """Every answer's wait is bounded, and a request shed while waiting never reaches inference."""
    settings = Settings(model_path=tiny_model, inference_concurrency=1, log_level="WARNING", **limit)
    with live(settings) as server, ThreadPoolExecutor(1) as pool:
        engine = server.app.state.engine
        with blocked_inference(server.app) as (release, ran):
            running = pool.submit(post, server.url, square_png)
            until(lambda: engine.slots.running == 1, what="the first prediction running")
            started = time.monotonic()
            late = post(server.url, square_png)  # waits behind it until its own limit
            seconds = time.monotonic() - started
            pending_after = engine.pending
            release.set()
            first = running.result()
        counted = server.metric("tilescan_inference_queue_timeouts_total")

    assert (late.status_code, late.json()["error"]) == (status, error)
    assert late.headers.get("retry-after") == ("1" if status == 503 else None)
    assert least_seconds < seconds < 3
    assert pending_after <= 1  # it left the line at once
    assert first.status_code == first_status
    assert counted == queue_timeouts
    assert len(ran) == 1  # only the running request reached onnxruntime


def test_overload_gets_only_200_or_503_and_the_next_request_after_it_gets_200(
    live: Callable, tiny_model: Path, square_png: bytes
) -> None:
    """24 clients against 1 slot + 2 queue places of a 20 ms inference, until 100 answers (at most 10 s)."""
    settings = Settings(model_path=tiny_model, inference_concurrency=1, max_queue=2, log_level="WARNING")
    body, content_type = multipart_body(square_png)
    with live(settings) as server:
        predictor = server.app.state.engine.predictor
        real_predict = predictor.predict

        def slow_predict(gray: np.ndarray, rule: DecisionRule | None = None) -> Inference:
            time.sleep(0.02)
            return real_predict(gray, rule)

        predictor.predict = slow_predict
        statuses: list[int] = []
        stop = time.monotonic() + 10

        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
            while len(statuses) < 100 and time.monotonic() < stop:
                conn.request("POST", "/predict", body=body, headers={"Content-Type": content_type})
                response = conn.getresponse()
                response.read()
                statuses.append(response.status)
            conn.close()

        threads = [threading.Thread(target=client) for _ in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        after = post(server.url, square_png)

    counts = {status: statuses.count(status) for status in set(statuses)}
    assert set(counts) == {200, 503}, counts
    assert after.status_code == 200
