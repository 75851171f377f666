"""The capture store: tiles the service kept for a person to label, read back by the labelling tools.

A capture is the image bytes as received (``images/<sha256>``) and a record (``captures/<sha256>.json``):
why it was kept, when, the model's version and its answer (mask as RLE, score, ``has_defect``). Nothing
about the client is stored. The store is a directory or any fsspec URL (``s3://bucket/prefix``); the
content hash names a capture, so the same tile is stored once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import fsspec

# Why a tile was kept.
UNCERTAIN, SHADOW_DISAGREEMENT, SAMPLED = "uncertain", "shadow_disagreement", "sampled"


@dataclass(frozen=True)
class CaptureRecord:
    """The JSON stored beside a captured image: every field there is, by design nothing about the client."""

    sha256: str
    reason: str
    captured_at: str  # ISO 8601, UTC
    model_version: str
    image_bytes: int
    height: int
    width: int
    has_defect: bool
    score: float
    threshold: float
    rle: dict[str, Any]


class CaptureStore:
    """Captures in an fsspec location: ``images/<sha256>`` and ``captures/<sha256>.json``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.root = self.root.rstrip("/")

    def write(self, image: bytes, record: CaptureRecord) -> bool:
        """Store one capture; ``False`` when a capture of the same image is there already."""
        meta = f"{self.root}/captures/{record.sha256}.json"
        if self.fs.exists(meta):
            return False
        self.fs.makedirs(f"{self.root}/images", exist_ok=True)
        self.fs.makedirs(f"{self.root}/captures", exist_ok=True)
        self.fs.pipe_file(f"{self.root}/images/{record.sha256}", image)
        # The record last: a record always has its image (a crash between the two leaves an orphan image).
        self.fs.pipe_file(meta, json.dumps(asdict(record)).encode())
        return True

    def records(self) -> Iterator[CaptureRecord]:
        """Every stored capture's record."""
        for path in sorted(self.fs.glob(f"{self.root}/captures/*.json")):
            yield CaptureRecord(**json.loads(self.fs.cat_file(path)))

    def image(self, sha256: str) -> bytes:
        return bytes(self.fs.cat_file(f"{self.root}/images/{sha256}"))
