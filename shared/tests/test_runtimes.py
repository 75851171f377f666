import shutil

import numpy as np
import pytest

from tilescan_shared.predictor import Predictor
from tilescan_shared.runtimes import CPU, CUDA, Variant, unavailable, variant_path
from tilescan_shared.testing import bright_square, write_tiny_model


def test_the_int8_sibling_sits_beside_the_model(tmp_path):
    model = tmp_path / "tilescan.onnx"
    assert variant_path(model, Variant.INT8) == tmp_path / "tilescan.int8.onnx"
    assert variant_path(model, Variant.BF16) == variant_path(model, Variant.FP32) == model


def test_what_cannot_run_says_why(tmp_path):
    model = write_tiny_model(tmp_path / "tilescan.onnx")
    assert unavailable(Variant.FP32, model, [CPU]) is None
    assert "tilescan.int8.onnx is not beside the model" in unavailable(Variant.INT8, model, [CPU])
    shutil.copyfile(model, variant_path(model, Variant.INT8))
    assert unavailable(Variant.INT8, model, [CPU]) is None
    for variant in (Variant.INT8, Variant.BF16):
        assert "GPU host serves fp32" in unavailable(variant, model, [CUDA, CPU])


def test_bf16_on_openvino_keeps_the_contract_and_the_metadata(tmp_path):
    model = write_tiny_model(
        tmp_path / "tilescan.onnx", tile_threshold=0.9, variants={"bf16": {"passed": True}}
    )
    if (reason := unavailable(Variant.BF16, model, [CPU])) is not None:
        pytest.skip(reason)
    fp32, bf16 = (
        Predictor(model, variant=Variant.FP32),
        Predictor(model, variant=Variant.BF16, parallel_runs=2),
    )
    assert bf16.info == fp32.info and bf16.info.variants == {"bf16": {"passed": True}}
    assert bf16.providers == ["OpenVINO CPU"] and bf16.outputs == ["probability", "tile_score"]
    for image in (bright_square(37, 91), bright_square(300, 41, (3, 3, 30, 200))):  # any size, one model
        expected, got = fp32.predict(image), bf16.predict(image)
        assert got.probability.shape == image.shape and got.probability.dtype == np.float32
        np.testing.assert_allclose(got.probability, expected.probability, atol=1 / 128)  # bf16: 8 bits
        assert got.tile_score == pytest.approx(expected.tile_score, abs=1 / 128)


def test_int8_runs_its_own_file(tmp_path):
    model = write_tiny_model(tmp_path / "tilescan.onnx", threshold=0.3)
    write_tiny_model(variant_path(model, Variant.INT8), threshold=0.3, version="int8file")
    predictor = Predictor(model, variant="int8")
    assert predictor.variant is Variant.INT8 and predictor.info.version == "int8file"
    assert predictor.providers == [CPU]
