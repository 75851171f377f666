"""The pipeline's bookkeeping files: the ingest manifest and the split manifest (both CSV)."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import get_type_hints

from tilescan_shared.labelled import FREE_CLASS

PUBLIC = "public"  # a tile's origin: the public dataset, or ``plant/<batch>`` (tilescan_shared.labelled)


@dataclass(frozen=True)
class Record:
    """One ingested tile; ``image`` and ``mask`` are paths relative to the ingest folder."""

    id: str
    cls: str
    image: str
    mask: str
    height: int
    width: int
    defect_pixels: int
    image_sha256: str
    mask_sha256: str
    origin: str = PUBLIC

    @property
    def has_defect(self) -> bool:
        return self.cls != FREE_CLASS

    @property
    def from_plant(self) -> bool:
        return self.origin != PUBLIC


@dataclass(frozen=True)
class SplitEntry:
    id: str
    cls: str
    split: str  # "train", "val", "test", "plant_test" or "unused"


def _write(path: Path, rows: list, row_type: type) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[f.name for f in fields(row_type)])
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)


def _read(path: Path, row_type: type) -> list:
    types = get_type_hints(row_type)
    with open(path, newline="") as f:
        return [row_type(**{k: types[k](v) for k, v in row.items()}) for row in csv.DictReader(f)]


def write_records(path: Path, records: list[Record]) -> None:
    _write(path, records, Record)


def read_records(path: Path) -> list[Record]:
    return _read(path, Record)


def write_split(path: Path, entries: list[SplitEntry]) -> None:
    _write(path, entries, SplitEntry)


def read_split(path: Path) -> list[SplitEntry]:
    return _read(path, SplitEntry)


def records_in(split: str, records: list[Record], entries: list[SplitEntry]) -> list[Record]:
    """The records assigned to ``split``, in manifest order."""
    wanted = {e.id for e in entries if e.split == split}
    return [r for r in records if r.id in wanted]
