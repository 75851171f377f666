"""A batch of plant tiles a person labelled: what the labelling tools write and ``ingest`` reads.

One batch is one folder below ``data/plant/`` (tracked by ``dvc add``, one ``.dvc`` file per batch):
``images/<sha256>.<ext>`` (the image bytes as the service received them), ``masks/<sha256>.png``
(8-bit, 0 = no defect, 1 = defect) and ``labels.csv`` (one :class:`LabelledTile` a row).
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from pathlib import Path

LABELS_FILE = "labels.csv"
FREE_CLASS = "free"  # the class of a tile a person marked defect-free (the public dataset's MT_Free)


@dataclass(frozen=True)
class LabelledTile:
    """One labelled tile; ``image`` and ``mask`` are paths relative to the batch folder."""

    sha256: str  # of the image bytes: the capture's id
    cls: str  # the defect class a person gave it (lower case), or ``free``
    image: str
    mask: str
    height: int
    width: int
    defect_pixels: int
    captured_at: str  # when the service kept it (ISO 8601, UTC)
    model_version: str  # the model that answered
    reason: str  # why the service kept it: uncertain, shadow_disagreement, sampled


def write_labels(batch: Path, tiles: list[LabelledTile]) -> None:
    with open(batch / LABELS_FILE, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[f.name for f in fields(LabelledTile)])
        writer.writeheader()
        writer.writerows(asdict(t) for t in tiles)


def read_labels(batch: Path) -> list[LabelledTile]:
    """The batch's tiles; raises ``ValueError`` naming the file when a column is missing or malformed."""
    path = batch / LABELS_FILE
    names = [f.name for f in fields(LabelledTile)]
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != names:
            raise ValueError(f"{path}: columns {reader.fieldnames}, expected {names}")
        try:
            return [
                LabelledTile(
                    **{
                        **row,
                        "height": int(row["height"]),
                        "width": int(row["width"]),
                        "defect_pixels": int(row["defect_pixels"]),
                    }
                )
                for row in reader
            ]
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: line {reader.line_num}: {err}") from None
