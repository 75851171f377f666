"""LightningModule: trains on crops, validates whole tiles through the exported graph's forward pass."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics.classification import BinaryPrecisionRecallCurve

from tilescan_training.graph import native_logits
from tilescan_training.params import OptimizerParams

# The checkpoint metric takes the best Dice over these thresholds: evaluate later picks the shipped
# threshold on val, so the epoch must not be judged at one arbitrary threshold.
VAL_THRESHOLDS = torch.linspace(0.05, 0.95, 19)


class SegmentationModule(pl.LightningModule):
    """Trains ``net`` (images -> logits) with ``loss``.

    Logs ``train/loss``, ``val/loss`` and ``val/pixel_dice_max``: the micro pixel Dice over all val
    tiles (defect-free ones included, so false positives count) at native resolution, at the best of
    :data:`VAL_THRESHOLDS`; ``val/pixel_dice_max_best`` is its best value so far. The checkpoint is
    chosen on it.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: OptimizerParams,
        scale: float = 1.0,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.net = net
        self.loss = loss
        self.optimizer_params = optimizer
        self.scale = scale
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.val_curve = BinaryPrecisionRecallCurve(thresholds=VAL_THRESHOLDS)
        self.best_dice = 0.0

    def on_fit_start(self) -> None:
        self.net.to(memory_format=self.memory_format)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.contiguous(memory_format=self.memory_format))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, masks = batch
        loss = self.loss(self(images), masks)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(images))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, masks = batch
        logits = native_logits(self, images, self.net.multiple, self.scale).float()
        loss = self.loss(logits, masks)
        self.log("val/loss", loss, on_step=False, on_epoch=True, batch_size=len(images), sync_dist=True)
        self.val_curve.update(torch.sigmoid(logits).flatten(), (masks >= 0.5).flatten().int())

    def on_validation_epoch_end(self) -> None:
        precision, recall, _ = self.val_curve.compute()  # reduced across ranks by torchmetrics
        self.val_curve.reset()
        # Dice is F1; a threshold that predicts nothing gives 0/0 (NaN), which counts as 0.
        dice = float(torch.nan_to_num(2 * precision * recall / (precision + recall)).max())
        if not self.trainer.sanity_checking:
            self.best_dice = max(self.best_dice, dice)
        self.log("val/pixel_dice_max", dice, prog_bar=True)
        self.log("val/pixel_dice_max_best", self.best_dice)

    def configure_optimizers(self):
        p = self.optimizer_params
        optimizer = torch.optim.AdamW(self.parameters(), lr=p.lr, weight_decay=p.weight_decay)
        if p.schedule == "constant":
            return optimizer
        steps = int(self.trainer.estimated_stepping_batches)
        if p.schedule == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=p.lr, total_steps=steps)
        elif p.schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        else:
            raise ValueError(f"unknown schedule {p.schedule!r}: use onecycle, cosine or constant")
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
