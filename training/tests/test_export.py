from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch

from tilescan_shared.masks import DecisionRule
from tilescan_shared.model_info import read_info
from tilescan_shared.predictor import Predictor
from tilescan_training.graph import InferenceGraph
from tilescan_training.net import UNet
from tilescan_training.stages.export import ParityError, check_parity, export


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_train, repo_params):
    torch.manual_seed(0)
    net = UNet(base_channels=4, depth=2)
    path = tmp_path_factory.mktemp("export") / "model.onnx"
    real = [np.random.default_rng(1).integers(0, 256, (45, 70), dtype=np.uint8)]
    params = replace(repo_params.export, name="tilescan-test", opset=17, flip_tta=False)
    worst = export(net, tiny_train, params, path, real)
    return net, path, worst


def test_parity_within_tolerance(exported):
    _, _, worst = exported
    assert worst <= 1e-4


@pytest.mark.parametrize("shape", [(1, 1, 32, 48), (3, 1, 17, 203), (2, 1, 300, 41)])
def test_contract_any_batch_and_size(exported, shape):
    _, path, _ = exported
    batch = np.random.default_rng(2).integers(0, 256, shape, dtype=np.uint8)
    out, tile = Predictor(path).predict_batch(batch)
    assert out.shape == shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert tile.shape == shape[:1] and tile.dtype == np.float32
    assert tile.min() >= 0.0 and tile.max() <= 1.0


def test_graph_io_and_opset(exported):
    _, path, _ = exported
    model = onnx.load(str(path))
    (inp,) = model.graph.input
    out, tile = model.graph.output
    assert inp.name == "image" and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert out.name == "probability" and out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert tile.name == "tile_score" and tile.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param for d in tile.type.tensor_type.shape.dim] == ["batch"]
    assert [d.dim_param for d in inp.type.tensor_type.shape.dim] == ["batch", "", "height", "width"]
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17


def test_metadata(exported):
    _, path, _ = exported
    info = read_info(onnx.load(str(path)))
    assert info.name == "tilescan-test"
    assert len(info.version) == 12
    assert info.working_size == [32, 48]
    assert info.train_params["net"] == {"base_channels": 4, "depth": 2}
    assert info.export_params["opset"] == 17
    assert info.rule == DecisionRule(threshold=0.5) and info.metrics == {}
    assert Predictor(path).info == info


def test_flip_tta_is_mirror_symmetric(tmp_path, tiny_train, repo_params):
    torch.manual_seed(0)
    path = tmp_path / "tta.onnx"
    image = np.random.default_rng(3).integers(0, 256, (40, 64), dtype=np.uint8)
    params = replace(repo_params.export, flip_tta=True)
    export(UNet(base_channels=4, depth=2), tiny_train, params, path, [image])
    predictor = Predictor(path)
    mirrored, plain = predictor.predict(image[:, ::-1].copy()), predictor.predict(image)
    np.testing.assert_allclose(mirrored.probability, plain.probability[:, ::-1], atol=1e-5)
    assert mirrored.tile_score == pytest.approx(plain.tile_score, abs=1e-5)


def test_parity_check_fails_on_a_different_graph(exported, tiny_train):
    _, path, _ = exported
    torch.manual_seed(99)
    other = InferenceGraph(UNet(base_channels=4, depth=2).eval(), 4, tiny_train.scale).eval()
    with pytest.raises(ParityError, match="differs from torch"):
        check_parity(other, Predictor(path), [], tolerance=1e-4)
