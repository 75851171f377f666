"""The decision rule, chosen on val: for a model with a tile score, first the tile threshold (the highest
tile recall whose val false-alarm rate is within the budget), then the pixel rule under it (threshold and
region filters: best val Dice over defect tiles, every class's Dice kept at a floor where a rule can); for
a model without one, the pixel rule alone.

A model with a tile score may also get a review band (the second look of
:mod:`tilescan_shared.predictor`): each band of ``evaluate.review_bands`` is tried against none, each
with its own tile threshold under the same budget and its own pixel rule (the one it would ship with:
a mean of four views wants other region filters than one view). The band that finds the most val
defect tiles wins, then the one whose pixel rule keeps the weakest class strongest (up to the floor); among
bands within ``dice_tolerance`` of the best val Dice there, the one that looks again at the fewest tiles
(a second look costs three more runs of the model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tilescan_shared.masks import DecisionRule
from tilescan_training.params.evaluate import EvaluateParams
from tilescan_training.scoring import Looked, Scored, score


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


@dataclass(frozen=True)
class Option:
    """One way to decide val's tiles: a rule, its val scores and val's answers under it."""

    rule: DecisionRule
    scores: dict[str, Any]
    answers: list[Scored]


def choose_rule(
    val: list[Looked], params: EvaluateParams, dice_tolerance: float = 0.0
) -> tuple[Option, list[Option]]:
    """The chosen option and every option it was chosen from (the module doc says how)."""
    plain = [t.answer(None) for t in val]
    if any(t.tile_score is None for t in plain):
        rule, scores = choose_pixel_rule(plain, params, None)
        only = Option(rule, scores, plain)
        return only, [only]
    options = review_options(val, params)
    recall = max(o.scores["recall"] for o in options)
    finding = [o for o in options if o.scores["recall"] == recall]
    floor = max(class_floor(o.scores, params.min_class_dice) for o in finding)
    finding = [o for o in finding if class_floor(o.scores, params.min_class_dice) == floor]
    dice = max(o.scores["dice"] for o in finding)
    best = min(
        (o for o in finding if o.scores["dice"] >= dice - dice_tolerance),
        key=lambda o: o.scores["looked_again"],
    )
    return best, options


def describe(option: Option) -> dict[str, Any]:
    """One option as a table row: its rule and what it does on val (``rule_options.csv``, the report)."""
    rule, s = option.rule, option.scores
    return {
        "review_band": "none" if rule.review is None else f"{rule.review[0]}-{rule.review[1]}",
        "tile_threshold": rule.tile_threshold,
        "threshold": rule.threshold,
        "min_region_area": rule.min_region_area,
        "min_region_peak": rule.min_region_peak,
        "recall": s["recall"],
        "false_alarm_rate": s["false_alarm_rate"],
        "dice": s["dice"],
        "weakest_class_dice": min((c["dice"] for c in s["per_class"].values()), default=1.0),
        "looked_again": s["looked_again"],
    }


def class_floor(scores: dict[str, Any], floor: float) -> float:
    """The lowest class's Dice, capped at ``floor``: every rule that keeps each class at the floor ties,
    and below it the rule whose weakest class is stronger comes first."""
    return min([floor, *(c["dice"] for c in scores["per_class"].values())])


def review_options(val: list[Looked], params: EvaluateParams) -> list[Option]:
    """No second look, then each of ``params.review_bands``: each with its own tile threshold under
    ``params.max_false_alarm_rate`` and its own pixel rule under its answers."""
    options = []
    for band in (None, *params.review_bands):
        review = None if band is None else (float(band[0]), float(band[1]))
        answers = [t.answer(DecisionRule(review=review)) for t in val]
        tile_threshold = choose_tile_threshold(answers, params.max_false_alarm_rate)
        rule, scores = choose_pixel_rule(answers, params, tile_threshold, review)
        options.append(Option(rule, scores, answers))
    return options


def choose_pixel_rule(
    val: list[Scored],
    params: EvaluateParams,
    tile_threshold: float | None,
    review: tuple[float, float] | None = None,
) -> tuple[DecisionRule, dict[str, Any]]:
    """The pixel rule with the best val Dice under the tile decision (when there is one).

    Rules that keep every class's val Dice at ``params.min_class_dice`` or above come first (where none
    does, those whose weakest class is strongest: :func:`class_floor`): micro Dice is mostly the big
    defects' pixels, and the best of it alone can give up a class of small ones (a region filter that
    drops every blowhole). Without a tile score the pixel rule decides alone: the same among rules
    within the false-alarm budget, or, if none is, the fewest false alarms.
    """
    candidates = [
        (rule, score(val, rule))
        for rule in (
            DecisionRule(t, a, p, tile_threshold, review)
            for t in params.thresholds
            for a in params.min_region_areas
            for p in params.min_region_peaks
            # a peak at or below the threshold changes nothing: that rule is already in the grid as p = 0
            if p == 0 or p > t
        )
    ]
    within = [c for c in candidates if c[1]["false_alarm_rate"] <= params.max_false_alarm_rate]
    if within:
        return max(
            within,
            key=lambda c: (
                class_floor(c[1], params.min_class_dice),
                c[1]["dice"],
                -c[1]["false_alarm_rate"],
            ),
        )
    return min(candidates, key=lambda c: (c[1]["false_alarm_rate"], -c[1]["dice"]))
