"""The LightningModule: one short fit, and the checkpoint metric checked against a hand computation."""

from dataclasses import replace

import numpy as np
import pytorch_lightning as pl
import torch

from tilescan_training.datamodule import TileDataModule
from tilescan_training.losses import SegmentationLoss
from tilescan_training.module import VAL_THRESHOLDS, SegmentationModule
from tilescan_training.net import UNet


def _parts(ingested, repo_params):
    train = replace(repo_params.train, net=replace(repo_params.train.net, base_channels=4, depth=2))
    torch.manual_seed(0)
    net = UNet(base_channels=4, depth=2)
    module = SegmentationModule(net, SegmentationLoss(train.loss), train.optimizer)
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
    assert {"train/loss", "val/loss", "val/pixel_dice_max", "val/pixel_dice_max_best"} <= metrics.keys()
    assert torch.isfinite(metrics["train/loss"])
    assert 0 <= metrics["val/pixel_dice_max"] <= metrics["val/pixel_dice_max_best"] <= 1


def test_val_metric_is_the_best_threshold_dice_of_whole_native_tiles(ingested, repo_params):
    net, module, data = _parts(ingested, repo_params)
    logged = _trainer().validate(module, datamodule=data, verbose=False)[0]["val/pixel_dice_max"]

    data.setup()
    counts = np.zeros((len(VAL_THRESHOLDS), 3))  # tp, fp, fn per threshold
    net.eval()
    with torch.no_grad():
        for image, mask in data.val_set:
            h, w = image.shape[-2:]
            padded = np.pad(image[0].numpy(), ((0, -h % 4), (0, -w % 4)), mode="edge")
            prob = torch.sigmoid(net(torch.from_numpy(padded)[None, None]))[0, 0, :h, :w].numpy()
            truth = mask[0].numpy() >= 0.5
            for i, t in enumerate(VAL_THRESHOLDS.tolist()):
                pred = prob >= t
                counts[i] += [(pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum()]
    tp, fp, fn = counts.T
    expected = np.max(2 * tp / np.maximum(2 * tp + fp + fn, 1))
    assert abs(logged - expected) < 1e-4
