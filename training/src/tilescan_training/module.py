"""LightningModule: one step function for train and val; validation Dice is micro-averaged."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn

from tilescan_training.params import OptimizerParams


class SegmentationModule(pl.LightningModule):
    """Trains ``net`` (images -> logits) with ``loss``; logs ``train/loss``, ``val/loss``,
    ``val/dice`` and ``val/dice_best``."""

    def __init__(
        self, net: nn.Module, loss: nn.Module, optimizer: OptimizerParams, channels_last: bool = False
    ) -> None:
        super().__init__()
        self.net = net
        self.loss = loss
        self.optimizer_params = optimizer
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.val_counts = torch.zeros(3)  # tp, fp, fn at threshold 0.5
        self.best_dice = 0.0

    def on_fit_start(self) -> None:
        self.net.to(memory_format=self.memory_format)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.contiguous(memory_format=self.memory_format))

    def _step(
        self, batch: tuple[torch.Tensor, torch.Tensor], stage: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        images, masks = batch
        logits = self(images)
        loss = self.loss(logits, masks)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(images))
        return loss, logits

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")[0]

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        _, logits = self._step(batch, "val")
        pred = logits >= 0  # probability >= 0.5
        truth = batch[1] >= 0.5
        counts = torch.stack([(pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum()])
        self.val_counts += counts.float().cpu()

    def on_validation_epoch_end(self) -> None:
        counts = self.trainer.strategy.reduce(self.val_counts.to(self.device), reduce_op="sum")
        tp, fp, fn = counts.tolist()
        dice = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
        self.val_counts = torch.zeros(3)
        if not self.trainer.sanity_checking:
            self.best_dice = max(self.best_dice, dice)
        self.log("val/dice", dice, prog_bar=True, sync_dist=False)
        self.log("val/dice_best", self.best_dice, sync_dist=False)

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
