"""Tiles as tensors: fixed-size training crops at the model's scale, whole native tiles for validation.

Every tile is decoded once, when the dataset is built, and held in memory as ``uint8`` (about 100 kB a
tile, 160 MB for the public training split): an epoch reads no file and decodes no image, and crops are
cut from the held arrays. (Decoding a JPEG and its PNG mask per sample was a third of a training step
on the 2-core CPU; see docs/benchmarks.md, "Training".)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tilescan_shared.image import read_gray
from tilescan_training.graph import rescale, scale_pixels
from tilescan_training.manifest import Record
from tilescan_training.params.train import AugmentParams


class TileDataset(torch.utils.data.Dataset):
    """``(image, mask)`` pairs, ``float32 [1, H, W]``, images in [0, 1], masks 0/1 (soft when scaled).

    With ``crop_size`` (training): each tile is scaled by ``scale`` exactly as the exported graph
    scales it, then a ``crop_size`` window is cut; with probability ``augment.defect_focus`` the window
    is placed over a random defect pixel, so a blowhole a few pixels wide is not a rare sight; otherwise,
    with probability ``augment.edge_focus``, in a random corner of the tile, so that the borders of
    defect-free tiles are seen as often as the broken edges of defect tiles (without it, tile corners
    became false alarms). Tiles smaller than the window are replicate-padded (the graph pads the same
    way) with mask 0. Without ``crop_size`` (validation): whole tiles at native resolution, for the same
    forward pass the service runs.
    """

    def __init__(
        self,
        records: list[Record],
        root: Path,
        crop_size: tuple[int, int] | None = None,
        scale: float = 1.0,
        augment: AugmentParams | None = None,
    ) -> None:
        self.records = records
        self.crop_size = tuple(crop_size) if crop_size else None
        self.scale = scale
        self.augment = augment
        root = Path(root)
        self.images = [torch.from_numpy(read_gray(root / r.image))[None] for r in records]
        self.masks = [
            torch.from_numpy((read_gray(root / r.mask) > 0).astype(np.uint8))[None] for r in records
        ]
        if self.crop_size is not None and scale != 1.0:
            # Scaled once here, as the graph scales each tile (bilinear), and held as uint8 again.
            self.images = [_rescale_uint8(i, scale) for i in self.images]
            self.masks = [_rescale_uint8(m * 255, scale) for m in self.masks]
        # Where the defect pixels are, found once: defect-focused crops pick one of them.
        threshold = 128 if self.crop_size is not None and scale != 1.0 else 1
        self.defects = [torch.nonzero(m[0] >= threshold) for m in self.masks]
        self.mask_scale = 255.0 if threshold == 128 else 1.0

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.images[index], self.masks[index]
        if self.crop_size is not None:
            focus = (self.augment.defect_focus, self.augment.edge_focus) if self.augment else (0.0, 0.0)
            image, mask = _crop(image, mask, self.defects[index], self.crop_size, *focus)
        image, mask = scale_pixels(image), mask.float() / self.mask_scale
        if self.crop_size is not None and self.augment is not None:
            image, mask = _flip_and_jitter(image, mask, self.augment)
        return image, mask


def _rescale_uint8(t: torch.Tensor, scale: float) -> torch.Tensor:
    return rescale(t[None].float(), scale)[0].round().clamp(0, 255).to(torch.uint8)


def _crop(
    image: torch.Tensor,
    mask: torch.Tensor,
    defects: torch.Tensor,
    size: tuple[int, int],
    defect_focus: float,
    edge_focus: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``size`` window of ``uint8 [1, H, W]`` tensors, padded where the tile is smaller."""
    ch, cw = size
    pad_h, pad_w = max(0, ch - image.shape[-2]), max(0, cw - image.shape[-1])
    if pad_h or pad_w:
        image = F.pad(image[None].float(), (0, pad_w, 0, pad_h), mode="replicate")[0].to(torch.uint8)
        mask = F.pad(mask, (0, pad_w, 0, pad_h))
    height, width = image.shape[-2:]
    if len(defects) and torch.rand(1).item() < defect_focus:
        # A window that holds a random defect pixel at a random place inside it.
        cy, cx = defects[int(torch.randint(len(defects), (1,)))].tolist()
        y = int(torch.randint(max(0, cy - ch + 1), min(cy, height - ch) + 1, (1,)))
        x = int(torch.randint(max(0, cx - cw + 1), min(cx, width - cw) + 1, (1,)))
    elif torch.rand(1).item() < edge_focus:
        y, x = (height - ch) * int(torch.randint(2, (1,))), (width - cw) * int(torch.randint(2, (1,)))
    else:
        y = int(torch.randint(0, height - ch + 1, (1,)))
        x = int(torch.randint(0, width - cw + 1, (1,)))
    return image[..., y : y + ch, x : x + cw], mask[..., y : y + ch, x : x + cw]


def _flip_and_jitter(
    image: torch.Tensor, mask: torch.Tensor, p: AugmentParams
) -> tuple[torch.Tensor, torch.Tensor]:
    if p.hflip and torch.rand(1).item() < 0.5:
        image, mask = image.flip(-1), mask.flip(-1)
    if p.vflip and torch.rand(1).item() < 0.5:
        image, mask = image.flip(-2), mask.flip(-2)
    if p.brightness or p.contrast:
        mean = image.mean()
        contrast = 1 + p.contrast * (2 * torch.rand(1).item() - 1)
        brightness = p.brightness * (2 * torch.rand(1).item() - 1)
        image = ((image - mean) * contrast + mean + brightness).clamp(0, 1)
    return image, mask
