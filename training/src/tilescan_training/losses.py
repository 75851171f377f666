"""Training losses: (focal) BCE plus soft Dice for the mask, BCE for the tile decision."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tilescan_training.params.train import LossParams


def tile_labels(masks: torch.Tensor) -> torch.Tensor:
    """``1.0`` for each ``[1, H, W]`` mask (crop or tile) that holds a defect pixel, else ``0.0``."""
    return (masks.flatten(1).amax(dim=1) >= 0.5).float()


class SegmentationLoss(nn.Module):
    """``bce_weight * focal-BCE + dice_weight * soft-Dice`` on logits and soft [0, 1] targets.

    Soft Dice (``dice_over``): ``batch``, one Dice over the batch's pixels (micro: the big defects
    weigh most), or ``tile``, the mean of each defect crop's own Dice (a defect-free crop's 0/0 is left
    to the BCE), so a blowhole's few pixels count as much as an Uneven patch: test Blowhole Dice 0.630
    -> 0.796 at the same overall Dice (docs/benchmarks.md, "Model quality").
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
        if p.dice_over == "tile":
            # Per crop, over the crops that hold a defect (a defect-free crop's Dice is 0/0; BCE covers it).
            inter, total = (prob * target).flatten(1).sum(1), (prob + target).flatten(1).sum(1)
            has_defect = target.flatten(1).amax(1) > 0
            per_tile = 1 - (2 * inter + 1) / (total + 1)
            dice = (per_tile * has_defect).sum() / has_defect.sum().clamp(min=1)
        else:
            inter = (prob * target).sum()
            dice = 1 - (2 * inter + 1) / (prob.sum() + target.sum() + 1)
        return p.bce_weight * bce.mean() + p.dice_weight * dice


class SegDecLoss(nn.Module):
    """The joint loss: :class:`SegmentationLoss` on the mask plus ``decision_weight`` x BCE on the tile.

    Returns ``(total, segmentation, decision)`` so both parts can be logged.
    """

    def __init__(self, params: LossParams) -> None:
        super().__init__()
        self.segmentation = SegmentationLoss(params)
        self.decision_weight = params.decision_weight

    def forward(
        self, logits: torch.Tensor, tile_logits: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        seg = self.segmentation(logits, masks)
        dec = F.binary_cross_entropy_with_logits(tile_logits.float(), tile_labels(masks))
        return seg + self.decision_weight * dec, seg, dec
