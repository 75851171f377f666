"""The example panels that evaluate commits beside the model: ``image | truth | prediction`` side by side,
``GAP`` pixels apart, under a ``HEADER``-pixel caption strip, as lossless PNG. Training draws them
(``tilescan_training.plots.example_panel``); the deploy smoke test cuts the real tile back out of one."""

from __future__ import annotations

from PIL import Image

GAP = 6
HEADER = 18


def panel_size(tile_width: int, tile_height: int) -> tuple[int, int]:
    """``(width, height)`` of the panel of a tile of that size."""
    return 3 * tile_width + 2 * GAP, tile_height + HEADER


def tile_left(index: int, tile_width: int) -> int:
    """x of the left edge of the ``index``-th third (0 = image, 1 = truth, 2 = prediction)."""
    return index * (tile_width + GAP)


def cut_tile(panel: Image.Image) -> Image.Image:
    """The original tile, as 8-bit grayscale; ``ValueError`` if ``panel`` does not have the layout."""
    rgb = panel.convert("RGB")
    width, height = rgb.size
    if (width - 2 * GAP) % 3 or height <= HEADER:
        raise ValueError(f"{width}x{height} does not have the example-panel layout")
    tile_width = (width - 2 * GAP) // 3
    red, green, blue = rgb.crop((0, HEADER, tile_width, height)).split()
    if red.tobytes() != green.tobytes() or green.tobytes() != blue.tobytes():
        raise ValueError("the first third is not a grayscale tile: the layout changed?")
    return red
