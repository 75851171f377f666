"""The inference graph exported to ONNX, and the native-resolution forward pass it shares with training.

A tile is never squashed to a square: it is scaled by one fixed factor (``train.scale``, 1 = native
pixels), padded on the bottom and right to the network's stride, run through the fully convolutional
network, cropped back and, when scaled, resized to the input's size. Validation runs this same
function, so the number that picks the checkpoint is measured the way the service predicts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def scale_pixels(image: torch.Tensor) -> torch.Tensor:
    """``uint8`` pixels to float in [0, 1]."""
    return image.float() / 255.0


def rescale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Bilinear resize of a float ``[N, C, H, W]`` tensor by ``scale`` (identity at 1)."""
    if scale == 1.0:
        return x
    return F.interpolate(
        x, scale_factor=scale, mode="bilinear", align_corners=False, recompute_scale_factor=True
    )


def native_logits(
    net: nn.Module, x: torch.Tensor, multiple: int, scale: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask logits ``[N, 1, H, W]`` and tile logits ``[N]`` for float images ``[N, 1, H, W]`` in [0, 1].

    Any size: replicate padding (not zeros) keeps the border statistics of a real tile and is defined
    for any size, even one smaller than the padding.
    """
    height, width = x.shape[-2:]
    x = rescale(x, scale)
    h, w = x.shape[-2:]
    x = F.pad(x, (0, (-w) % multiple, 0, (-h) % multiple), mode="replicate")
    logits, tile = net(x)
    logits = logits[..., :h, :w]
    if scale != 1.0:
        logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
    return logits, tile


class InferenceGraph(nn.Module):
    """``uint8 [N, 1, H, W]`` -> ``float32`` defect probability ``[N, 1, H, W]`` and tile score ``[N]``.

    Any ``H``, ``W``; the outputs are the model contract of :mod:`tilescan_shared.predictor`.
    """

    def __init__(self, net: nn.Module, multiple: int, scale: float = 1.0, flip_tta: bool = False) -> None:
        super().__init__()
        self.net = net
        self.multiple = multiple
        self.scale = scale
        self.flip_tta = flip_tta

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = scale_pixels(image)
        logits, tile = native_logits(self.net, x, self.multiple, self.scale)
        if self.flip_tta:
            flipped, flipped_tile = native_logits(self.net, x.flip(-1), self.multiple, self.scale)
            logits, tile = (logits + flipped.flip(-1)) / 2, (tile + flipped_tile) / 2
        return torch.sigmoid(logits), torch.sigmoid(tile)
