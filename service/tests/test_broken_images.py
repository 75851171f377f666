"""Every broken image is a 4xx: real tiles in every accepted format, cut and byte-flipped, over real HTTP."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

# Every format the service accepts, with the options a camera or a script would write it with.
_FORMATS: dict[str, tuple[str, dict]] = {
    "png": ("PNG", {}),
    "png-16-bit": ("PNG", {}),
    "jpeg": ("JPEG", {"quality": 90}),
    "jpeg-progressive": ("JPEG", {"quality": 90, "progressive": True}),
    "bmp": ("BMP", {}),
    "tiff": ("TIFF", {}),
    "tiff-lzw": ("TIFF", {"compression": "tiff_lzw"}),
    "webp": ("WEBP", {"quality": 80}),
    "webp-lossless": ("WEBP", {"lossless": True}),
}


def _tile() -> np.ndarray:
    """A small tile-like photo: a noisy surface with one bright scratch."""
    rng = np.random.default_rng(0)
    img = rng.normal(90, 12, (48, 64)).clip(0, 255).astype(np.uint8)
    img[20:24, 8:56] = 230
    return img


def _encode(name: str) -> bytes:
    fmt, options = _FORMATS[name]
    gray = _tile()
    image = Image.fromarray(gray.astype(np.uint16) * 257 if name == "png-16-bit" else gray)
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


TILES = {name: _encode(name) for name in _FORMATS}
_IMAGE_ERRORS = {"invalid_image", "multi_frame_image", "image_too_large", "unsupported_format"}


@st.composite
def broken_tiles(draw: st.DrawFn) -> tuple[str, bytes]:
    """An encoded tile cut short, or with a few bytes overwritten, or both."""
    name = draw(st.sampled_from(sorted(TILES)))
    data = bytearray(TILES[name])
    # Headers are where parsers trust offsets and lengths: aim half of the edits at the first 64 bytes.
    position = st.one_of(st.integers(0, 63), st.integers(0, len(data) - 1))
    for index, value in draw(st.lists(st.tuples(position, st.integers(0, 255)), max_size=8)):
        data[index] = value
    if draw(st.booleans()):
        data = data[: draw(st.one_of(st.integers(1, 64), st.integers(1, len(data) - 1)))]
    return name, bytes(data)


@pytest.fixture(scope="module")
def http(live_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server, timeout=30) as client:
        yield client


@given(broken_tiles())
@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same cases on every run: CI stays reproducible
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_broken_images_are_4xx_and_the_service_stays_ready(
    http: httpx.Client, case: tuple[str, bytes]
) -> None:
    name, data = case
    response = http.post("/predict?format=png", files={"image": (f"tile.{name}", data)})

    assert response.status_code in (200, 400, 413, 415), (name, response.status_code, response.text)
    if response.status_code != 200:
        body = response.json()
        assert body["error"] in _IMAGE_ERRORS
        # Our sentence only: no decoder internals (offsets, chunk names, Python exception text).
        assert "(" not in body["detail"], body["detail"]
    assert http.get("/readyz").status_code == 200


@pytest.mark.parametrize("name", sorted(TILES))
def test_every_intact_tile_decodes(http: httpx.Client, name: str) -> None:
    """The fuzz above starts from valid files: each one must be a 200 as it is."""
    response = http.post("/predict?format=rle", files={"image": (f"tile.{name}", TILES[name])})

    assert response.status_code == 200
    assert (response.json()["height"], response.json()["width"]) == (48, 64)


@pytest.mark.parametrize(
    ("fmt", "options"), [("TIFF", {}), ("WEBP", {"duration": 100}), ("PNG", {"duration": 100})]
)
def test_multi_frame_images_get_a_clear_400(http: httpx.Client, fmt: str, options: dict) -> None:
    """A multi-page TIFF or an animation is refused, not silently cut to its first frame."""
    first, second = Image.fromarray(_tile()), Image.fromarray(255 - _tile())
    buf = io.BytesIO()
    first.save(buf, format=fmt, save_all=True, append_images=[second], **options)

    response = http.post("/predict", files={"image": ("frames", buf.getvalue())})

    assert response.status_code == 400
    assert response.json()["error"] == "multi_frame_image"
    assert "2 frames or pages" in response.json()["detail"]
