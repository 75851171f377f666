"""The network: a plain U-Net with a tile decision head, built from scratch (no pretrained weights needed).

The U-Net draws the defect mask; the decision head answers "does this tile have a defect at all" from the
U-Net's deepest features and its own segmentation output, as in the segmentation-decision networks of
Tabernik et al. 2019 and Božič et al. 2021 ("Mixed supervision for surface-defect detection"). Both are
trained jointly; the head sees the whole tile, so it can tell the bright corner of a defect-free tile from
the broken edge of a Break tile, which a per-pixel rule cannot.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def _global_pool(x: torch.Tensor) -> list[torch.Tensor]:
    """Max and mean over the spatial axes: a whole-tile summary that holds for any tile size."""
    return [x.amax(dim=(2, 3)), x.mean(dim=(2, 3))]


class DecisionHead(nn.Module):
    """Tile logit ``[N]`` from the U-Net's bottleneck, its last decoder features and its mask logits.

    The decoder features and mask logits are pooled 4x first and convolved twice, so the head costs a few
    percent of the U-Net. The mask logits enter detached: the decision must not bend the segmentation to
    suit itself (Božič et al.'s gradient-flow adjustment).
    """

    def __init__(self, deep_channels: int, feature_channels: int, hidden: int = 16) -> None:
        super().__init__()
        self.reduce = nn.Sequential(
            nn.MaxPool2d(4),
            _block(feature_channels + 1, hidden),
        )
        self.classify = nn.Linear(2 * deep_channels + 2 * hidden + 2, 1)

    def forward(self, deep: torch.Tensor, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.detach()
        local = self.reduce(torch.cat([features, logits], dim=1))
        pooled = _global_pool(deep) + _global_pool(local) + _global_pool(logits)
        return self.classify(torch.cat(pooled, dim=1).float()).squeeze(1)


class UNet(nn.Module):
    """U-Net for one-channel images in [0, 1]: ``(mask logits [N, 1, H, W], tile logits [N])``.

    ``depth`` poolings halve the resolution each time, so input sides must be multiples of
    ``2**depth`` (and of 4 for the decision head); channels double at each level, starting from
    ``base_channels``. ``prior`` is the defect probability the untrained network predicts per pixel.
    """

    def __init__(self, base_channels: int = 16, depth: int = 4, prior: float = 0.01) -> None:
        super().__init__()
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([_block(1, widths[0])])
        self.down.extend(_block(widths[i], widths[i + 1]) for i in range(depth))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth))
        )
        self.merge = nn.ModuleList(_block(2 * widths[i], widths[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], 1, 1)
        # Start from the defect prior instead of p = 0.5 everywhere: defects cover ~1% of the pixels,
        # and a 0.5 start spends the first epochs unlearning false positives (RetinaNet's trick).
        nn.init.constant_(self.head.bias, math.log(prior / (1 - prior)))
        self.decision = DecisionHead(widths[depth], widths[0])
        self.multiple = max(2**depth, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Centre the [0, 1] input; BatchNorm then learns the rest of the scaling.
        x = (x - 0.5) / 0.25
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        deep = skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        logits = self.head(x)
        return logits, self.decision(deep, x, logits)
