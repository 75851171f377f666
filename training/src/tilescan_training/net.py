"""The segmentation network: a plain U-Net, built from scratch (no pretrained weights needed)."""

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


class UNet(nn.Module):
    """U-Net for one-channel images in [0, 1]; returns one-channel defect logits at the input size.

    ``depth`` poolings halve the resolution each time, so input sides must be multiples of
    ``2**depth``; channels double at each level, starting from ``base_channels``. ``prior`` is the
    defect probability the untrained network predicts.
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
        self.multiple = 2**depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Centre the [0, 1] input; BatchNorm then learns the rest of the scaling.
        x = (x - 0.5) / 0.25
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)
