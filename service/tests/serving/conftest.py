"""Fixtures for tests against ``tilescan-serve``'s own server (``build_server``) on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from tilescan_service.config import Settings
from tilescan_service.main import create_app
from tilescan_service.testing import live_server, wait_ready
from tilescan_shared.masks import DecisionRule
from tilescan_shared.predictor import Inference


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(0.005)


@dataclass
class Live:
    url: str
    port: int
    app: FastAPI

    def metric(self, name: str, **labels: str) -> float:
        """The sample of ``name`` with exactly ``labels`` on /metrics (0 when absent)."""
        for family in text_string_to_metric_families(httpx.get(f"{self.url}/metrics", timeout=5).text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return 0.0


@contextmanager
def _live(settings: Settings) -> Iterator[Live]:
    """A ready app behind ``tilescan-serve``'s server (header timeout, connection cap) in a thread."""
    app = create_app(settings)
    with live_server(app) as url:
        wait_ready(lambda path: httpx.get(f"{url}{path}", timeout=5), timeout=15)
        yield Live(url, int(url.rsplit(":", 1)[1]), app)


@contextmanager
def _blocked_inference(app: FastAPI) -> Iterator[tuple[threading.Event, list[int]]]:
    """Make every inference wait for the yielded event; the list counts the inferences that ran."""
    release = threading.Event()
    ran: list[int] = []
    predictor = app.state.engine.predictor
    real_predict = predictor.predict

    def blocked(gray: np.ndarray, rule: DecisionRule | None = None) -> Inference:
        release.wait(timeout=20)
        ran.append(gray.size)
        return real_predict(gray, rule)

    predictor.predict = blocked
    try:
        yield release, ran
    finally:
        release.set()
        predictor.predict = real_predict


@pytest.fixture
def live() -> Callable[[Settings], AbstractContextManager[Live]]:
    """``with live(settings) as server:`` a ready app behind ``build_server`` in a thread."""
    return _live


@pytest.fixture
def blocked_inference() -> Callable[[FastAPI], AbstractContextManager[tuple[threading.Event, list[int]]]]:
    """``with blocked_inference(app) as (release, ran):`` inferences wait for ``release``."""
    return _blocked_inference


@pytest.fixture
def until() -> Callable[..., None]:
    """``until(condition, timeout, what)``: poll ``condition`` with a deadline."""
    return wait_until
