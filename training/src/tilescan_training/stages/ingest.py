"""Stage ``ingest``: read the upstream dataset (archive URL, local zip or folder) and the plant tiles
people labelled (``ingest.plant``: one folder per batch, :mod:`tilescan_shared.labelled`), validate every
image/mask pair, and write a normalised copy plus a manifest.

Output (``data/ingested``): ``images/<class>/<stem>.png`` (8-bit gray), ``masks/<class>/<stem>.png``
(0/1), ``manifest.csv`` (class, size, defect pixels, source checksums, origin: ``public`` or
``plant/<batch>``). A plant tile's stem is ``plant-<first 16 hex digits of its sha256>``; a tile labelled
again in a later batch (batches sort by name) takes the later label.

The source is checked before anything is written: every file below an ``MT_*`` folder must be
``MT_<Class>/Imgs/<name>.jpg|png``, each tile id (``<class>/<name>``, compared case-insensitively)
must come from exactly one image and one mask, zip members and images have size caps, and an archive
matches ``ingest.sha256`` (required for http(s) URLs). Every bad file is reported, by name, at once.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tilescan_shared.image import DEFAULT_MAX_PIXELS, ImageError, decode_gray
from tilescan_shared.labelled import LABELS_FILE, LabelledTile, read_labels
from tilescan_training.fetch import FetchError, fetch
from tilescan_training.manifest import FREE_CLASS, PUBLIC, Record, write_records
from tilescan_training.params.ingest import IngestParams
from tilescan_training.params.loading import load_section

# Upstream layout: MT_<Class>/Imgs/<stem>.jpg (photo) + <stem>.png (mask), possibly below one top folder.
_MEMBER = re.compile(r"(?:^|/)(MT_[A-Za-z]+)/Imgs/([^/]+)\.(jpg|png)$")
# Any file below a folder named like a class folder must follow the layout; other files are ignored.
_IN_CLASS_FOLDER = re.compile(r"(?:^|/)mt_[^/]*/", re.IGNORECASE)
_MASK_MODES = {"1", "L", "I;16", "I"}
# Upstream files are tens of kB; a larger member is not a tile (or is a zip bomb), so it is never read.
MAX_FILE_BYTES = 16 * 2**20
MAX_PIXELS = DEFAULT_MAX_PIXELS

Reader = Callable[[], bytes]


class IngestError(ValueError):
    """The source data is not usable; the message names every bad file."""


@dataclass(frozen=True)
class SourceFile:
    """One file of the source: its path there (folder-relative or zip member name), size and reader."""

    path: str
    size: int
    read: Reader


@dataclass(frozen=True)
class Member:
    """A file in the upstream layout: ``MT_<Class>/Imgs/<stem>.<ext>``."""

    file: SourceFile
    folder: str
    stem: str
    ext: str

    @property
    def tile_id(self) -> str:
        return f"{class_name(self.folder)}/{self.stem}"


@contextmanager
def open_source(source: str, sha256: str = "") -> Iterator[list[SourceFile]]:
    """Every file of a folder, a local zip or a zip URL, once the archive matches ``sha256`` if given."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = fetch(source, sha256, Path(tmp))
        except FetchError as err:
            raise IngestError(str(err)) from None
        if path.is_dir():
            yield [
                SourceFile(p.relative_to(path).as_posix(), p.stat().st_size, p.read_bytes)
                for p in sorted(path.rglob("*"))
                if p.is_file()
            ]
        elif path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                # by ZipInfo, not by name: an archive may hold the same name twice
                yield [
                    SourceFile(info.filename, info.file_size, lambda info=info: archive.read(info))
                    for info in archive.infolist()
                    if not info.is_dir()
                ]
        else:
            raise IngestError(f"data source {source!r} is neither a folder, a zip file nor a URL")


def class_name(folder: str) -> str:
    """``MT_Blowhole`` -> ``blowhole``; ``MT_Free`` -> ``free``."""
    return folder.removeprefix("MT_").lower()


def pair_members(files: list[SourceFile]) -> tuple[list[tuple[Member, Member]], list[str]]:
    """(image, mask) pairs by tile id, and a message for every file that cannot be part of one."""
    errors: list[str] = []
    by_id: dict[str, dict[str, list[Member]]] = {}
    for file in files:
        if m := _MEMBER.search(file.path):
            member = Member(file, m.group(1), m.group(2), m.group(3))
            by_id.setdefault(member.tile_id.casefold(), {"jpg": [], "png": []})[member.ext].append(member)
        elif _IN_CLASS_FOLDER.search(file.path):
            errors.append(f"{file.path}: not in the layout MT_<Class>/Imgs/<name>.jpg|png")
    pairs: list[tuple[Member, Member]] = []
    for key in sorted(by_id):
        images, masks = by_id[key]["jpg"], by_id[key]["png"]
        duplicates = [m for group in (images, masks) if len(group) > 1 for m in group]
        too_large = [m for m in images + masks if m.file.size > MAX_FILE_BYTES]
        errors.extend(
            f"{m.file.path}: {m.file.size} bytes, more than the {MAX_FILE_BYTES} a tile file may have"
            for m in too_large
        )
        if duplicates:
            paths = ", ".join(m.file.path for m in duplicates)
            errors.append(f"tile {duplicates[0].tile_id} comes from more than one file: {paths}")
        elif not masks:
            errors.append(f"{images[0].file.path}: image without a mask {images[0].stem}.png")
        elif not images:
            errors.append(f"{masks[0].file.path}: mask without an image {masks[0].stem}.jpg")
        elif not too_large:
            pairs.append((images[0], masks[0]))
    return pairs, errors


def _read(member: Member) -> bytes:
    try:
        return member.file.read()
    except (OSError, zipfile.BadZipFile) as err:  # e.g. a zip member whose data does not match its header
        raise IngestError(f"{member.file.path}: unreadable ({err})") from None


def _read_mask(data: bytes, where: str) -> np.ndarray:
    try:
        img = Image.open(io.BytesIO(data))
    except Exception as err:
        raise IngestError(f"{where}: unreadable mask ({err})") from None
    if img.width * img.height > MAX_PIXELS:
        raise IngestError(f"{where}: mask has {img.width}x{img.height} pixels, more than {MAX_PIXELS}")
    try:
        img.load()
    except Exception as err:
        raise IngestError(f"{where}: unreadable mask ({err})") from None
    if img.mode not in _MASK_MODES:
        raise IngestError(f"{where}: mask has mode {img.mode}, expected one single-channel image")
    return np.asarray(img)


def ingest(source: str, out_dir: Path, sha256: str = "", plant: Path | None = None) -> list[Record]:
    """Validate and normalise every pair of ``source`` and of the ``plant`` batches into ``out_dir``, and
    write its manifest; raise listing all bad files (then no manifest is written)."""
    with open_source(source, sha256) as files:
        pairs, errors = pair_members(files)
        if not pairs and not errors:
            raise IngestError(f"no MT_*/Imgs/*.jpg|png files found in {source!r}")
        records: list[Record] = []
        for image, mask in pairs:
            try:
                records.append(
                    _normalise(
                        _read(image),
                        _read(mask),
                        class_name(image.folder),
                        image.stem,
                        PUBLIC,
                        image.file.path,
                        mask.file.path,
                        out_dir,
                    )
                )
            except IngestError as err:
                errors.append(str(err))
    if errors:
        raise IngestError(f"{len(errors)} bad file(s) in {source}:\n  " + "\n  ".join(errors))
    if plant is not None:
        # A plant tile that is a public tile (same bytes) keeps its public label and split: a public
        # test tile must never reach training through the plant.
        records += ingest_plant(plant, out_dir, skip={r.image_sha256 for r in records})
    write_records(out_dir / "manifest.csv", records)
    return records


def ingest_plant(folder: Path, out_dir: Path, skip: set[str] = frozenset()) -> list[Record]:
    """Every labelled batch below ``folder`` (a folder with a ``labels.csv``), normalised into ``out_dir``,
    but the tiles whose sha256 is in ``skip``."""
    latest: dict[str, tuple[Path, LabelledTile]] = {}
    errors: list[str] = []
    batches = sorted(p.parent for p in folder.glob(f"*/{LABELS_FILE}")) if folder.is_dir() else []
    for batch in batches:
        try:
            tiles = read_labels(batch)
        except ValueError as err:
            errors.append(str(err))
            continue
        for tile in tiles:
            if problem := _bad_label(batch, tile):
                errors.append(f"{batch / LABELS_FILE}: tile {tile.sha256[:16]}: {problem}")
            elif tile.sha256 not in skip:
                latest[tile.sha256] = (batch, tile)
    records: list[Record] = []
    for batch, tile in latest.values():
        image_path, mask_path = batch / tile.image, batch / tile.mask
        try:
            record = _normalise(
                _read_file(image_path),
                _read_file(mask_path),
                tile.cls,
                f"plant-{tile.sha256[:16]}",
                f"plant/{batch.name}",
                str(image_path),
                str(mask_path),
                out_dir,
            )
        except IngestError as err:
            errors.append(str(err))
            continue
        if record.image_sha256 != tile.sha256:
            errors.append(f"{image_path}: sha256 {record.image_sha256}, labels.csv says {tile.sha256}")
        records.append(record)
    if errors:
        raise IngestError(f"{len(errors)} bad file(s) in {folder}:\n  " + "\n  ".join(errors))
    return sorted(records, key=lambda r: r.id)


_CLASS = re.compile(r"^[a-z]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _bad_label(batch: Path, tile: LabelledTile) -> str | None:
    """Why a row of ``labels.csv`` cannot be used (its values become file names), or ``None``."""
    if not _SHA256.match(tile.sha256):
        return "sha256 is not 64 lower-case hex digits"
    if not _CLASS.match(tile.cls):
        return f"class {tile.cls!r} is not a lower-case word"
    for rel in (tile.image, tile.mask):
        if not (batch / rel).resolve().is_relative_to(batch.resolve()):
            return f"{rel} lies outside the batch folder"
    return None


def _read_file(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise IngestError(f"{path}: {size} bytes, more than the {MAX_FILE_BYTES} a tile file may have")
        return path.read_bytes()
    except OSError as err:
        raise IngestError(f"{path}: unreadable ({err.strerror})") from None


def _normalise(
    image_bytes: bytes,
    mask_bytes: bytes,
    cls: str,
    name: str,
    origin: str,
    image_path: str,
    mask_path: str,
    out_dir: Path,
) -> Record:
    """Check one image/mask pair and write it, gray and 0/1, as ``images|masks/<cls>/<name>.png``."""
    try:
        image = decode_gray(image_bytes, max_pixels=MAX_PIXELS)
    except ImageError as err:
        raise IngestError(f"{image_path}: {err}") from None
    mask = _read_mask(mask_bytes, mask_path)
    if mask.shape != image.shape:
        raise IngestError(
            f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
            f"{image.shape[1]}x{image.shape[0]}"
        )
    # Masks have soft edges (0-255): every pixel > 0 is defect, as in the upstream reference project.
    binary = (mask > 0).astype(np.uint8)
    if cls == FREE_CLASS and binary.any():
        raise IngestError(f"{mask_path}: a defect-free tile's mask marks {int(binary.sum())} defect pixels")
    rel_image, rel_mask = f"images/{cls}/{name}.png", f"masks/{cls}/{name}.png"
    for rel, arr in ((rel_image, image), (rel_mask, binary)):
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr, mode="L").save(target)
    return Record(
        id=f"{cls}/{name}",
        cls=cls,
        image=rel_image,
        mask=rel_mask,
        height=image.shape[0],
        width=image.shape[1],
        defect_pixels=int(binary.sum()),
        image_sha256=hashlib.sha256(image_bytes).hexdigest(),
        mask_sha256=hashlib.sha256(mask_bytes).hexdigest(),
        origin=origin,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="data/ingested", type=Path)
    args = parser.parse_args()
    params = load_section(args.params, "ingest", IngestParams)
    if args.out.exists():
        shutil.rmtree(args.out)
    try:
        records = ingest(params.source, args.out, params.sha256, Path(params.plant))
    except IngestError as err:
        sys.exit(f"ingest: {err}")
    counts: dict[str, int] = {}
    for r in records:
        counts[r.cls] = counts.get(r.cls, 0) + 1
    plant = sum(r.from_plant for r in records)
    print(f"ingested {len(records) - plant} tiles from {params.source}, {plant} from {params.plant}:", counts)


if __name__ == "__main__":
    main()
