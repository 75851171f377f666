"""Which int8 calibration to use: each method's int8 model against fp32 on val, under fp32's rule.

    .venv/bin/python training/benchmarks/int8_calibration.py [--model models/exported.onnx]
        [--rule-from models/candidate.onnx] [--keep-fp32 Sigmoid ...]

For every calibration method of :mod:`tilescan_training.quantization` (``params.yaml``'s tile count),
prints val Dice, false alarms, tile recall, the share of mask pixels that differ from fp32 and the
largest probability change. ``export.int8.calibration`` takes the best one; test is never looked at.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

from tilescan_shared.image import read_gray
from tilescan_shared.predictor import CPU, Predictor, Variant
from tilescan_training.manifest import read_records, read_split, records_in
from tilescan_training.params.export import ExportParams
from tilescan_training.params.loading import load_section
from tilescan_training.quantization import METHODS, calibration_records, quantize_int8
from tilescan_training.scoring import load_tiles, predict_all, score
from tilescan_training.variants import COMPARED, disagreement


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models/exported.onnx", type=Path)
    parser.add_argument(
        "--rule-from", default="models/candidate.onnx", type=Path, help="model with the val rule"
    )
    parser.add_argument("--data", default="data/ingested", type=Path)
    parser.add_argument("--split", default="data/split.csv", type=Path)
    parser.add_argument("--keep-fp32", nargs="*", default=None, help="op types to leave in fp32")
    args = parser.parse_args()
    params = load_section("params.yaml", "export", ExportParams).int8
    if args.keep_fp32 is not None:
        params = replace(params, keep_fp32=tuple(args.keep_fp32))
    records, entries = read_records(args.data / "manifest.csv"), read_split(args.split)
    calibration = calibration_records(records_in("train", records, entries), params.calibration_tiles)
    images = [read_gray(args.data / r.image) for r in calibration]
    val = load_tiles(records_in("val", records, entries), args.data)
    rule = Predictor(args.rule_from, providers=[CPU]).info.rule
    fp32 = predict_all(Predictor(args.model, providers=[CPU]), val)
    reference = score(fp32, rule)
    print(
        f"val, {len(val)} tiles; rule {rule}; {len(images)} calibration tiles; keep fp32: {params.keep_fp32}"
    )
    print(
        "| calibration | " + " | ".join(COMPARED) + " | mask pixels differing | largest probability change |"
    )
    print("| --- |" + " ---: |" * (len(COMPARED) + 2))
    print("| fp32 | " + " | ".join(f"{reference[name]:.4f}" for name in COMPARED) + " | 0 | 0 |")
    with tempfile.TemporaryDirectory() as tmp:
        for method in METHODS:
            int8_path = Path(tmp) / "model.int8.onnx"
            quantize_int8(args.model, int8_path, images, replace(params, calibration=method))
            fp32_copy = Path(tmp) / "model.onnx"
            fp32_copy.write_bytes(args.model.read_bytes())
            scored = predict_all(Predictor(fp32_copy, providers=[CPU], variant=Variant.INT8), val)
            mine, change = score(scored, rule), disagreement(fp32, scored, rule)
            print(
                f"| {method} | "
                + " | ".join(f"{mine[name]:.4f}" for name in COMPARED)
                + f" | {change['mask_disagreement']:.5f} | {change['max_probability_change']:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
