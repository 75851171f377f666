"""Stage ``export``: the trained network inside the full inference graph, as ONNX with metadata.

Writes ``models/exported.onnx`` (mask probabilities and the tile score; in its metadata the train tiles'
input statistics as the drift reference, :mod:`tilescan_shared.drift`) and its int8 sibling
``models/exported.int8.onnx`` (:mod:`tilescan_training.quantization`, calibrated on train tiles); the
evaluate stage calibrates the decision rule on val, scores every precision on val and test and stamps
the results into ``models/candidate.onnx``. The stage fails when onnxruntime and torch disagree by more
than ``export.tolerance`` on random and real images.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import onnx
import torch

from tilescan_shared import drift
from tilescan_shared.drift import tile_stats
from tilescan_shared.image import read_gray
from tilescan_shared.masks import DecisionRule
from tilescan_shared.model_info import ModelInfo, stamp
from tilescan_shared.predictor import CPU, INPUT_NAME, OUTPUT_NAME, TILE_OUTPUT_NAME, Predictor
from tilescan_training.graph import InferenceGraph
from tilescan_training.manifest import read_records, read_split, records_in
from tilescan_training.params.export import ExportParams
from tilescan_training.params.loading import as_dict, load_section
from tilescan_training.params.train import TrainParams
from tilescan_training.quantization import calibration_records, quantize_int8
from tilescan_training.weights import load_net

PROVISIONAL_THRESHOLD = 0.5


class ParityError(RuntimeError):
    """onnxruntime's output drifted from torch's beyond the tolerance."""


def export(
    net: torch.nn.Module,
    train_params: TrainParams,
    params: ExportParams,
    out_path: Path,
    real_images: list[np.ndarray],
    reference: dict[str, list[int]] | None = None,
) -> float:
    """Export, stamp metadata (with the train tiles' ``reference`` histograms), check parity; return the
    largest torch/onnxruntime difference seen."""
    graph = InferenceGraph(net.eval(), net.multiple, train_params.scale, params.flip_tta).eval()
    height, width = train_params.crop_size
    dummy = torch.zeros((1, 1, height, width), dtype=torch.uint8)
    axes = {0: "batch", 2: "height", 3: "width"}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        graph,
        (dummy,),
        str(out_path),
        dynamo=False,  # the TorchScript exporter handles the data-dependent output size in one pass
        opset_version=params.opset,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME, TILE_OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes, TILE_OUTPUT_NAME: {0: "batch"}},
    )
    model = onnx.load(str(out_path))
    version = hashlib.sha256(model.SerializeToString()).hexdigest()[:12]
    stamp(
        model,
        ModelInfo(
            name=params.name,
            version=version,
            rule=DecisionRule(threshold=PROVISIONAL_THRESHOLD),
            working_size=list(train_params.crop_size),
            train_params=as_dict(train_params),
            export_params=as_dict(params),
            reference=reference or {},
        ),
    )
    onnx.save(model, str(out_path))
    return check_parity(graph, Predictor(out_path, providers=[CPU]), real_images, params.tolerance)


def check_parity(
    graph: torch.nn.Module, predictor: Predictor, real_images: list[np.ndarray], tolerance: float
) -> float:
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(2, 1, 97, 131), (1, 1, 333, 517)]]
    batches += [img[None, None] for img in real_images]
    worst = 0.0
    with torch.no_grad():
        for batch in batches:
            expected, expected_tile = (t.numpy() for t in graph(torch.from_numpy(batch)))
            got, got_tile = predictor.predict_batch(batch)
            if got.shape != batch.shape or got.dtype != np.float32 or got_tile is None:
                raise ParityError(
                    f"output {got.dtype} {got.shape} breaks the contract for input {batch.shape}"
                )
            if got_tile.shape != batch.shape[:1] or got_tile.dtype != np.float32:
                raise ParityError(f"tile score {got_tile.dtype} {got_tile.shape} for input {batch.shape}")
            worst = max(
                worst, float(np.abs(got - expected).max()), float(np.abs(got_tile - expected_tile).max())
            )
    if worst > tolerance:
        raise ParityError(f"onnxruntime differs from torch by {worst:.2e} > tolerance {tolerance:.0e}")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--checkpoint", default="models/checkpoints/best.ckpt", type=Path)
    parser.add_argument("--data", default="data/ingested", type=Path)
    parser.add_argument("--split", default="data/split.csv", type=Path)
    parser.add_argument("--out", default="models/exported.onnx", type=Path)
    parser.add_argument("--int8-out", default="models/exported.int8.onnx", type=Path)
    args = parser.parse_args()
    train_params = load_section(args.params, "train", TrainParams)
    params = load_section(args.params, "export", ExportParams)
    records, entries = read_records(args.data / "manifest.csv"), read_split(args.split)
    real = [read_gray(args.data / r.image) for r in records_in("val", records, entries)[:4]]
    train_stats = [tile_stats(read_gray(args.data / r.image)) for r in records_in("train", records, entries)]
    reference = drift.reference({stat: [s[stat] for s in train_stats] for stat in drift.INPUT_STATS})
    net = load_net(args.checkpoint, train_params)
    worst = export(net, train_params, params, args.out, real, reference)
    print(f"exported {args.out}; torch vs onnxruntime max difference {worst:.2e}")
    int8 = params.int8
    calibration = calibration_records(records_in("train", records, entries), int8.calibration_tiles)
    quantize_int8(args.out, args.int8_out, [read_gray(args.data / r.image) for r in calibration], int8)
    print(f"quantized {args.int8_out} ({int8.calibration} over {len(calibration)} train tiles)")


if __name__ == "__main__":
    main()
