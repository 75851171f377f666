"""Decode uploaded or stored image bytes into the 8-bit grayscale array the model expects.

One function, :func:`decode_gray`, is the only way images enter tilescan, so training, evaluation
and the service see identical pixels for identical files.
"""

from __future__ import annotations

import io
import os
import warnings

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


def decode_gray(data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode JPEG/PNG/BMP/TIFF/WebP bytes into a ``uint8`` array of shape ``(H, W)``.

    EXIF orientation is applied; colour, palette, alpha and 16-bit images are reduced to 8-bit
    grayscale. The pixel count is checked from the header, before any pixel is decoded, so a
    decompression bomb costs nothing.
    """
    if not data:
        raise ImageError("the file is empty")
    with warnings.catch_warnings():
        # We enforce our own pixel limit below; Pillow's own bomb warning would only add noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageError("the file is not a readable image") from None
        except Image.DecompressionBombError as err:
            raise ImageTooLargeError(str(err)) from None
        if img.format not in SUPPORTED_FORMATS:
            raise UnsupportedFormatError(
                f"image format {img.format} is not supported; "
                f"send one of {', '.join(sorted(SUPPORTED_FORMATS))}"
            )
        width, height = img.size
        if width < 1 or height < 1:
            raise ImageError("the image has no pixels")
        if max_pixels is not None and width * height > max_pixels:
            raise ImageTooLargeError(
                f"the image has {width}x{height} = {width * height} pixels, "
                f"more than the limit of {max_pixels}"
            )
        try:
            img.load()
            img = ImageOps.exif_transpose(img)
            return to_gray8(img)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            # Pillow reports truncated or corrupt data as OSError/SyntaxError/ValueError.
            raise ImageError(f"the image data is truncated or corrupt ({err})") from None


def to_gray8(img: Image.Image) -> np.ndarray:
    """Reduce any Pillow image mode to an 8-bit grayscale array (ITU-R 601-2 luma for colour)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        return np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
    if img.mode == "P":
        # Palette images may carry transparency: expand through RGBA so the palette is honoured.
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "RGBa", "LA", "La"):
        # Alpha says nothing about the tile surface; drop it rather than blend with a made-up background.
        img = img.convert("RGB" if img.mode.startswith("RGB") else "L")
    if img.mode != "L":
        img = img.convert("L")
    return np.asarray(img, dtype=np.uint8).copy()


def read_gray(path: str | os.PathLike[str], max_pixels: int | None = None) -> np.ndarray:
    """Read an image file from disk through :func:`decode_gray`."""
    with open(path, "rb") as f:
        return decode_gray(f.read(), max_pixels=max_pixels)
