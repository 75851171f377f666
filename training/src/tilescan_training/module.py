"""LightningModule: trains on crops, validates whole tiles through the exported graph's forward pass."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics.classification import BinaryAUROC, BinaryAveragePrecision, BinaryPrecisionRecallCurve

from tilescan_training.graph import native_logits
from tilescan_training.losses import SegDecLoss, tile_labels
from tilescan_training.params.train import OptimizerParams

# The checkpoint metric takes the best Dice over these thresholds: evaluate later picks the shipped
# threshold on val, so the epoch must not be judged at one arbitrary threshold.
VAL_THRESHOLDS = torch.linspace(0.05, 0.95, 19)


class SegmentationModule(pl.LightningModule):
    """Trains ``net`` (images -> mask logits, tile logits) with the joint ``loss``.

    Logs ``train/loss`` (and its parts ``train/seg_loss``, ``train/tile_loss``), ``val/loss`` and, over
    whole val tiles at native resolution: ``val/pixel_dice_max``, the micro pixel Dice over all val
    tiles (defect-free ones included, so false positives count) at the best of :data:`VAL_THRESHOLDS`;
    ``val/tile_ap`` and ``val/tile_auroc`` of the tile score; and ``val/score``, their mean, on which
    the checkpoint is chosen (``val/score_best`` is its best value so far).
    """

    def __init__(
        self,
        net: nn.Module,
        loss: SegDecLoss,
        optimizer: OptimizerParams,
        scale: float = 1.0,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.net = net
        self.loss = loss
        self.optimizer_params = optimizer
        self.scale = scale
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.compile = compile
        self.val_curve = BinaryPrecisionRecallCurve(thresholds=VAL_THRESHOLDS)
        self.val_tile_ap = BinaryAveragePrecision()
        self.val_tile_auroc = BinaryAUROC()
        self.best_score = 0.0

    def on_fit_start(self) -> None:
        self.net.to(memory_format=self.memory_format)
        # Training crops all have one shape, so the compiled forward (fused batch norm, ReLU and casts:
        # 1.7x faster steps on the 2-core CPU, docs/benchmarks.md) is built once; validation's whole tiles
        # of many sizes run eagerly. A bound method, not a module, so the state_dict keeps its keys.
        self.train_forward = torch.compile(self.net.forward) if self.compile else self.net.forward

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(x.contiguous(memory_format=self.memory_format))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, masks = batch
        loss, seg, dec = self.loss(
            *self.train_forward(images.contiguous(memory_format=self.memory_format)), masks
        )
        parts = {"train/loss": loss, "train/seg_loss": seg, "train/tile_loss": dec}
        self.log_dict(parts, on_step=False, on_epoch=True, batch_size=len(images))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, masks = batch
        logits, tile = native_logits(self, images, self.net.multiple, self.scale)
        logits, tile = logits.float(), tile.float()
        loss, _, _ = self.loss(logits, tile, masks)
        self.log("val/loss", loss, on_step=False, on_epoch=True, batch_size=len(images), sync_dist=True)
        self.val_curve.update(torch.sigmoid(logits).flatten(), (masks >= 0.5).flatten().int())
        labels = tile_labels(masks).int()
        self.val_tile_ap.update(torch.sigmoid(tile), labels)
        self.val_tile_auroc.update(torch.sigmoid(tile), labels)

    def on_validation_epoch_end(self) -> None:
        precision, recall, _ = self.val_curve.compute()  # reduced across ranks by torchmetrics
        # Dice is F1; a threshold that predicts nothing gives 0/0 (NaN), which counts as 0.
        dice = float(torch.nan_to_num(2 * precision * recall / (precision + recall)).max())
        ap, auroc = float(self.val_tile_ap.compute()), float(self.val_tile_auroc.compute())
        for metric in (self.val_curve, self.val_tile_ap, self.val_tile_auroc):
            metric.reset()
        score = (dice + ap) / 2
        if not self.trainer.sanity_checking:
            self.best_score = max(self.best_score, score)
        self.log_dict(
            {"val/pixel_dice_max": dice, "val/tile_ap": ap, "val/tile_auroc": auroc, "val/score": score},
            prog_bar=True,
        )
        self.log("val/score_best", self.best_score)

    def configure_optimizers(self):
        p = self.optimizer_params
        optimizer = torch.optim.AdamW(self.parameters(), lr=p.lr, weight_decay=p.weight_decay)
        if p.schedule == "constant":
            return optimizer
        steps = int(self.trainer.estimated_stepping_batches)
        if p.schedule == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=p.lr, total_steps=steps)
        else:  # cosine (params.yaml's loader allows no other)
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
