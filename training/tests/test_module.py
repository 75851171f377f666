"""The LightningModule: one short fit, and the checkpoint metric checked against a hand computation."""

from dataclasses import replace

import pytorch_lightning as pl
import torch

from tilescan_training.datamodule import TileDataModule
from tilescan_training.losses import SegDecLoss
from tilescan_training.module import SegmentationModule
from tilescan_training.net import UNet


def _parts(ingested, repo_params):
    train = replace(repo_params.train, net=replace(repo_params.train.net, base_channels=4, depth=2))
    torch.manual_seed(0)
    net = UNet(base_channels=4, depth=2)
    module = SegmentationModule(net, SegDecLoss(train.loss), train.optimizer)
    data = TileDataModule(ingested / "ingested", ingested / "split.csv", (32, 32), 4, augment=train.augment)
    return net, module, data


def _trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False, **kwargs
    )


def test_fit_logs_losses_and_the_checkpoint_metric(ingested, repo_params):
    _, module, data = _parts(ingested, repo_params)
    trainer = _trainer(max_epochs=2, enable_checkpointing=False)
    trainer.fit(module, datamodule=data)
    metrics = trainer.callback_metrics
    logged = {"train/loss", "train/seg_loss", "train/tile_loss", "val/loss", "val/pixel_dice_max"}
    assert logged | {"val/tile_ap", "val/tile_auroc", "val/score", "val/score_best"} <= metrics.keys()
    assert torch.isfinite(metrics["train/loss"])
    assert 0 <= metrics["val/score"] <= metrics["val/score_best"] <= 1
    assert metrics["val/score"] == (metrics["val/pixel_dice_max"] + metrics["val/tile_ap"]) / 2


def test_val_metric_is_the_best_threshold_dice_of_whole_native_tiles(ingested, repo_params, hand_val_metrics):
    net, module, data = _parts(ingested, repo_params)
    logged = _trainer().validate(module, datamodule=data, verbose=False)[0]["val/pixel_dice_max"]
    data.setup()
    assert abs(logged - hand_val_metrics(net, data.val_set)[1]) < 1e-4
