"""The real train stage in two processes (DDP over gloo on the CPU), as it runs on several GPUs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tilescan_training.datamodule import TileDataModule
from tilescan_training.losses import SegDecLoss
from tilescan_training.params.loading import load_section
from tilescan_training.params.train import TrainParams
from tilescan_training.weights import load_net

REPO = Path(__file__).resolve().parents[2]

# Runs the stage's own main() with probes that only record: which tile each rank loads, and which rank
# writes checkpoints and DVCLive steps. Lightning's DDP launcher starts rank 1 by running this file again.
DRIVER = textwrap.dedent(
    """
    import os, sys
    from pytorch_lightning.plugins.io.torch_plugin import TorchCheckpointIO
    from dvclive import Live
    from tilescan_training.dataset import TileDataset
    from tilescan_training.stages import train

    def rank():
        return os.environ.get("LOCAL_RANK", "0")

    def record(name, line):
        with open(f"{name}-rank{rank()}.txt", "a") as f:
            f.write(f"{line}\\n")

    def probe(cls, method, name, line):
        original = getattr(cls, method)
        def wrapper(self, *args, **kwargs):
            record(name, line(self, *args))
            return original(self, *args, **kwargs)
        setattr(cls, method, wrapper)

    probe(TileDataset, "__getitem__", "draws", lambda self, i: f"{'train' if self.crop_size else 'val'} {i}")
    probe(TorchCheckpointIO, "save_checkpoint", "writes", lambda self, *a: "checkpoint")
    probe(Live, "log_metric", "writes", lambda self, *a: "dvclive")
    train.main()  # its defaults: params.yaml, data/ingested, data/split.csv, models/checkpoints, dvclive
    """
)


def _read(path: Path) -> list[str]:
    return path.read_text().split("\n")[:-1] if path.exists() else []


@pytest.fixture(scope="module")
def ddp_run(ingested: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("ddp")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"].update(
        crop_size=[32, 32], epochs=1, batch_size=2, num_workers=0, val_every=1, class_balance=0.5,
        accelerator="cpu", devices=2, strategy="ddp", num_nodes=1, precision="32-true",
        channels_last=False, init_weights="", init_weights_sha256="", net={"base_channels": 4, "depth": 2},
    )  # fmt: skip
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    (work / "driver.py").write_text(DRIVER)
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "i"],
        cwd=work, check=True,
    )  # fmt: skip
    (work / "data").mkdir()
    for name in ("ingested", "split.csv"):
        (work / "data" / name).symlink_to(ingested / name)
    done = subprocess.run(
        [sys.executable, "driver.py"], cwd=work, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return work


def _draws(work: Path, rank: int, split: str) -> list[int]:
    return [int(line.split()[1]) for line in _read(work / f"draws-rank{rank}.txt") if line.startswith(split)]


@pytest.mark.slow
def test_both_ranks_train_on_their_own_shard(ddp_run: Path, ingested: Path):
    params = load_section(ddp_run / "params.yaml", "train", TrainParams)
    data = TileDataModule(ingested / "ingested", ingested / "split.csv", (32, 32), 2)
    data.setup()
    n = len(data.train_set)
    rank0, rank1 = _draws(ddp_run, 0, "train"), _draws(ddp_run, 1, "train")
    per_rank = params.epochs * -(-n // 2)  # each rank draws half an epoch (rounded up), every epoch
    assert len(rank0) == len(rank1) == per_rank
    # The class-balanced sampler draws with replacement, so indices may repeat; without sharding both
    # ranks would draw the very same sequence (same seed), each a whole epoch long.
    assert rank0 != rank1


@pytest.mark.slow
def test_only_rank_zero_writes_checkpoints_and_dvclive(ddp_run: Path):
    writes0, writes1 = _read(ddp_run / "writes-rank0.txt"), _read(ddp_run / "writes-rank1.txt")
    assert "checkpoint" in writes0 and "dvclive" in writes0
    assert writes1 == []
    assert [p.name for p in (ddp_run / "models/checkpoints").iterdir()] == ["best.ckpt"]


@pytest.mark.slow
def test_validation_metrics_are_reduced_over_both_ranks(ddp_run: Path, ingested: Path, hand_val_metrics):
    """The logged val metrics cover the val tiles of both ranks, not rank 0's half."""
    data = TileDataModule(ingested / "ingested", ingested / "split.csv", (32, 32), 2)
    data.setup()
    shard = -(-len(data.val_set) // 2)
    # Each rank's last `shard` val draws are the one real validation (the first ones are Lightning's
    # sanity check, which logs nothing).
    shard0, shard1 = _draws(ddp_run, 0, "val")[-shard:], _draws(ddp_run, 1, "val")[-shard:]
    assert set(shard0) | set(shard1) == set(range(len(data.val_set)))

    params = load_section(ddp_run / "params.yaml", "train", TrainParams)
    net = load_net(ddp_run / "models/checkpoints/best.ckpt", params)
    loss_fn = SegDecLoss(params.loss)
    logged = json.loads((ddp_run / "dvclive/metrics.json").read_text())["val"]

    def by_hand(indices: list[int]) -> tuple[float, float]:
        return hand_val_metrics(net, [data.val_set[i] for i in indices], loss_fn)

    loss, dice = by_hand(shard0 + shard1)
    assert logged["loss"] == pytest.approx(loss, abs=1e-5)
    assert logged["pixel_dice_max"] == pytest.approx(dice, abs=1e-4)
    assert logged["loss"] != pytest.approx(by_hand(shard0)[0], abs=1e-5)
