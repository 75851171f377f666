"""Stage ``train``: fit the U-Net with Lightning, log to DVCLive, keep the best checkpoint."""

from __future__ import annotations

import argparse
import ctypes.util
import os
import shutil
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
from dvclive.lightning import DVCLiveLogger
from pytorch_lightning.callbacks import ModelCheckpoint

from tilescan_training.datamodule import TileDataModule
from tilescan_training.losses import SegDecLoss
from tilescan_training.module import SegmentationModule
from tilescan_training.params.loading import load_section
from tilescan_training.params.train import TrainParams
from tilescan_training.weights import build_net


def train(params: TrainParams, data_dir: Path, split_csv: Path, checkpoint_dir: Path, live_dir: Path) -> Path:
    """Fit and return the path of the best checkpoint (by ``val/score``)."""
    pl.seed_everything(params.seed, workers=True)
    module = SegmentationModule(
        build_net(params),
        SegDecLoss(params.loss),
        params.optimizer,
        params.scale,
        params.channels_last,
        params.compile,
    )
    data = TileDataModule(
        data_dir,
        split_csv,
        params.crop_size,
        params.batch_size,
        params.num_workers,
        params.augment,
        params.class_balance,
        params.scale,
    )
    checkpoint = ModelCheckpoint(
        dirpath=checkpoint_dir,
        filename="best",
        monitor="val/score",
        mode="max",
        save_top_k=1,
        save_weights_only=True,  # export needs the weights only; no resume from optimizer state
    )
    # dvc.yaml declares DVCLive's metrics and plots itself, so DVCLive must not edit it.
    logger = DVCLiveLogger(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False)
    trainer = pl.Trainer(
        max_epochs=params.epochs,
        accelerator=params.accelerator,
        devices=params.devices,
        num_nodes=params.num_nodes,
        strategy=params.strategy,
        precision=params.precision,
        logger=logger,
        callbacks=[checkpoint],
        check_val_every_n_epoch=params.val_every,
        log_every_n_steps=10,
        enable_progress_bar=False,
        deterministic="warn",
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=data)
    seconds = time.perf_counter() - start
    images = params.epochs * len(data.train_set)
    print(
        f"trained {params.epochs} epochs in {seconds:.0f} s ({images / seconds:.1f} train images/s); "
        f"best val/score {checkpoint.best_model_score}"
    )
    return Path(checkpoint.best_model_path)


def run_under_tcmalloc() -> None:
    """Restart this process with tcmalloc preloaded where the machine has it (Debian: libtcmalloc-minimal4).

    Measured on the 2-core CPU: the same weights step for step, faster epochs than under glibc's malloc
    (docs/benchmarks.md, "Training throughput"). An LD_PRELOAD already set (another allocator, or this
    restart) is left as it is.
    """
    if os.environ.get("LD_PRELOAD"):
        return
    library = ctypes.util.find_library("tcmalloc_minimal")
    if library is None:
        print("no tcmalloc here: training under glibc's malloc (libtcmalloc-minimal4 makes epochs faster)")
        return
    os.execve(sys.executable, sys.orig_argv, {**os.environ, "LD_PRELOAD": library})


def main() -> None:
    run_under_tcmalloc()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", default="data/ingested", type=Path)
    parser.add_argument("--split", default="data/split.csv", type=Path)
    parser.add_argument("--checkpoints", default="models/checkpoints", type=Path)
    parser.add_argument("--live", default="dvclive", type=Path)
    args = parser.parse_args()
    for stale in (args.checkpoints, args.live):
        if stale.exists():
            shutil.rmtree(stale)
    train(load_section(args.params, "train", TrainParams), args.data, args.split, args.checkpoints, args.live)


if __name__ == "__main__":
    main()
