"""The parts of scale-smoke and gpu-check that run without Docker or a GPU, run for real.

scripts/lb_load.py against a real service (and against nothing: failures must count), and
tilescan_service.gpu_parity on the committed model with CPU as the candidate (and CUDA, which this CPU build
must report missing, not skip).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tilescan_service.gpu_parity import compare
from tilescan_service.testing import serve_process
from tilescan_shared.masks import DecisionRule
from tilescan_shared.predictor import Inference
from tilescan_shared.testing import write_tiny_model

SCRIPTS = Path(__file__).resolve().parents[1]
REPO = SCRIPTS.parent
EXAMPLES = REPO / "evaluation/examples"


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.fixture
def service_url(tmp_path: Path) -> Iterator[str]:
    """``tilescan-serve`` on a free port with a tiny model."""
    with serve_process(write_tiny_model(tmp_path / "tiny.onnx")) as served:
        yield served.url


def load(url: str, tmp_path: Path, stop_after: int) -> subprocess.CompletedProcess[str]:
    """lb_load.py until ``stop_after`` requests were sent (the stop file written the way scale-smoke does)."""
    progress, stop = tmp_path / "progress", tmp_path / "stop"

    def stopper() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if progress.exists() and int(progress.read_text() or 0) >= stop_after:
                break
            time.sleep(0.05)
        stop.touch()

    thread = threading.Thread(target=stopper)
    thread.start()
    args = ["--stop-file", str(stop), "--progress-file", str(progress), "--clients", "2"]
    result = run(SCRIPTS / "lb_load.py", url, *args, "--examples", str(EXAMPLES), "--max-seconds", "90")
    thread.join()
    return result


def test_load_counts_requests_and_ends_with_zero_failed(service_url, tmp_path):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the tiny model loads in well under a second
        try:
            urllib.request.urlopen(f"{service_url}/readyz", timeout=2)
            break
        except OSError:
            time.sleep(0.1)
    result = load(service_url, tmp_path, stop_after=20)
    assert result.returncode == 0, result.stderr
    sent, failed = result.stdout.strip().splitlines()[-1].split(", ")
    assert int(sent.split()[0]) >= 20
    assert failed == "0 failed"


def test_load_against_nothing_counts_every_request_as_failed(tmp_path):
    result = load("http://127.0.0.1:9", tmp_path, stop_after=5)
    assert result.returncode == 1
    sent, failed = result.stdout.strip().splitlines()[-1].split(", ")
    assert int(sent.split()[0]) >= 5
    assert failed == f"{sent.split()[0]} failed"
    assert "ConnectionRefusedError" in result.stderr


def test_parity_of_the_committed_model_cpu_against_cpu():
    result = run("-m", "tilescan_service.gpu_parity", "--candidate", "CPUExecutionProvider")
    assert result.returncode == 0, result.stderr
    assert f"{len(list(EXAMPLES.glob('*.png')))} tiles, 0 beyond tolerance" in result.stdout


def test_parity_fails_where_onnxruntime_offers_no_cuda():
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime build has CUDA")
    result = run("-m", "tilescan_service.gpu_parity")
    assert result.returncode == 1
    assert "does not offer CUDAExecutionProvider" in result.stderr


def test_compare_counts_flipped_mask_pixels():
    reference = np.zeros((10, 10), dtype=np.float32)
    reference[2:5, 2:5] = 0.9
    candidate = reference.copy()
    candidate[2, 2] = 0.4  # one pixel drops below the threshold
    parity = compare(Inference(reference, 0.8), Inference(candidate, 0.8), DecisionRule(threshold=0.5))
    assert parity.mask_diff_pixels == 1
    assert parity.max_prob_diff == pytest.approx(0.5)
    assert parity.mask_diff_fraction == pytest.approx(0.01)
