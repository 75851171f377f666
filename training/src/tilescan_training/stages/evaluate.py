"""Stage ``evaluate``: choose the decision rule on val (:mod:`tilescan_training.calibration`), score
test (and the plant's test split, when there are plant tiles), judge the reduced precisions against
fp32 (:mod:`tilescan_training.variants`), write the metrics, plots (and ``rule_options.csv``: every
rule tried on val, the chosen one marked) and example panels, and seal the candidate model.

Every number comes from ``shared``'s :class:`Predictor` and :func:`segment` on the exported ONNX
file at each image's native resolution, i.e. from the code the service runs. Test is only scored. The
chosen rule, the test metrics and the variants that passed are stamped into ``models/candidate.onnx``
(and its int8 sibling ``models/candidate.int8.onnx``); ``make promote`` gates it against the served
model before it replaces ``models/tilescan.onnx``.
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

from tilescan_shared import drift
from tilescan_shared.masks import DecisionRule, segment
from tilescan_shared.metrics import tile_curve
from tilescan_shared.model_info import read_info, stamp
from tilescan_shared.predictor import Predictor, Variant
from tilescan_shared.runtimes import variant_path
from tilescan_training import plots
from tilescan_training.calibration import Option, choose_rule, describe
from tilescan_training.manifest import FREE_CLASS, read_records, read_split, records_in
from tilescan_training.params.evaluate import EvaluateParams
from tilescan_training.params.loading import load_section
from tilescan_training.params.promote import PromoteParams
from tilescan_training.scoring import (
    Scored,
    load_tiles,
    look_all,
    predict_all,
    reference_protocol,
    score,
    tile_ranking,
)
from tilescan_training.variants import score_variants


def evaluate(
    exported: Path,
    data_dir: Path,
    split_csv: Path,
    params: EvaluateParams,
    out_dir: Path,
    candidate: Path,
    dice_tolerance: float,
    live_plots: Path | None = None,
) -> dict[str, Any]:
    """Everything above; ``dice_tolerance`` is how much Dice a reduced precision may lose."""
    predictor = Predictor(exported)
    records = read_records(data_dir / "manifest.csv")
    entries = read_split(split_csv)
    tiles = {split: load_tiles(records_in(split, records, entries), data_dir) for split in ("val", "test")}

    chosen, options = choose_rule(look_all(predictor, tiles["val"]), params, dice_tolerance)
    rule, val_scores, val = chosen.rule, chosen.scores, chosen.answers
    test = predict_all(predictor, tiles["test"], rule)
    fp32 = {"val": val, "test": test}
    metrics = measure(val, test, rule, val_scores)
    if plant := records_in("plant_test", records, entries):
        # The plant's own test tiles, beside the public test split the gate compares models on.
        metrics["plant_test"] = score(predict_all(predictor, load_tiles(plant, data_dir), rule), rule)
    metrics["variants"] = score_variants(exported, fp32, tiles, rule, dice_tolerance)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_plots(out_dir / "plots", val, test, rule, params.thresholds, live_plots)
    write_options(out_dir / "plots" / "rule_options.csv", options, chosen)
    write_examples(out_dir / "examples", test, rule, params.examples)
    scores = [t.tile_score for t in val if t.tile_score is not None]
    seal(exported, candidate, rule, metrics, drift.reference({"tile_score": scores}) if scores else {})
    return metrics


def measure(
    val: list[Scored], test: list[Scored], rule: DecisionRule, val_scores: dict[str, Any]
) -> dict[str, Any]:
    """``metrics.json``: test under ``rule`` (tile ranking, per class, the reference protocol), val beside."""
    metrics = score(test, rule)
    ranking = tile_ranking(test)
    if ranking is not None:
        metrics["tile"] = ranking
    metrics["rule"] = asdict(rule)
    metrics["val"] = {k: val_scores[k] for k in ("dice", "iou", "false_alarm_rate", "recall", "looked_again")}
    if ranking is not None:
        metrics["val"]["tile"] = tile_ranking(val)
    metrics["reference_protocol"] = reference_protocol(test, rule)
    return metrics


def write_plots(
    plots_dir: Path,
    val: list[Scored],
    test: list[Scored],
    rule: DecisionRule,
    thresholds: list[float],
    live_plots: Path | None,
) -> None:
    """Dice against the pixel threshold, the tile score's precision-recall, the training curves."""
    curve = [
        {
            "threshold": t,
            "val_dice": (v := score(val, replace(rule, threshold=t)))["dice"],
            "val_false_alarm_rate": v["false_alarm_rate"],
            "test_dice": score(test, replace(rule, threshold=t))["dice"],
        }
        for t in thresholds
    ]
    _write_csv(plots_dir / "threshold.csv", curve)
    plots.threshold_curve(curve, rule.threshold, plots_dir / "dice_vs_threshold.png")
    if all(t.tile_score is not None for t in test):
        _write_tile_pr(test, rule, plots_dir)
    if live_plots is not None:
        plots.training_curves(live_plots, plots_dir / "training_curves.png")


def write_options(path: Path, options: list[Option], chosen: Option) -> None:
    """What each way of deciding tried on val does there, the chosen one marked (the report's table)."""
    _write_csv(path, [describe(o) | {"chosen": o is chosen} for o in options])


def write_examples(examples_dir: Path, test: list[Scored], rule: DecisionRule, count: int) -> None:
    """``image | truth | prediction`` panels of ``count`` test tiles, every class in turn."""
    for tile in _examples(test, count):
        seg = segment(tile.probability, rule, tile.tile_score)
        name = tile.record.id.replace("/", "_")
        plots.example_panel(tile.image, tile.truth, seg.mask, tile.record.id, examples_dir / f"{name}.png")


def seal(
    exported: Path,
    model_out: Path,
    rule: DecisionRule,
    metrics: dict[str, Any],
    score_reference: dict[str, list[int]],
) -> None:
    """Write the candidate model and its int8 sibling: the exported graphs, unchanged, with the
    calibrated rule, the metrics, the variants that passed and val's tile scores beside the
    export's drift reference."""
    keys = ("dice", "iou", "false_alarm_rate", "precision", "recall", "per_class", "tile")
    shipped = {k: metrics[k] for k in keys if k in metrics}
    passed = {name: report for name, report in metrics["variants"].items() if report["passed"]}
    info = read_info(onnx.load(str(exported)))
    info = replace(
        info, rule=rule, metrics=shipped, variants=passed, reference=info.reference | score_reference
    )
    for variant in (Variant.INT8, Variant.FP32):  # the sibling first: a service watches the main file
        model = onnx.load(str(variant_path(exported, variant)))
        stamp(model, info)
        out = variant_path(model_out, variant)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        onnx.save(model, str(tmp))
        shutil.move(tmp, out)


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


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
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
        load_section(args.params, "evaluate", EvaluateParams),
        args.out,
        args.candidate,
        load_section(args.params, "promote", PromoteParams).min_improvement,
        args.live_plots,
    )
    print(json.dumps({k: v for k, v in metrics.items() if k != "per_class"}, indent=2))


if __name__ == "__main__":
    main()
