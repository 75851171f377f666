"""The whole DVC pipeline, for real, on the synthetic dataset with tiny params."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from PIL import Image

from tilescan_shared.predictor import Predictor
from tilescan_training.manifest import read_records, read_split
from tilescan_training.testing import write_plant_batch

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "split": {"free_in_train": 4},
    "train": {
        "crop_size": [64, 64],
        "init_weights": "",
        "init_weights_sha256": "",
        "epochs": 2,
        "val_every": 1,
        "batch_size": 4,
        "num_workers": 0,
        "compile": False,
        "accelerator": "cpu",
        "devices": 1,
        "net": {"base_channels": 4, "depth": 2},
    },
    "evaluate": {"thresholds": [0.3, 0.5, 0.7], "min_region_areas": [0, 8], "examples": 3},
}


def _merge(base: dict, override: dict) -> dict:
    return {
        k: _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
        for k, v in {**base, **override}.items()
    }


def _run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def pipeline_repo(synthetic_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("repo")
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, repo / name)
    for package in ("shared", "training"):
        shutil.copytree(
            REPO / package / "src", repo / package / "src", ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copytree(REPO / "data/plant", repo / "data/plant")  # what a clone has: the batches' folder
    params = _merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    params["ingest"]["source"] = str(synthetic_dataset)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    _run(["git", "init", "-q"], repo)
    _run(["dvc", "init", "-q"], repo)
    _plant_batch(synthetic_dataset, repo / "data/plant/b1")
    _run(["dvc", "add", "-q", "data/plant/b1"], repo)  # what `make label-import` does
    # DVCLive needs at least one commit in the repository it logs in.
    _run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "init", "--allow-empty"], repo
    )
    _run(["dvc", "repro"], repo)
    return repo


def _plant_batch(dataset: Path, batch: Path) -> None:
    """A labelled batch of every other public tile, mirrored: new tiles."""
    tiles = []
    for image_path in sorted(dataset.glob("MT_*/Imgs/*.jpg"))[::2]:
        image = np.asarray(Image.open(image_path))[:, ::-1]
        mask = (np.asarray(Image.open(image_path.with_suffix(".png"))) > 0).astype(np.uint8)[:, ::-1]
        out = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image)).save(out, "PNG")
        tiles.append((out.getvalue(), image_path.parent.parent.name.removeprefix("MT_").lower(), mask))
    write_plant_batch(batch, tiles)


@pytest.mark.slow
def test_every_stage_writes_its_outputs(pipeline_repo: Path):
    repo = pipeline_repo
    records = read_records(repo / "data/ingested/manifest.csv")
    entries = read_split(repo / "data/split.csv")
    assert len(records) == len(entries) == 34 + 17
    plant = {r.id for r in records if r.origin == "plant/b1"}
    assert len(plant) == 17
    assert {e.split for e in entries if e.id in plant} <= {"train", "val", "plant_test"}
    assert {e.split for e in entries if e.id not in plant} <= {"train", "val", "test", "unused"}
    assert (repo / "models/checkpoints/best.ckpt").is_file()
    assert (repo / "dvclive/metrics.json").is_file()
    assert (repo / "dvclive/plots/metrics/val/pixel_dice_max.tsv").is_file()
    for model in ("exported", "candidate"):
        assert (repo / f"models/{model}.onnx").is_file() and (repo / f"models/{model}.int8.onnx").is_file()
    assert not (repo / "models/tilescan.onnx").exists()  # the served model changes only by `make promote`
    for png in ("dice_vs_threshold.png", "training_curves.png", "tile_pr.png"):
        assert (repo / "evaluation/plots" / png).stat().st_size > 1000
    assert len(list((repo / "evaluation/examples").glob("*.png"))) == 3
    with open(repo / "evaluation/plots/rule_options.csv", newline="") as f:
        options = list(csv.DictReader(f))
    # no second look and each of params.yaml's review bands, one of them chosen
    assert len(options) == 1 + 3 and [o["chosen"] for o in options].count("True") == 1
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"ingest", "split", "train", "export", "evaluate"}
    assert "up to date" in _run(["dvc", "status"], repo).lower()


@pytest.mark.slow
def test_metrics_and_sealed_model(pipeline_repo: Path):
    metrics = json.loads((pipeline_repo / "evaluation/metrics.json").read_text())
    for key in ("dice", "iou", "false_alarm_rate", "precision", "recall"):
        assert 0.0 <= metrics[key] <= 1.0
    assert set(metrics["per_class"]) == {"blowhole", "crack", "uneven"}
    plant_test = [e for e in read_split(pipeline_repo / "data/split.csv") if e.split == "plant_test"]
    assert plant_test  # about 15% of the 17 plant tiles; which ones is fixed by their ids and the seed
    assert sum(metrics["plant_test"]["images"].values()) == len(plant_test)
    assert metrics["rule"]["threshold"] in TINY["evaluate"]["thresholds"]
    assert 0.0 <= metrics["rule"]["tile_threshold"] <= 1.0
    assert 0.0 <= metrics["tile"]["roc_auc"] <= 1.0
    assert 0.0 <= metrics["tile"]["average_precision"] <= 1.0
    for cls in metrics["per_class"].values():
        assert 0 <= cls["found"] <= cls["images"]

    model = pipeline_repo / "models/candidate.onnx"
    props = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
    assert float(props["threshold"]) == metrics["rule"]["threshold"]
    assert float(props["tile_threshold"]) == metrics["rule"]["tile_threshold"]
    assert json.loads(props["metrics"])["dice"] == metrics["dice"]
    exported = {p.key: p.value for p in onnx.load(str(pipeline_repo / "models/exported.onnx")).metadata_props}
    assert props["version"] == exported["version"]
    # every reduced precision is judged; the metadata lists those that passed, with their scores
    assert set(metrics["variants"]) == {"bf16", "int8"}
    passed = {name: report for name, report in metrics["variants"].items() if report["passed"]}
    assert json.loads(props["variants"]) == passed
    for report in metrics["variants"].values():
        assert report["passed"] or report["why"]
    # the drift reference: train tiles' input statistics (export), val tiles' tile scores (evaluate)
    reference = json.loads(props["reference"])
    assert set(reference) == {"mean_intensity", "contrast", "pixels", "tile_score"}
    assert sum(reference["mean_intensity"]) == sum(
        e.split == "train" for e in read_split(pipeline_repo / "data/split.csv")
    )
    int8_props = {p.key: p.value for p in onnx.load(str(model.with_suffix(".int8.onnx"))).metadata_props}
    assert int8_props["variants"] == props["variants"] and int8_props["version"] == props["version"]

    inference = Predictor(model).predict(np.zeros((77, 131), np.uint8))
    assert inference.probability.shape == (77, 131)
    assert 0.0 <= inference.tile_score <= 1.0
