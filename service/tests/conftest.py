"""Fixtures: a tiny model, an app on it (TestClient) and the same app behind a live uvicorn server."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from tilescan_service.config import Settings
from tilescan_service.main import create_app
from tilescan_service.testing import live_server as serve_live
from tilescan_service.testing import wait_ready
from tilescan_shared.testing import bright_square, write_tiny_model

# bright_square()'s default rectangle: what the tiny model (probability = pixel / 255) must find.
SQUARE_BOX = (10, 5, 30, 20)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.fixture(scope="session")
def square() -> np.ndarray:
    """A 40x60 dark tile with one bright 20x15 rectangle."""
    return bright_square()


@pytest.fixture(scope="session")
def expected_mask(square: np.ndarray) -> np.ndarray:
    return (square >= 128).astype(np.uint8)


def encode(image: np.ndarray | Image.Image, fmt: str = "PNG", **save_args: Any) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    img.save(buf, format=fmt, **save_args)
    return buf.getvalue()


@pytest.fixture(scope="session")
def square_png(square: np.ndarray) -> bytes:
    return encode(square)


@pytest.fixture(scope="session")
def encoder() -> Callable[..., bytes]:
    """``encode(image, fmt, **save_args)`` for tests that build their own uploads."""
    return encode


@pytest.fixture(scope="module")
def settings(tiny_model: Path) -> Settings:
    return Settings(model_path=tiny_model, log_level="WARNING")


@pytest.fixture(scope="module")
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client of a ready app (lifespan run, model loaded and warmed up)."""
    with TestClient(app) as test_client:
        wait_ready(test_client.get)
        yield test_client


@pytest.fixture(scope="session")
def live_server(tiny_model: Path) -> Iterator[str]:
    """Base URL of a real uvicorn server on 127.0.0.1 serving the tiny model, ready."""
    with serve_live(create_app(Settings(model_path=tiny_model, log_level="WARNING"))) as base_url:
        with httpx.Client(base_url=base_url, timeout=5) as http:
            wait_ready(http.get)
        yield base_url
