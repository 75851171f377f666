"""Test helpers for code that scores models (the gate, promotion, the workflows' sandbox), and
:func:`write_plant_batch` for the plant tiles ``ingest`` reads.

:func:`write_scoring_data` lays out a tiny ingested dataset and split whose test tiles give the tiny
models of :mod:`tilescan_shared.testing` (probability = pixel / 255) scores known by construction:

* defect tiles: an 8x8 square of 255 (the truth), a one-pixel ring of 180 (p 0.71) and one of 120
  (p 0.47) around it;
* defect-free tiles: a spot of 140 (p 0.55).

So a pixel threshold of 0.9 finds exactly the squares (Dice 1, no false alarm), 0.6 adds the inner
ring (Dice 0.780, no false alarm), 0.5 the same Dice with every free tile flagged, and 0.4 both rings
with every free tile flagged (Dice 0.615). A tile threshold above 0.55 rejects every free tile.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from tilescan_shared.labelled import LabelledTile, write_labels
from tilescan_training.manifest import Record, SplitEntry, write_records, write_split

DEFECT_TILES, FREE_TILES = 4, 4


def _tile(defect: bool, shift: int) -> tuple[np.ndarray, np.ndarray]:
    image = np.full((32, 40), 20, dtype=np.uint8)
    truth = np.zeros_like(image)
    y, x = 8 + shift, 10 + shift
    if defect:
        image[y - 2 : y + 10, x - 2 : x + 10] = 120
        image[y - 1 : y + 9, x - 1 : x + 9] = 180
        image[y : y + 8, x : x + 8] = 255
        truth[y : y + 8, x : x + 8] = 1
    else:
        image[y : y + 6, x : x + 6] = 140
    return image, truth


def write_scoring_data(repo: Path) -> None:
    """``repo/data/ingested`` (manifest, images, masks) and ``repo/data/split.csv``, all tiles in test."""
    root = repo / "data/ingested"
    records, entries = [], []
    for i in range(DEFECT_TILES + FREE_TILES):
        defect = i < DEFECT_TILES
        cls = "crack" if defect else "free"
        image, truth = _tile(defect, shift=i % 3)
        paths = {kind: f"{kind}/{cls}/tile{i}.png" for kind in ("images", "masks")}
        for kind, array in (("images", image), ("masks", truth)):
            (root / paths[kind]).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(root / paths[kind])
        sha = {kind: hashlib.sha256((root / p).read_bytes()).hexdigest() for kind, p in paths.items()}
        tile_id = f"{cls}/tile{i}"
        records.append(
            Record(
                tile_id,
                cls,
                paths["images"],
                paths["masks"],
                *image.shape,
                int(truth.sum()),
                sha["images"],
                sha["masks"],
            )
        )
        entries.append(SplitEntry(tile_id, cls, "test"))
    write_records(root / "manifest.csv", records)
    write_split(repo / "data/split.csv", entries)


def write_plant_batch(batch: Path, tiles: list[tuple[bytes, str, np.ndarray]]) -> None:
    """A labelled batch (:mod:`tilescan_shared.labelled`) of ``(image bytes, class, 0/1 mask)``."""
    (batch / "images").mkdir(parents=True)
    (batch / "masks").mkdir()
    rows = []
    for data, cls, mask in tiles:
        sha = hashlib.sha256(data).hexdigest()
        image, mask_file = f"images/{sha}.png", f"masks/{sha}.png"
        (batch / image).write_bytes(data)
        Image.fromarray(np.ascontiguousarray(mask)).save(batch / mask_file)
        shape = mask.shape
        rows.append(
            LabelledTile(
                sha,
                cls,
                image,
                mask_file,
                shape[0],
                shape[1],
                int(mask.sum()),
                "2026-12-06T06:00:00+00:00",
                "v1",
                "uncertain",
            )
        )
    write_labels(batch, rows)
