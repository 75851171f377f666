"""Decode uploaded or stored image bytes into the 8-bit grayscale array the model expects.

One function, :func:`decode_gray`, is the only way images enter tilescan, so training, evaluation
and the service see identical pixels for identical files.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

SUPPORTED_FORMATS: frozenset[str] = frozenset({"JPEG", "PNG", "BMP", "TIFF", "WEBP"})
DEFAULT_MAX_PIXELS = 40_000_000


class ImageError(ValueError):
    """The bytes cannot be used as a tile image; ``str(err)`` says why, for the client."""


class UnsupportedFormatError(ImageError):
    """A real image, but in a format tilescan does not accept."""


class ImageTooLargeError(ImageError):
    """The image header announces more pixels than allowed (checked before decoding)."""


class MultiFrameError(ImageError):
    """The file holds several frames or pages (multi-page TIFF, animated WebP or PNG)."""


def decode_gray(data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode JPEG/PNG/BMP/TIFF/WebP bytes into a ``uint8`` array of shape ``(H, W)``.

    EXIF orientation is applied; colour, palette, alpha, 16-bit and float images are reduced to
    8-bit grayscale. The pixel count is checked from the header, before any pixel is decoded, so a
    decompression bomb costs nothing. Multi-frame files (TIFF pages, animated WebP or PNG) are
    refused rather than silently cut to their first frame.

    Every way the bytes can be broken raises :class:`ImageError` (or a subclass) with a sentence
    for the client; the decoder's own exception, meant for the log, is its ``__cause__``.
    """
    if not data:
        raise ImageError("the file is empty")
    with warnings.catch_warnings():
        # We enforce our own pixel limit below; Pillow's own bomb warning would only add noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return _decode(data, max_pixels)
        except (ImageError, MemoryError):
            raise
        except UnidentifiedImageError as err:
            raise ImageError("the file is not a readable image") from err
        except Image.DecompressionBombError as err:
            raise ImageTooLargeError("the image has more pixels than allowed") from err
        except Exception as err:
            # Pillow's plugins report a broken file with whatever their parser trips on: OSError,
            # SyntaxError, ValueError, but also EOFError, struct.error, IndexError, KeyError,
            # TypeError... Any of them, for bytes a client sent, means the same thing.
            raise ImageError("the image data is truncated or corrupt") from err


def _decode(data: bytes, max_pixels: int | None) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    if img.format not in SUPPORTED_FORMATS:
        raise UnsupportedFormatError(
            f"image format {img.format} is not supported; send one of {', '.join(sorted(SUPPORTED_FORMATS))}"
        )
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageError("the image has no pixels")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"the image has {width}x{height} = {width * height} pixels, more than the limit of {max_pixels}"
        )
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        raise MultiFrameError(f"the image has {frames} frames or pages; send a single-frame image")
    img.load()
    return to_gray8(ImageOps.exif_transpose(img))


# 16-bit to 8-bit as one table lookup per pixel: the same rounding as computing
# rint(value * 255 / 65535) in float64, without a float64 copy of the image.
_FROM_16_BIT = np.rint(np.arange(65536) * (255.0 / 65535.0)).astype(np.uint8)
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
# Converted a band of rows at a time, so temporaries stay near this size whatever the image's.
_STRIP_PIXELS = 1 << 20


def to_gray8(img: Image.Image) -> np.ndarray:
    """Reduce any Pillow image mode to an 8-bit grayscale array (ITU-R 601-2 luma for colour).

    16-bit images map 0..65535 onto 0..255; 32-bit integer and float images map 0..255 as is, or
    0..65535 when their maximum is above 255, clipped. Pixels are copied out of Pillow in strips of
    rows, so the only full-size buffer besides Pillow's image is the 8-bit result.
    """
    if img.mode in _SIXTEEN_BIT_MODES:
        return _strips(img, lambda strip: _FROM_16_BIT[strip])
    if img.mode in ("I", "F"):
        _, high = img.getextrema()
        scale = 255.0 / (65535.0 if high > 255 else 255.0)

        def rescale(strip: np.ndarray) -> np.ndarray:
            # float64 for float32 pixels too: the rounding of a whole-image float64 copy, per strip.
            return np.clip(np.rint(np.multiply(strip, scale, dtype=np.float64)), 0, 255)

        return _strips(img, rescale)
    if img.mode == "P":
        # Palette images may carry transparency: expand through RGBA so the palette is honoured.
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "RGBa", "LA", "La"):
        # Alpha says nothing about the tile surface; drop it rather than blend with a made-up background.
        img = img.convert("RGB" if img.mode.startswith("RGB") else "L")
    if img.mode != "L":
        img = img.convert("L")
    return _strips(img, lambda strip: strip)


def _strips(img: Image.Image, convert: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``convert`` applied to the image's pixels, a band of rows at a time, into one ``uint8`` array.

    ``np.asarray(img)`` of the whole image would hold Pillow's pixels three times over (its
    ``tobytes`` joins a list of chunks); a strip costs only its own size.
    """
    width, height = img.size
    out = np.empty((height, width), dtype=np.uint8)
    rows = max(1, _STRIP_PIXELS // width)
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        out[top:bottom] = convert(np.asarray(img.crop((0, top, width, bottom))))
    return out


def read_gray(path: str | os.PathLike[str], max_pixels: int | None = None) -> np.ndarray:
    """Read an image file from disk through :func:`decode_gray`."""
    with open(path, "rb") as f:
        return decode_gray(f.read(), max_pixels=max_pixels)
