"""``params.yaml``'s ``evaluate:``: how the decision rule is searched on val (the evaluate stage)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EvaluateParams:
    thresholds: tuple[float, ...]
    min_region_areas: tuple[int, ...]
    # Hysteresis: a region is reported only if some pixel reaches this probability (0 = off).
    min_region_peaks: tuple[float, ...]
    # Threshold selection on val: best Dice among rules whose val false-alarm rate stays under this.
    max_false_alarm_rate: float
    # Among those, rules that keep every class's val Dice at or above this come first (0 = off).
    min_class_dice: float
    # Tile-score bands [low, high] tried for the second look (tilescan_shared.predictor), each against none.
    review_bands: tuple[tuple[float, float], ...]
    examples: int
