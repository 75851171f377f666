"""Tiles as tensors at the working size, with the training-time augmentations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from tilescan_training.graph import scale_pixels, to_working_size
from tilescan_training.manifest import Record
from tilescan_training.params import AugmentParams


class TileDataset(Dataset):
    """``(image, mask)`` pairs, both ``float32 [1, H, W]`` at ``working_size``.

    Images are scaled and resized exactly as the exported graph does it; masks are resized
    bilinearly into soft targets, so a defect thinner than one working pixel still counts.
    """

    def __init__(
        self,
        records: list[Record],
        root: Path,
        working_size: tuple[int, int],
        augment: AugmentParams | None = None,
    ) -> None:
        self.records = records
        self.root = Path(root)
        self.working_size = tuple(working_size)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        record = self.records[index]
        image = torch.from_numpy(_read(self.root / record.image))[None, None]
        mask = torch.from_numpy(_read(self.root / record.mask))[None, None].float()
        if self.augment is not None:
            image, mask = _crop(image, mask, self.augment.min_crop)
        image = to_working_size(scale_pixels(image), self.working_size)[0]
        mask = to_working_size(mask, self.working_size)[0]
        if self.augment is not None:
            image, mask = _flip_and_jitter(image, mask, self.augment)
        return image, mask


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.array(img)


def _crop(image: torch.Tensor, mask: torch.Tensor, min_crop: float) -> tuple[torch.Tensor, torch.Tensor]:
    if min_crop >= 1.0:
        return image, mask
    height, width = image.shape[-2:]
    share = min_crop + (1 - min_crop) * torch.rand(1).item()
    h, w = max(1, round(height * share)), max(1, round(width * share))
    y = int(torch.randint(0, height - h + 1, (1,)))
    x = int(torch.randint(0, width - w + 1, (1,)))
    return image[..., y : y + h, x : x + w], mask[..., y : y + h, x : x + w]


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
