"""Stage ``evaluate``: calibrate the decision rule on val, score test, seal the served model.

Every number comes from ``shared``'s :class:`Predictor` and :func:`segment` on the exported ONNX
file at each image's native resolution, i.e. from the code the service runs. The threshold and
region filters (minimum area, minimum peak probability) are chosen on val (best val Dice among
rules whose val false-alarm rate is within ``max_false_alarm_rate``); test is only scored. The
chosen rule and the test metrics are stamped into ``models/tilescan.onnx``, the file the service
loads.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from tilescan_shared.image import read_gray
from tilescan_shared.masks import DecisionRule, segment
from tilescan_shared.metrics import PixelCounts, detection_scores, pixel_counts
from tilescan_shared.model_info import read_info, stamp
from tilescan_shared.predictor import Predictor
from tilescan_training import plots
from tilescan_training.manifest import FREE_CLASS, Record, read_records, read_split, records_in
from tilescan_training.params import EvaluateParams, load_params


@dataclass
class Scored:
    """One tile with its truth and the model's probability map."""

    record: Record
    image: np.ndarray
    truth: np.ndarray
    probability: np.ndarray


def predict_all(predictor: Predictor, records: list[Record], data_dir: Path) -> list[Scored]:
    return [
        Scored(
            r,
            image := read_gray(data_dir / r.image),
            read_gray(data_dir / r.mask),
            predictor.predict(image),
        )
        for r in records
    ]


def score(tiles: list[Scored], rule: DecisionRule) -> dict[str, Any]:
    """Micro Dice/IoU over defect tiles, per-class Dice/IoU, image-level detection scores."""
    per_class: dict[str, PixelCounts] = {}
    images_per_class: dict[str, int] = {}
    flagged, actual = [], []
    for tile in tiles:
        seg = segment(tile.probability, rule)
        flagged.append(seg.has_defect)
        actual.append(tile.record.has_defect)
        if tile.record.has_defect:
            cls = tile.record.cls
            per_class[cls] = per_class.get(cls, PixelCounts()) + pixel_counts(seg.mask, tile.truth)
            images_per_class[cls] = images_per_class.get(cls, 0) + 1
    total = sum(per_class.values(), PixelCounts())
    detection = detection_scores(np.array(flagged), np.array(actual))
    return {
        "dice": total.dice,
        "iou": total.iou,
        "false_alarm_rate": detection.false_alarm_rate,
        "precision": detection.precision,
        "recall": detection.recall,
        "per_class": {
            cls: {"dice": c.dice, "iou": c.iou, "images": images_per_class[cls]}
            for cls, c in sorted(per_class.items())
        },
        "images": {"defect": int(sum(actual)), "free": int(len(actual) - sum(actual))},
    }


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
        mask = segment(tile.probability, rule).mask
        counts += pixel_counts(_centre_crop(mask), _centre_crop(tile.truth))
    return {"dice": counts.dice, "crop": REFERENCE_CROP, "images": len(defect_tiles)}


def _centre_crop(a: np.ndarray) -> np.ndarray:
    y, x = (max(0, (side - REFERENCE_CROP) // 2) for side in a.shape)
    return a[y : y + REFERENCE_CROP, x : x + REFERENCE_CROP]


def choose_rule(val: list[Scored], params: EvaluateParams) -> tuple[DecisionRule, dict[str, Any]]:
    """Best val Dice among rules within the false-alarm budget; if none is, the fewest false alarms."""
    candidates = [
        (rule, score(val, rule))
        for rule in (
            DecisionRule(threshold=t, min_region_area=a, min_region_peak=p)
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
    candidate: Path,
    data_dir: Path,
    split_csv: Path,
    params: EvaluateParams,
    out_dir: Path,
    model_out: Path,
    live_plots: Path | None = None,
) -> dict[str, Any]:
    predictor = Predictor(candidate)
    records = read_records(data_dir / "manifest.csv")
    entries = read_split(split_csv)
    val = predict_all(predictor, records_in("val", records, entries), data_dir)
    test = predict_all(predictor, records_in("test", records, entries), data_dir)

    rule, val_scores = choose_rule(val, params)
    metrics = score(test, rule)
    metrics["rule"] = asdict(rule)
    metrics["val"] = {k: val_scores[k] for k in ("dice", "iou", "false_alarm_rate")}
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
    if live_plots is not None:
        plots.training_curves(live_plots, out_dir / "plots" / "training_curves.png")
    for tile in _examples(test, params.examples):
        seg = segment(tile.probability, rule)
        name = tile.record.id.replace("/", "_")
        plots.example_panel(
            tile.image, tile.truth, seg.mask, tile.record.id, out_dir / "examples" / f"{name}.png"
        )

    seal(candidate, model_out, rule, metrics)
    return metrics


def seal(candidate: Path, model_out: Path, rule: DecisionRule, metrics: dict[str, Any]) -> None:
    """Write the served model: the candidate graph, unchanged, with the calibrated rule and metrics."""
    model = onnx.load(str(candidate))
    shipped = {k: metrics[k] for k in ("dice", "iou", "false_alarm_rate", "precision", "recall", "per_class")}
    stamp(model, replace(read_info(model), rule=rule, metrics=shipped))
    model_out.parent.mkdir(parents=True, exist_ok=True)
    tmp = model_out.with_suffix(".tmp")
    onnx.save(model, str(tmp))
    shutil.move(tmp, model_out)


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
    parser.add_argument("--candidate", default="models/candidate.onnx", type=Path)
    parser.add_argument("--data", default="data/ingested", type=Path)
    parser.add_argument("--split", default="data/split.csv", type=Path)
    parser.add_argument("--live-plots", default="dvclive/plots/metrics", type=Path)
    parser.add_argument("--out", default="evaluation", type=Path)
    parser.add_argument("--model", default="models/tilescan.onnx", type=Path)
    args = parser.parse_args()
    metrics = evaluate(
        args.candidate,
        args.data,
        args.split,
        load_params(args.params).evaluate,
        args.out,
        args.model,
        args.live_plots,
    )
    print(json.dumps({k: v for k, v in metrics.items() if k != "per_class"}, indent=2))


if __name__ == "__main__":
    main()
