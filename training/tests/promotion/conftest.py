"""A throwaway git + DVC repository laid out like tilescan's, for the gate, promotion and the report.

Its ``data/`` holds :func:`tilescan_training.testing.write_scoring_data`'s tiles, on which the tiny
models of :func:`tilescan_shared.testing.write_tiny_model` score what their pixel threshold says.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tilescan_shared.testing import write_tiny_model
from tilescan_training.testing import write_scoring_data

DVC_YAML = """\
metrics:
  - evaluation/metrics.json
  - dvclive/metrics.json
stages:
  evaluate:
    cmd: "true"
    params:
      - evaluate
"""

# The repository's params with the gate's rules (and one evaluate param the report tests change) pinned.
REPO_PARAMS = yaml.safe_load((Path(__file__).resolve().parents[3] / "params.yaml").read_text())
PARAMS = yaml.safe_dump(
    REPO_PARAMS
    | {
        "evaluate": REPO_PARAMS["evaluate"] | {"thresholds": [0.4, 0.5]},
        "promote": {
            "metrics_file": "evaluation/metrics.json",
            "candidate_file": "models/candidate.onnx",
            "model_file": "models/tilescan.onnx",
            "primary": "dice",
            "min_improvement": 0.005,
            "floor": 0.5,
            "guards": {"false_alarm_rate": 0.02, "iou": 0.01, "recall": 0.02},
            "lower_is_better": ["false_alarm_rate"],
        },
    },
    default_flow_style=None,
    sort_keys=False,
)


class Repo:
    """Helpers to write the files the gate reads and to commit them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def run(self, *args: str) -> str:
        return subprocess.run(args, cwd=self.root, check=True, capture_output=True, text=True).stdout

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", message)

    def metrics(self, dice: float, false_alarm_rate: float = 0.05, iou: float = 0.45) -> None:
        data = {
            "dice": dice,
            "iou": iou,
            "false_alarm_rate": false_alarm_rate,
            "per_class": {"MT_Crack": {"dice": dice - 0.1, "iou": iou - 0.1, "images": 7, "found": 6}},
        }
        self.write("evaluation/metrics.json", json.dumps(data))

    def model(
        self, threshold: float, version: str = "tiny0001", path: str = "models/tilescan.onnx", **rule
    ) -> None:
        """A tiny model (probability = pixel / 255) with this pixel threshold (tilescan_training.testing)."""
        (self.root / path).parent.mkdir(parents=True, exist_ok=True)
        write_tiny_model(self.root / path, threshold=threshold, version=version, **rule)

    def candidate(self, threshold: float, version: str = "cand0001", **rule) -> None:
        self.model(threshold, version, "models/candidate.onnx", **rule)

    def write(self, path: str, text: str) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    """An initialised repo whose first commit has the pipeline files but no metrics or model yet."""
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    repo = Repo(tmp_path / "repo")
    repo.root.mkdir()
    repo.run("git", "init", "-q", "-b", "main")
    repo.run("git", "config", "user.email", "test@example.com")
    repo.run("git", "config", "user.name", "test")
    repo.run(sys.executable, "-m", "dvc", "init", "-q")
    repo.write("dvc.yaml", DVC_YAML)
    repo.write("params.yaml", PARAMS)
    repo.write(".gitignore", "/data/\n/models/candidate.onnx\n")
    write_scoring_data(repo.root)
    repo.commit("pipeline")
    monkeypatch.chdir(repo.root)
    return repo
