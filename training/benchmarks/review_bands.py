"""The second look on val: each review band against none, at each false-alarm budget (test never seen).

    .venv/bin/python training/benchmarks/review_bands.py [--model models/exported.onnx]
        [--budgets 0.05 0.02] [--bands 0.05 0.95 0.001 0.999 ...] [--thresholds 0.005 0.05 ...]

Runs every val tile and its three mirrored views once, then for each budget prints, for no second look
and each band (``params.yaml``'s ``evaluate.review_bands`` unless ``--bands`` gives pairs), the tile
threshold, val tile recall, false alarms, Dice and the share of tiles looked at again, each under its
own pixel rule, as ``evaluate`` chooses them (:func:`tilescan_training.calibration.review_options`).
``--thresholds`` searches the pixel rule with each of those pixel thresholds alone (its best region
filters), one row each, instead of ``evaluate.thresholds`` all together.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from tilescan_shared.predictor import CPU, Predictor
from tilescan_training.calibration import describe, review_options
from tilescan_training.manifest import read_records, read_split, records_in
from tilescan_training.params.evaluate import EvaluateParams
from tilescan_training.params.loading import load_section
from tilescan_training.scoring import load_tiles, look_all


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models/exported.onnx", type=Path)
    parser.add_argument("--data", default="data/ingested", type=Path)
    parser.add_argument("--split", default="data/split.csv", type=Path)
    parser.add_argument("--budgets", nargs="+", type=float, default=None, help="false-alarm budgets")
    parser.add_argument("--bands", nargs="+", type=float, default=None, help="low high [low high ...]")
    parser.add_argument("--thresholds", nargs="+", type=float, default=None, help="each one alone")
    args = parser.parse_args()
    params = load_section("params.yaml", "evaluate", EvaluateParams)
    if args.bands:
        params = replace(params, review_bands=tuple(zip(args.bands[::2], args.bands[1::2], strict=True)))
    records, entries = read_records(args.data / "manifest.csv"), read_split(args.split)
    val = look_all(
        Predictor(args.model, providers=[CPU]), load_tiles(records_in("val", records, entries), args.data)
    )
    print(
        "| budget | review band | tile threshold | pixel rule (threshold / area / peak) | tile recall "
        "| false alarms | Dice | Dice per class | looked again |"
    )
    print("| ---: | --- | ---: | --- | ---: | ---: | ---: | --- | ---: |")
    grids = [(t,) for t in args.thresholds] if args.thresholds else [params.thresholds]
    for budget, thresholds in ((b, g) for b in args.budgets or [params.max_false_alarm_rate] for g in grids):
        searched = replace(params, max_false_alarm_rate=budget, thresholds=thresholds)
        for option in review_options(val, searched):
            row, per_class = describe(option), option.scores["per_class"]
            classes = " ".join(f"{c} {v['dice']:.3f}" for c, v in per_class.items())
            print(
                f"| {budget:.0%} | {row['review_band']} | {row['tile_threshold']:.3f} "
                f"| {row['threshold']} / {row['min_region_area']} / {row['min_region_peak']} "
                f"| {row['recall']:.3f} | {row['false_alarm_rate']:.3f} | {row['dice']:.4f} "
                f"| {classes} | {row['looked_again']:.0%} |"
            )


if __name__ == "__main__":
    main()
