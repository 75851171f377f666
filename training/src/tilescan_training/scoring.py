"""Scoring a model on tiles: its answers, then pixel, per-class and tile-level metrics.

The evaluate stage scores the exported model with it, and ``make gate`` re-scores the served model and
the baseline's on the same tiles; both run the service's own code (:class:`Predictor`, :func:`segment`).
Light on purpose: numpy, onnxruntime and the manifests, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tilescan_shared.image import read_gray
from tilescan_shared.masks import DecisionRule, segment
from tilescan_shared.metrics import PixelCounts, detection_scores, pixel_counts, tile_curve
from tilescan_shared.predictor import Inference, Predictor, second_look
from tilescan_training.manifest import FREE_CLASS, Record


@dataclass
class Scored:
    """One tile with its truth and the model's probability map."""

    record: Record
    image: np.ndarray
    truth: np.ndarray
    probability: np.ndarray
    tile_score: float | None
    views: int = 1  # 4 when the model looked at the tile again (the rule's review band)


@dataclass(frozen=True)
class Tile:
    """One tile as read from the ingested data: its record, image and truth mask."""

    record: Record
    image: np.ndarray
    truth: np.ndarray


@dataclass(frozen=True)
class Looked:
    """One tile with the model's answer to it and to its mirrored views: what choosing a review band needs."""

    tile: Tile
    first: Inference
    mirrored: list[Inference]

    def answer(self, rule: DecisionRule | None) -> Scored:
        """What :meth:`Predictor.predict` answers for this tile under ``rule``."""
        return _scored(self.tile, second_look(self.first, rule, lambda: self.mirrored))


def _scored(tile: Tile, inference: Inference) -> Scored:
    return Scored(
        tile.record, tile.image, tile.truth, inference.probability, inference.tile_score, inference.views
    )


def load_tiles(records: list[Record], data_dir: Path) -> list[Tile]:
    """Decode each record's image and mask once (the gate scores two models on the same tiles)."""
    return [Tile(r, read_gray(data_dir / r.image), read_gray(data_dir / r.mask)) for r in records]


def predict_all(predictor: Predictor, tiles: list[Tile], rule: DecisionRule | None = None) -> list[Scored]:
    """The model's answers as the service gets them: under ``rule``, a second look where it says so."""
    return [_scored(tile, predictor.predict(tile.image, rule)) for tile in tiles]


def look_all(predictor: Predictor, tiles: list[Tile]) -> list[Looked]:
    """Each tile's answer and, for a model with a tile score, its mirrored views' (four runs a tile)."""
    looked = []
    for tile in tiles:
        first = predictor.predict(tile.image)
        mirrored = [] if first.tile_score is None else predictor.mirrored_views(tile.image)
        looked.append(Looked(tile, first, mirrored))
    return looked


def score(tiles: list[Scored], rule: DecisionRule) -> dict[str, Any]:
    """Micro Dice/IoU over defect tiles, the mean of the classes' Dice (macro); per class Dice, IoU,
    tiles and tiles found; tile detection."""
    per_class: dict[str, PixelCounts] = {}
    images_per_class: dict[str, int] = {}
    found_per_class: dict[str, int] = {}
    flagged, actual = [], []
    for tile in tiles:
        seg = segment(tile.probability, rule, tile.tile_score)
        flagged.append(seg.has_defect)
        actual.append(tile.record.has_defect)
        if tile.record.has_defect:
            cls = tile.record.cls
            per_class[cls] = per_class.get(cls, PixelCounts()) + pixel_counts(seg.mask, tile.truth)
            images_per_class[cls] = images_per_class.get(cls, 0) + 1
            found_per_class[cls] = found_per_class.get(cls, 0) + seg.has_defect
    total = sum(per_class.values(), PixelCounts())
    detection = detection_scores(np.array(flagged), np.array(actual))
    return {
        "dice": total.dice,
        # Each defect class's Dice weighs the same: micro Dice is mostly the big defects' pixels.
        "macro_dice": float(np.mean([c.dice for c in per_class.values()])) if per_class else 1.0,
        "iou": total.iou,
        "false_alarm_rate": detection.false_alarm_rate,
        "precision": detection.precision,
        "recall": detection.recall,
        "looked_again": sum(t.views > 1 for t in tiles) / len(tiles),  # the second look's share
        "per_class": {
            cls: {
                "dice": c.dice,
                "iou": c.iou,
                "images": images_per_class[cls],
                "found": found_per_class[cls],
                "recall": found_per_class[cls] / images_per_class[cls],
            }
            for cls, c in sorted(per_class.items())
        },
        "images": {"defect": int(sum(actual)), "free": int(len(actual) - sum(actual))},
    }


def tile_ranking(tiles: list[Scored]) -> dict[str, float] | None:
    """ROC AUC and average precision of the tile score (None for a model without one)."""
    if any(t.tile_score is None for t in tiles):
        return None
    curve = tile_curve(
        np.array([t.tile_score for t in tiles]), np.array([t.record.has_defect for t in tiles])
    )
    return {"roc_auc": curve.roc_auc, "average_precision": curve.average_precision}


# The public reference (iterative.ai, "End-to-End Computer Vision API", a U-Net on the same dataset) scores
# the five defect classes only, on a 224x224 centre crop, with one Dice pooled over all their pixels.
REFERENCE_CROP = 224


def reference_protocol(tiles: list[Scored], rule: DecisionRule) -> dict[str, Any]:
    """Dice under the public reference's protocol, so the number can be set beside its published one.

    Our prediction is made on the whole tile at native resolution (as served); only the scoring is
    restricted to the centre crop of prediction and truth (smaller sides are kept whole).
    """
    counts = PixelCounts()
    defect_tiles = [t for t in tiles if t.record.cls != FREE_CLASS]
    for tile in defect_tiles:
        mask = segment(tile.probability, rule, tile.tile_score).mask
        counts += pixel_counts(_centre_crop(mask), _centre_crop(tile.truth))
    return {"dice": counts.dice, "crop": REFERENCE_CROP, "images": len(defect_tiles)}


def _centre_crop(a: np.ndarray) -> np.ndarray:
    y, x = (max(0, (side - REFERENCE_CROP) // 2) for side in a.shape)
    return a[y : y + REFERENCE_CROP, x : x + REFERENCE_CROP]
