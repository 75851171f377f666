"""The allocator settings of ``tilescan-serve`` (tilescan_service.memory), measured in fresh processes,
and when freed memory goes back to the OS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tilescan_service.memory import BIG_IMAGE_PIXELS, TrimSchedule

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt, /proc")


@pytest.fixture(scope="module")
def native_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pipeline's native-resolution network (untrained), exported as the train stage would: its
    buffers grow with the tile, which is what the allocator settings are for, whichever model is served
    (a model that resizes every tile to one working size allocates the same small buffers each time)."""
    torch = pytest.importorskip("torch")
    from tilescan_training.net import UNet
    from tilescan_training.params.export import ExportParams
    from tilescan_training.params.loading import load_section
    from tilescan_training.params.train import TrainParams
    from tilescan_training.stages.export import export

    train = load_section(REPO / "params.yaml", "train", TrainParams)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("native") / "native.onnx"
    net = UNet(train.net.base_channels, train.net.depth)
    export(net, train, load_section(REPO / "params.yaml", "export", ExportParams), path, [])
    return path


# The model on four tile sizes in a worker thread, as the service runs it: four warm-up passes, then
# the minor page faults of two more.
_FAULTS = """
import json, resource, sys
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from tilescan_service.memory import keep_inference_buffers
from tilescan_shared.predictor import Predictor

took = keep_inference_buffers() if sys.argv[1] == "keep" else None
predictor = Predictor(sys.argv[2], intra_op_threads=1)
rng = np.random.default_rng(0)
shapes = [(265, 375), (232, 601), (403, 355), (300, 310)]
tiles = [rng.integers(0, 255, shape, dtype=np.uint8) for shape in shapes]
with ThreadPoolExecutor(1) as pool:
    for _ in range(4):
        [pool.submit(predictor.predict, tile).result() for tile in tiles]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(2):
        [pool.submit(predictor.predict, tile).result() for tile in tiles]
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"took": took, "faults": faults}))
"""

# A 48 MB buffer freed with the settings kept, as a tile's buffers are, then during a big image:
# how much of it the process still holds afterwards (MB of RSS).
_HELD = """
import json
from pathlib import Path
import numpy as np
from tilescan_service.memory import big_image_allocation, keep_inference_buffers

def rss_mb():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024

def held_after_free():
    before = rss_mb()
    buffer = np.ones(48 * 1024 * 1024, dtype=np.uint8)
    del buffer
    return rss_mb() - before

assert keep_inference_buffers()
tile = held_after_free()
with big_image_allocation(2_000_000):
    big = held_after_free()
print(json.dumps({"tile": tile, "big": big}))
"""


def _run(code: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_inference_buffers_stay_in_the_heap_instead_of_faulting_in_again(native_model: Path) -> None:
    default, kept = _run(_FAULTS, "default", str(native_model)), _run(_FAULTS, "keep", str(native_model))

    assert kept["took"] is True
    # Measured: about 4,700 faults an inference by default (18 MB of fresh pages), none kept.
    assert default["faults"] > 8 * 1000
    assert kept["faults"] < default["faults"] / 10


def test_a_big_image_gets_its_own_mappings_back_to_the_os() -> None:
    held = _run(_HELD)

    assert held["tile"] > 40  # kept for the next tile
    assert held["big"] < 8  # unmapped on free


def test_free_memory_goes_back_after_a_big_image_and_every_few_million_pixels() -> None:
    schedule = TrimSchedule(every_pixels=1_000_000)
    tile = 100_000
    assert [schedule.served(tile) for _ in range(10)] == [False] * 9 + [True]
    assert [schedule.served(tile) for _ in range(3)] == [False] * 3
    assert schedule.served(BIG_IMAGE_PIXELS)  # at once, whatever came before
    assert [schedule.served(tile) for _ in range(10)] == [False] * 9 + [True]  # counting starts again
