"""LightningDataModule: builds train/val datasets from the ingest and split manifests (never splits)."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from tilescan_training.dataset import TileDataset
from tilescan_training.manifest import read_records, read_split, records_in
from tilescan_training.params import AugmentParams


class TileDataModule(pl.LightningDataModule):
    def __init__(
        self,
        data_dir: Path,
        split_csv: Path,
        working_size: tuple[int, int],
        batch_size: int,
        num_workers: int = 0,
        augment: AugmentParams | None = None,
    ) -> None:
        super().__init__()
        self.data_dir = Path(data_dir)
        self.split_csv = Path(split_csv)
        self.working_size = working_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.augment = augment

    def setup(self, stage: str | None = None) -> None:
        records = read_records(self.data_dir / "manifest.csv")
        entries = read_split(self.split_csv)
        self.train_set = TileDataset(
            records_in("train", records, entries), self.data_dir, self.working_size, self.augment
        )
        self.val_set = TileDataset(records_in("val", records, entries), self.data_dir, self.working_size)

    def _loader(self, dataset: TileDataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=shuffle and len(dataset) > self.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)
