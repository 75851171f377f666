"""Segmentation and detection metrics, numpy only.

Functional style: first the confusion counts, then named scores. An empty prediction of an empty
truth scores 1 (nothing to find, nothing reported).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PixelCounts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: PixelCounts) -> PixelCounts:
        return PixelCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def dice(self) -> float:
        return float(dice(self.tp, self.fp, self.fn))

    @property
    def iou(self) -> float:
        denom = self.tp + self.fp + self.fn
        return 1.0 if denom == 0 else self.tp / denom


def dice(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Dice of confusion counts, element-wise over arrays of them (a bootstrap's resamples at once)."""
    tp, fp, fn = (np.asarray(c, dtype=np.float64) for c in (tp, fp, fn))
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 1.0)


def pixel_counts(pred: np.ndarray, truth: np.ndarray) -> PixelCounts:
    """Confusion counts of two same-shaped binary masks (anything > 0 is positive)."""
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and truth {truth.shape} differ in shape")
    p = pred > 0
    t = truth > 0
    tp = int(np.count_nonzero(p & t))
    return PixelCounts(tp=tp, fp=int(np.count_nonzero(p)) - tp, fn=int(np.count_nonzero(t)) - tp)


@dataclass(frozen=True)
class DetectionScores:
    """Image-level scores: does the tile have a defect at all?"""

    precision: float
    recall: float
    false_alarm_rate: float


def detection_scores(predicted: np.ndarray, actual: np.ndarray) -> DetectionScores:
    """Image-level precision, recall and false-alarm rate from two boolean vectors (one entry a tile).

    ``false_alarm_rate`` is the share of defect-free tiles reported as defective. Undefined ratios
    (no positive prediction, no defective or no defect-free tile) are reported as 0.
    """
    predicted = np.asarray(predicted, dtype=bool)
    actual = np.asarray(actual, dtype=bool)
    tp = int(np.count_nonzero(predicted & actual))
    fp = int(np.count_nonzero(predicted & ~actual))
    fn = int(np.count_nonzero(~predicted & actual))
    negatives = int(np.count_nonzero(~actual))
    return DetectionScores(
        precision=tp / (tp + fp) if tp + fp else 0.0,
        recall=tp / (tp + fn) if tp + fn else 0.0,
        false_alarm_rate=fp / negatives if negatives else 0.0,
    )


@dataclass(frozen=True)
class TileCurve:
    """How a tile score ranks tiles: the precision-recall curve (one point per distinct score, highest
    first) with its average precision, and the ROC AUC."""

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    average_precision: float
    roc_auc: float


def tile_curve(scores: np.ndarray, actual: np.ndarray) -> TileCurve:
    """Rank tiles by ``scores`` (higher = more likely a defect) against the boolean ``actual``.

    Average precision is the step-wise sum over recall (as scikit-learn computes it); ROC AUC is
    the trapezoid under the ROC curve, ties counted half. Both need defect and defect-free tiles.
    """
    scores, actual = np.asarray(scores, dtype=float), np.asarray(actual, dtype=bool)
    if actual.all() or not actual.any():
        raise ValueError("tile_curve needs both defect and defect-free tiles")
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], actual[order]
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # last index of each distinct score
    tps = np.cumsum(hits)[last]
    fps = last + 1 - tps
    precision, recall = tps / (tps + fps), tps / tps[-1]
    average_precision = float(np.sum(np.diff(recall, prepend=0.0) * precision))
    fpr = np.r_[0.0, fps / fps[-1]]
    tpr = np.r_[0.0, recall]
    roc_auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    return TileCurve(ranked[last], precision, recall, average_precision, roc_auc)
