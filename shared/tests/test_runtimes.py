import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tilescan_shared.predictor import Predictor
from tilescan_shared.runtimes import (
    CPU,
    CUDA,
    OPENVINO_CACHE_CAPACITY,
    OpenVinoSession,
    Variant,
    unavailable,
    variant_path,
)
from tilescan_shared.testing import bright_square, openvino_cache_capacities, write_tiny_model

SERVED = Path(__file__).resolve().parents[2] / "models" / "tilescan.onnx"


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


def test_bf16_asks_openvino_to_keep_what_it_prepared(tmp_path):
    model = write_tiny_model(tmp_path / "tilescan.onnx", variants={"bf16": {"passed": True}})
    if (reason := unavailable(Variant.BF16, model, [CPU])) is not None:
        pytest.skip(reason)
    with openvino_cache_capacities() as asked:
        Predictor(model, variant=Variant.BF16)
        OpenVinoSession(model, intra_op_threads=1, cache_capacity=0)
    assert asked == [str(OPENVINO_CACHE_CAPACITY), "0"]


# The served model on 96 tile sizes in a fresh process: its RSS growth in MB over the last 48, through
# OpenVinoSession keeping argv[2] entries or compiled with OpenVINO's defaults (argv[2] == "defaults").
_SIZES = """
import json, sys
from pathlib import Path
import numpy as np
import openvino as ov
from tilescan_shared.runtimes import OpenVinoSession

def rss_mb():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024

if sys.argv[2] != "defaults":
    session = OpenVinoSession(Path(sys.argv[1]), intra_op_threads=1, cache_capacity=int(sys.argv[2]))
    run = lambda gray: session.run(["probability"], {"image": gray[None, None]})
else:
    config = {"INFERENCE_PRECISION_HINT": "bf16", "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": "1"}
    request = ov.Core().compile_model(sys.argv[1], "CPU", config).create_infer_request()
    run = lambda gray: request.infer({"image": gray[None, None]})
rng = np.random.default_rng(0)
sizes = [(112 + 16 * (i % 12), 112 + 16 * (i // 12)) for i in range(96)]  # 96 shapes after padding too
run(rng.integers(0, 255, (400, 400), dtype=np.uint8))  # the largest first: its buffers are kept
for i, size in enumerate(sizes):
    if i == len(sizes) // 2:
        halfway = rss_mb()
    run(rng.integers(0, 255, size, dtype=np.uint8))
print(json.dumps(rss_mb() - halfway))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_bf16_memory_stops_growing_with_new_tile_sizes():
    model = SERVED
    if (reason := unavailable(Variant.BF16, model, [CPU])) is not None:
        pytest.skip(reason)

    def growth(session: str) -> float:
        done = subprocess.run(
            [sys.executable, "-c", _SIZES, str(model), session], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    # Measured over the last 48 sizes: about +270 MB with OpenVINO's defaults (5,000 entries: it keeps
    # every size's kernels and buffers), +20 MB through OpenVinoSession keeping 150 entries (about ten
    # sizes; oneDNN's own cache of kernels is full by then too).
    assert growth("defaults") > 150
    assert growth("150") < 60
