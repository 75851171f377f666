import io

import numpy as np
import pytest
from PIL import Image

from tilescan_shared.image import (
    ImageError,
    ImageTooLargeError,
    UnsupportedFormatError,
    decode_gray,
)


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@pytest.fixture
def gray() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (30, 50), dtype=np.uint8)


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP"])
def test_lossless_formats_roundtrip_exactly(gray, fmt):
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    out = decode_gray(encode(Image.fromarray(gray), fmt, **kwargs))
    np.testing.assert_array_equal(out, gray)


def test_jpeg_decodes_to_same_size(gray):
    out = decode_gray(encode(Image.fromarray(gray), "JPEG", quality=95))
    assert out.shape == gray.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - gray).mean() < 20


def test_colour_becomes_luma():
    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    rgb[..., 1] = 200
    out = decode_gray(encode(Image.fromarray(rgb), "PNG"))
    assert out.shape == (4, 6)
    assert np.all(out == round(200 * 0.587))


def test_sixteen_bit_is_scaled_to_eight_bit():
    arr = np.full((5, 7), 65535, dtype=np.uint16)
    arr[0, 0] = 0
    out = decode_gray(encode(Image.fromarray(arr), "PNG"))
    assert out.dtype == np.uint8
    assert out[0, 0] == 0 and out[1, 1] == 255


def test_palette_and_alpha_images(gray):
    palette = Image.fromarray(gray).convert("P")
    assert decode_gray(encode(palette, "PNG")).shape == gray.shape
    rgba = Image.fromarray(np.dstack([gray, gray, gray, np.zeros_like(gray)]), mode="RGBA")
    np.testing.assert_array_equal(decode_gray(encode(rgba, "PNG")), gray)


def test_exif_orientation_is_applied():
    arr = np.zeros((10, 20), dtype=np.uint8)
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    out = decode_gray(encode(img, "JPEG", exif=exif.tobytes()))
    assert out.shape == (20, 10)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"", ImageError, "empty"),
        (b"definitely not an image", ImageError, "not a readable image"),
    ],
)
def test_bad_bytes(data, error, message):
    with pytest.raises(error, match=message):
        decode_gray(data)


def test_truncated_image(gray):
    data = encode(Image.fromarray(gray), "PNG")
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode_gray(data[: len(data) // 2])


def test_unsupported_format(gray):
    with pytest.raises(UnsupportedFormatError, match="GIF is not supported"):
        decode_gray(encode(Image.fromarray(gray), "GIF"))


def test_pixel_limit_is_checked_before_decoding(gray):
    with pytest.raises(ImageTooLargeError, match="1500 pixels"):
        decode_gray(encode(Image.fromarray(gray), "PNG"), max_pixels=1000)
