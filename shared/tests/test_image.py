import io

import numpy as np
import pytest
from PIL import Image

from tilescan_shared.image import (
    ImageError,
    ImageTooLargeError,
    MultiFrameError,
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


def _float64_reference(arr: np.ndarray, sixteen_bit: bool) -> np.ndarray:
    """The conversion as it was computed before, on a whole-image float64 copy."""
    wide = arr.astype(np.float64)
    top = 65535.0 if sixteen_bit or wide.max(initial=0) > 255 else 255.0
    return np.clip(np.rint(wide * (255.0 / top)), 0, 255).astype(np.uint8)


def test_sixteen_bit_matches_the_float64_formula_for_every_value():
    every = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    out = decode_gray(encode(Image.fromarray(every), "PNG"))
    np.testing.assert_array_equal(out, _float64_reference(every, sixteen_bit=True))


@pytest.mark.parametrize("top", [200, 60000])
@pytest.mark.parametrize("dtype", [np.int32, np.float32])
def test_wide_integer_and_float_images_match_the_float64_formula(top, dtype):
    rng = np.random.default_rng(1)
    # Taller than one conversion strip, so the strips' seams are covered too.
    arr = (rng.random((2100, 600)) * top).astype(dtype)
    arr[0, 0] = -5  # clipped to 0
    out = decode_gray(encode(Image.fromarray(arr), "TIFF"))
    np.testing.assert_array_equal(out, _float64_reference(arr, sixteen_bit=False))


def test_multi_page_tiff_is_refused(gray):
    pages = [Image.fromarray(gray), Image.fromarray(255 - gray)]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    with pytest.raises(MultiFrameError, match="2 frames or pages"):
        decode_gray(data)


@pytest.mark.parametrize("fmt", ["WEBP", "PNG"])
def test_animations_are_refused(gray, fmt):
    frames = [Image.fromarray(gray), Image.fromarray(255 - gray), Image.fromarray(gray // 2)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(MultiFrameError, match="3 frames or pages"):
        decode_gray(data)


def test_decoder_errors_are_kept_as_the_cause_for_the_log(gray):
    data = encode(Image.fromarray(gray), "PNG")
    with pytest.raises(ImageError, match=r"^the image data is truncated or corrupt$") as caught:
        decode_gray(data[: len(data) // 2])
    assert caught.value.__cause__ is not None
