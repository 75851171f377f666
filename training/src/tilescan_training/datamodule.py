"""LightningDataModule: builds train/val datasets from the ingest and split manifests (never splits).

Under DDP, Lightning wraps the training sampler (the class-balanced one too) in a distributed sampler,
so each rank draws its own shard.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Sampler, WeightedRandomSampler

from tilescan_training.dataset import TileDataset
from tilescan_training.manifest import read_records, read_split, records_in
from tilescan_training.params.train import AugmentParams


class TileDataModule(pl.LightningDataModule):
    def __init__(
        self,
        data_dir: Path,
        split_csv: Path,
        crop_size: tuple[int, int],
        batch_size: int,
        num_workers: int = 0,
        augment: AugmentParams | None = None,
        class_balance: float = 0.0,
        scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.data_dir = Path(data_dir)
        self.split_csv = Path(split_csv)
        self.crop_size = crop_size
        self.scale = scale
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.augment = augment
        self.class_balance = class_balance

    def setup(self, stage: str | None = None) -> None:
        records = read_records(self.data_dir / "manifest.csv")
        entries = read_split(self.split_csv)
        self.train_set = TileDataset(
            records_in("train", records, entries), self.data_dir, self.crop_size, self.scale, self.augment
        )
        # Whole tiles of different sizes: validated one at a time.
        self.val_set = TileDataset(records_in("val", records, entries), self.data_dir)

    def _loader(self, dataset: TileDataset, train: bool) -> DataLoader:
        sampler = self._balanced_sampler(dataset) if train and self.class_balance > 0 else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else 1,
            shuffle=train and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=train and len(dataset) > self.batch_size,
        )

    def _balanced_sampler(self, dataset: TileDataset) -> Sampler:
        """Over-represent rare classes (the small Crack/Fray sets) by ``count**-class_balance``."""
        counts = Counter(r.cls for r in dataset.records)
        weights = torch.tensor([counts[r.cls] ** -self.class_balance for r in dataset.records])
        return WeightedRandomSampler(weights, num_samples=len(dataset), replacement=True)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)
