"""Stage ``evaluate``: calibrate the decision rule on val, score test, seal the candidate model.

Every number comes from ``shared``'s :class:`Predictor` and :func:`segment` on the exported ONNX
file at each image's native resolution, i.e. from the code the service runs. The rule is chosen on
val: for a model with a tile score, first the tile threshold (the highest tile recall whose val
false-alarm rate is within ``max_false_alarm_rate``), then the pixel rule under it (threshold and
region filters: best val Dice over defect tiles); for a model without one, the pixel rule alone
(best val Dice among rules within the false-alarm budget). Test is only scored. The chosen rule and
the test metrics are stamped into ``models/candidate.onnx``; ``make promote`` gates it against the
served model before it replaces ``models/tilescan.onnx``.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from tilescan_shared.masks import DecisionRule, segment
from tilescan_shared.metrics import PixelCounts, pixel_counts, tile_curve
from tilescan_shared.model_info import read_info, stamp
from tilescan_shared.predictor import Predictor
from tilescan_training import plots
from tilescan_training.manifest import FREE_CLASS, read_records, read_split, records_in
from tilescan_training.params import EvaluateParams, load_params
from tilescan_training.scoring import Scored, load_tiles, predict_all, score, tile_ranking

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


def evaluate(
    exported: Path,
    data_dir: Path,
    split_csv: Path,
    params: EvaluateParams,
    out_dir: Path,
    candidate: Path,
    live_plots: Path | None = None,
) -> dict[str, Any]:
    predictor = Predictor(exported)
    records = read_records(data_dir / "manifest.csv")
    entries = read_split(split_csv)
    val = predict_all(predictor, load_tiles(records_in("val", records, entries), data_dir))
    test = predict_all(predictor, load_tiles(records_in("test", records, entries), data_dir))

    rule, val_scores = choose_rule(val, params)
    metrics = score(test, rule)
    ranking = tile_ranking(test)
    if ranking is not None:
        metrics["tile"] = ranking
    metrics["rule"] = asdict(rule)
    metrics["val"] = {k: val_scores[k] for k in ("dice", "iou", "false_alarm_rate", "recall")}
    if ranking is not None:
        metrics["val"]["tile"] = tile_ranking(val)
    metrics["reference_protocol"] = reference_protocol(test, rule)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    curve = [
        {
            "threshold": t,
            "val_dice": (v := score(val, replace(rule, threshold=t)))["dice"],
            "val_false_alarm_rate": v["false_alarm_rate"],
            "test_dice": score(test, replace(rule, threshold=t))["dice"],
        }
        for t in params.thresholds
    ]
    _write_csv(out_dir / "plots" / "threshold.csv", curve)
    plots.threshold_curve(curve, rule.threshold, out_dir / "plots" / "dice_vs_threshold.png")
    if ranking is not None:
        _write_tile_pr(test, rule, out_dir / "plots")
    if live_plots is not None:
        plots.training_curves(live_plots, out_dir / "plots" / "training_curves.png")
    for tile in _examples(test, params.examples):
        seg = segment(tile.probability, rule, tile.tile_score)
        name = tile.record.id.replace("/", "_")
        plots.example_panel(
            tile.image, tile.truth, seg.mask, tile.record.id, out_dir / "examples" / f"{name}.png"
        )

    seal(exported, candidate, rule, metrics)
    return metrics


def seal(exported: Path, model_out: Path, rule: DecisionRule, metrics: dict[str, Any]) -> None:
    """Write the candidate model: the exported graph, unchanged, with the calibrated rule and metrics."""
    model = onnx.load(str(exported))
    keys = ("dice", "iou", "false_alarm_rate", "precision", "recall", "per_class", "tile")
    shipped = {k: metrics[k] for k in keys if k in metrics}
    stamp(model, replace(read_info(model), rule=rule, metrics=shipped))
    model_out.parent.mkdir(parents=True, exist_ok=True)
    tmp = model_out.with_suffix(".tmp")
    onnx.save(model, str(tmp))
    shutil.move(tmp, model_out)


def _write_tile_pr(test: list[Scored], rule: DecisionRule, plots_dir: Path) -> None:
    """The test precision-recall curve of the tile score, as CSV (for ``dvc plots``) and PNG."""
    curve = tile_curve(np.array([t.tile_score for t in test]), np.array([t.record.has_defect for t in test]))
    rows = [
        {"tile_threshold": float(t), "precision": float(p), "recall": float(r)}
        for t, p, r in zip(curve.thresholds, curve.precision, curve.recall, strict=True)
    ]
    _write_csv(plots_dir / "tile_pr.csv", rows)
    chosen = score(test, rule)
    plots.tile_pr_curve(curve, (chosen["recall"], chosen["precision"]), plots_dir / "tile_pr.png")


def _examples(tiles: list[Scored], count: int) -> list[Scored]:
    """Round-robin over classes (defect classes first) so every class shows up in the report."""
    by_class: dict[str, list[Scored]] = {}
    for tile in sorted(tiles, key=lambda t: (t.record.cls == FREE_CLASS, t.record.id)):
        by_class.setdefault(tile.record.cls, []).append(tile)
    picked: list[Scored] = []
    while len(picked) < count and any(by_class.values()):
        for queue in by_class.values():
            if queue and len(picked) < count:
                picked.append(queue.pop(0))
    return picked


def _write_csv(path: Path, rows: list[dict[str, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--exported", default="models/exported.onnx", type=Path)
    parser.add_argument("--data", default="data/ingested", type=Path)
    parser.add_argument("--split", default="data/split.csv", type=Path)
    parser.add_argument("--live-plots", default="dvclive/plots/metrics", type=Path)
    parser.add_argument("--out", default="evaluation", type=Path)
    parser.add_argument("--candidate", default="models/candidate.onnx", type=Path)
    args = parser.parse_args()
    metrics = evaluate(
        args.exported,
        args.data,
        args.split,
        load_params(args.params).evaluate,
        args.out,
        args.candidate,
        args.live_plots,
    )
    print(json.dumps({k: v for k, v in metrics.items() if k != "per_class"}, indent=2))


if __name__ == "__main__":
    main()
