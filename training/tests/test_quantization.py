from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch

from tilescan_shared.model_info import read_info
from tilescan_shared.predictor import Predictor, Variant
from tilescan_shared.runtimes import variant_path
from tilescan_training.manifest import Record
from tilescan_training.net import UNet
from tilescan_training.quantization import calibration_records, quantize_int8
from tilescan_training.stages.export import export

RNG = np.random.default_rng(3)
TILES = [RNG.integers(0, 256, shape, dtype=np.uint8) for shape in [(45, 70), (64, 33), (50, 50), (71, 90)]]


@pytest.fixture(scope="module")
def int8_params(repo_params):
    return repo_params.export.int8


@pytest.fixture(scope="module")
def fp32(tmp_path_factory, tiny_train, repo_params):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("quantize") / "model.onnx"
    params = replace(repo_params.export, flip_tta=False)
    export(UNet(base_channels=4, depth=2), tiny_train, params, path, TILES[:1])
    return path


# (percentile fails on this random net: onnxruntime cannot bin its nearly constant activations)
@pytest.mark.parametrize("method", ["minmax", "entropy"])
def test_int8_keeps_the_contract_and_the_metadata(fp32, method, int8_params):
    int8 = variant_path(fp32, Variant.INT8)
    quantize_int8(fp32, int8, TILES, replace(int8_params, calibration=method))
    model = onnx.load(str(int8))
    ops = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format
    assert read_info(model) == read_info(onnx.load(str(fp32)))
    image = RNG.integers(0, 256, (77, 101), dtype=np.uint8)  # a size calibration never saw
    expected, got = Predictor(fp32).predict(image), Predictor(fp32, variant=Variant.INT8).predict(image)
    assert got.probability.shape == image.shape and got.probability.dtype == np.float32
    assert np.abs(got.probability - expected.probability).max() < 0.1
    assert got.tile_score == pytest.approx(expected.tile_score, abs=0.1)


def _quantized_convs(graph: onnx.GraphProto) -> set[str]:
    """Names of the Conv and Gemm nodes that read dequantized (int8) weights."""
    dequantized = {name for node in graph.node if node.op_type == "DequantizeLinear" for name in node.output}
    return {n.name for n in graph.node if n.op_type in ("Conv", "Gemm") and dequantized & set(n.input[1:2])}


def test_nodes_kept_in_fp32_are_not_quantized(fp32, tmp_path, int8_params):
    everything, kept = tmp_path / "all.int8.onnx", tmp_path / "kept.int8.onnx"
    quantize_int8(fp32, everything, TILES, int8_params)
    quantize_int8(fp32, kept, TILES, replace(int8_params, keep_fp32=("/net/decision",)))
    quantized = _quantized_convs(onnx.load(str(everything)).graph)
    head = {name for name in quantized if name.startswith("/net/decision")}
    assert head and quantized - head  # the head's layers and the others are quantized by default
    assert _quantized_convs(onnx.load(str(kept)).graph) == quantized - head


def _record(i: int, cls: str) -> Record:
    return Record(f"{cls}/{i}", cls, f"{i}.png", f"{i}m.png", 8, 8, 0, "", "")


def test_calibration_tiles_take_every_class_in_turn():
    records = [_record(i, "free") for i in range(10)] + [_record(i, "crack") for i in range(10, 12)]
    picked = calibration_records(records, 5)
    assert [r.cls for r in picked] == ["crack", "free", "crack", "free", "free"]
    assert len(calibration_records(records, 100)) == len(records)
