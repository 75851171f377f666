"""The decision rule, chosen on val: for a model with a tile score, first the tile threshold (the highest
tile recall whose val false-alarm rate is within the budget), then the pixel rule under it (threshold and
region filters: best val Dice over defect tiles); for a model without one, the pixel rule alone."""

from __future__ import annotations

from typing import Any

import numpy as np

from tilescan_shared.masks import DecisionRule
from tilescan_training.params import EvaluateParams
from tilescan_training.scoring import Scored, score


def choose_tile_threshold(val: list[Scored], max_false_alarm_rate: float) -> float:
    """The tile threshold with the highest val tile recall whose val false-alarm rate is in the budget.

    Any threshold between the highest defect-free score that must be rejected and the lowest defect
    score above it gives the same val numbers; the midpoint (in logits, where sigmoid scores near 1
    are spread out) leaves the most room on either side for unseen tiles.
    """
    free = np.sort([t.tile_score for t in val if not t.record.has_defect])[::-1]
    defect = np.array([t.tile_score for t in val if t.record.has_defect])
    allowed = int(np.floor(max_false_alarm_rate * len(free) + 1e-9))
    if allowed >= len(free):
        return float(min(defect.min(), free.min()))
    rejected = free[allowed]
    above = defect[defect > rejected]
    if not len(above):
        return float(np.nextafter(rejected, np.inf))
    return float(_sigmoid((_logit(rejected) + _logit(above.min())) / 2))


def _logit(p: float) -> float:
    p = float(np.clip(p, 1e-7, 1 - 1e-7))
    return float(np.log(p / (1 - p)))


def _sigmoid(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


def choose_rule(val: list[Scored], params: EvaluateParams) -> tuple[DecisionRule, dict[str, Any]]:
    """The tile threshold (models with a tile score), then the pixel rule with the best val Dice.

    Without a tile score the pixel rule decides alone: the best val Dice among rules within the
    false-alarm budget, or, if none is, the fewest false alarms.
    """
    has_tile_score = all(t.tile_score is not None for t in val)
    tile_threshold = choose_tile_threshold(val, params.max_false_alarm_rate) if has_tile_score else None
    candidates = [
        (rule, score(val, rule))
        for rule in (
            DecisionRule(threshold=t, min_region_area=a, min_region_peak=p, tile_threshold=tile_threshold)
            for t in params.thresholds
            for a in params.min_region_areas
            for p in params.min_region_peaks
            # a peak at or below the threshold changes nothing: that rule is already in the grid as p = 0
            if p == 0 or p > t
        )
    ]
    within = [c for c in candidates if c[1]["false_alarm_rate"] <= params.max_false_alarm_rate]
    if within:
        return max(within, key=lambda c: (c[1]["dice"], -c[1]["false_alarm_rate"]))
    return min(candidates, key=lambda c: (c[1]["false_alarm_rate"], -c[1]["dice"]))
