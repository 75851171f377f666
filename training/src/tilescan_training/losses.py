"""Segmentation losses: a weighted sum of (focal) BCE and soft Dice."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tilescan_training.params import LossParams


class SegmentationLoss(nn.Module):
    """``bce_weight * focal-BCE + dice_weight * soft-Dice`` on logits and soft [0, 1] targets.

    Soft Dice is computed over the whole batch (micro), so defect-free tiles in a batch do not
    produce the undefined 0/0 of a per-image Dice.
    """

    def __init__(self, params: LossParams) -> None:
        super().__init__()
        self.params = params
        self.register_buffer("pos_weight", torch.tensor(params.pos_weight))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = self.params
        bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=self.pos_weight, reduction="none")
        prob = torch.sigmoid(logits)
        if p.focal_gamma > 0:
            p_true = prob * target + (1 - prob) * (1 - target)
            bce = bce * (1 - p_true) ** p.focal_gamma
        inter = (prob * target).sum()
        dice = 1 - (2 * inter + 1) / (prob.sum() + target.sum() + 1)
        return p.bce_weight * bce.mean() + p.dice_weight * dice
