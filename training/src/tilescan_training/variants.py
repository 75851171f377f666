"""Reduced precisions of one model, judged against its own fp32 answers on the same tiles.

A variant (:class:`~tilescan_shared.runtimes.Variant`) passes when, on every split it is scored on,
under the fp32 model's decision rule, its Dice is within ``promote.min_improvement`` of fp32's, it
flags no more defect-free tiles and finds no fewer defect tiles. The evaluate stage lists the variants
that pass in the candidate's metadata (the service may run only those), and ``make gate`` scores the
listed ones again, so no hand-edited list reaches the service.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tilescan_shared.masks import DecisionRule, segment
from tilescan_shared.predictor import CPU, Predictor, Variant
from tilescan_shared.runtimes import REDUCED, unavailable
from tilescan_training.scoring import Scored, Tile, predict_all, score

COMPARED = ("dice", "iou", "false_alarm_rate", "recall")


def judge(fp32: dict[str, Any], other: dict[str, Any], dice_tolerance: float) -> list[str]:
    """What ``other``'s scores lost against ``fp32``'s on one split; empty when nothing was."""
    lost = []
    if other["dice"] < fp32["dice"] - dice_tolerance:
        lost.append(f"Dice {other['dice']:.4f} < fp32 {fp32['dice']:.4f} - {dice_tolerance}")
    if other["false_alarm_rate"] > fp32["false_alarm_rate"]:
        lost.append(f"false alarms {other['false_alarm_rate']:.4f} > fp32 {fp32['false_alarm_rate']:.4f}")
    if other["recall"] < fp32["recall"]:
        lost.append(f"tile recall {other['recall']:.4f} < fp32 {fp32['recall']:.4f}")
    return lost


def disagreement(fp32: list[Scored], other: list[Scored], rule: DecisionRule) -> dict[str, float]:
    """Share of pixels whose mask differs from fp32's, and the largest probability change."""
    differing = pixels = 0
    largest = 0.0
    for a, b in zip(fp32, other, strict=True):
        mask_a = segment(a.probability, rule, a.tile_score).mask
        mask_b = segment(b.probability, rule, b.tile_score).mask
        differing += int(np.count_nonzero(mask_a != mask_b))
        pixels += mask_a.size
        largest = max(largest, float(np.abs(a.probability - b.probability).max()))
    return {"mask_disagreement": differing / pixels, "max_probability_change": largest}


def score_variant(
    predictor: Predictor,
    fp32: dict[str, list[Scored]],
    tiles: dict[str, list[Tile]],
    rule: DecisionRule,
    dice_tolerance: float,
) -> dict[str, Any]:
    """``predictor``'s scores and its disagreement with fp32 on each split of ``tiles``, and the
    verdict: ``passed`` and, when not, ``why``."""
    report: dict[str, Any] = {}
    lost: list[str] = []
    for split, split_tiles in tiles.items():
        scored = predict_all(predictor, split_tiles, rule)
        mine, theirs = score(scored, rule), score(fp32[split], rule)
        report[split] = {name: mine[name] for name in COMPARED} | disagreement(fp32[split], scored, rule)
        lost += [f"{split}: {reason}" for reason in judge(theirs, mine, dice_tolerance)]
    report["passed"] = not lost
    if lost:
        report["why"] = "; ".join(lost)
    return report


def score_variants(
    model: Path,
    fp32: dict[str, list[Scored]],
    tiles: dict[str, list[Tile]],
    rule: DecisionRule,
    dice_tolerance: float,
    variants: tuple[Variant, ...] = REDUCED,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, Any]]:
    """Each of ``variants`` of ``model`` that can run on this machine, scored and judged; the others
    are reported with ``passed`` False and the reason they could not run."""
    reports: dict[str, dict[str, Any]] = {}
    for variant in variants:
        reason = unavailable(variant, model, [CPU])
        if reason is not None:
            reports[variant] = {"passed": False, "why": f"not scored here: {reason}"}
        else:
            predictor = Predictor(model, providers=[CPU], variant=variant)
            reports[variant] = score_variant(predictor, fp32, tiles, rule, dice_tolerance)
        log(f"{variant}: {'passed' if reports[variant]['passed'] else 'rejected'} {reports[variant]}")
    return reports
