"""The inference graph exported to ONNX, and the resize it shares with training.

Training feeds the network exactly what the exported graph feeds it: ``uint8`` pixels scaled to
[0, 1] and resized (bilinear) to the working size. The graph then resizes the logits back to the
input's size and applies the sigmoid, so the service only decodes images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def to_working_size(x: torch.Tensor, size: tuple[int, int] | list[int]) -> torch.Tensor:
    """Bilinear resize of a float ``[N, C, H, W]`` tensor to ``size = (H, W)``."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def scale_pixels(image: torch.Tensor) -> torch.Tensor:
    """``uint8`` pixels to float in [0, 1]."""
    return image.float() / 255.0


class InferenceGraph(nn.Module):
    """``uint8 [N, 1, H, W]`` -> ``float32`` defect probability ``[N, 1, H, W]``, for any ``H``, ``W``."""

    def __init__(
        self, net: nn.Module, working_size: tuple[int, int] | list[int], flip_tta: bool = False
    ) -> None:
        super().__init__()
        self.net = net
        self.working_size = tuple(working_size)
        self.flip_tta = flip_tta

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = to_working_size(scale_pixels(image), self.working_size)
        logits = self.net(x)
        if self.flip_tta:
            logits = (logits + self.net(x.flip(-1)).flip(-1)) / 2
        return torch.sigmoid(
            F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)
        )
