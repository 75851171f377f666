"""Stage ``ingest``: read the upstream dataset (archive URL, local zip or folder), validate every
image/mask pair, and write a normalised copy plus a manifest.

Output (``data/ingested``): ``images/<class>/<stem>.png`` (8-bit gray), ``masks/<class>/<stem>.png``
(0/1), ``manifest.csv`` (class, size, defect pixels, source checksums).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from tilescan_shared.image import ImageError, decode_gray
from tilescan_training.manifest import FREE_CLASS, Record, write_records
from tilescan_training.params import load_params

# Upstream layout: MT_<Class>/Imgs/<stem>.jpg (photo) + <stem>.png (mask), possibly below one top folder.
_MEMBER = re.compile(r"(?:^|/)(MT_[A-Za-z]+)/Imgs/([^/]+)\.(jpg|png)$")
_MASK_MODES = {"1", "L", "I;16", "I"}

Reader = Callable[[], bytes]


class IngestError(ValueError):
    """The source data is not usable; the message names every bad file."""


@contextmanager
def open_source(source: str) -> Iterator[dict[str, Reader]]:
    """Yield ``{"MT_Class/Imgs/name.ext": reader}`` for a folder, a local zip or a zip URL."""
    if "://" in source:
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "dataset.zip"
            with urllib.request.urlopen(source) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
            with _open_zip(archive) as files:
                yield files
        return
    path = Path(source)
    if path.is_dir():
        yield {
            f"{m.group(1)}/Imgs/{m.group(2)}.{m.group(3)}": p.read_bytes
            for p in sorted(path.glob("MT_*/Imgs/*"))
            if (m := _MEMBER.search(p.relative_to(path).as_posix()))
        }
    elif path.is_file() and zipfile.is_zipfile(path):
        with _open_zip(path) as files:
            yield files
    else:
        raise IngestError(f"data source {source!r} is neither a folder, a zip file nor a URL")


@contextmanager
def _open_zip(path: Path) -> Iterator[dict[str, Reader]]:
    with zipfile.ZipFile(path) as archive:
        files: dict[str, Reader] = {}
        for name in archive.namelist():
            if m := _MEMBER.search(name):
                files[f"{m.group(1)}/Imgs/{m.group(2)}.{m.group(3)}"] = lambda n=name: archive.read(n)
        yield files


def class_name(folder: str) -> str:
    """``MT_Blowhole`` -> ``blowhole``; ``MT_Free`` -> ``free``."""
    return folder.removeprefix("MT_").lower()


def _read_mask(data: bytes, where: str) -> np.ndarray:
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception as err:
        raise IngestError(f"{where}: unreadable mask ({err})") from None
    if img.mode not in _MASK_MODES:
        raise IngestError(f"{where}: mask has mode {img.mode}, expected one single-channel image")
    return np.asarray(img)


def ingest(source: str, out_dir: Path) -> list[Record]:
    """Validate and normalise every pair of ``source`` into ``out_dir``; raise listing all bad files."""
    with open_source(source) as files:
        if not files:
            raise IngestError(f"no MT_*/Imgs/*.jpg|png files found in {source!r}")
        stems = sorted({name.rsplit(".", 1)[0] for name in files})
        errors: list[str] = []
        records: list[Record] = []
        for stem in stems:
            image_name, mask_name = f"{stem}.jpg", f"{stem}.png"
            if image_name not in files:
                errors.append(f"{mask_name}: mask without an image {image_name}")
                continue
            if mask_name not in files:
                errors.append(f"{image_name}: image without a mask {mask_name}")
                continue
            try:
                records.append(_ingest_pair(stem, files[image_name](), files[mask_name](), out_dir))
            except IngestError as err:
                errors.append(str(err))
    if errors:
        raise IngestError(f"{len(errors)} bad file(s) in {source}:\n  " + "\n  ".join(errors))
    write_records(out_dir / "manifest.csv", records)
    return records


def _ingest_pair(stem: str, image_bytes: bytes, mask_bytes: bytes, out_dir: Path) -> Record:
    folder, _, name = stem.split("/")
    cls = class_name(folder)
    try:
        image = decode_gray(image_bytes, max_pixels=None)
    except ImageError as err:
        raise IngestError(f"{stem}.jpg: {err}") from None
    mask = _read_mask(mask_bytes, f"{stem}.png")
    if mask.shape != image.shape:
        raise IngestError(
            f"{stem}.png: mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
            f"{image.shape[1]}x{image.shape[0]}"
        )
    # Masks have soft edges (0-255): every pixel > 0 is defect, as in the upstream reference project.
    binary = (mask > 0).astype(np.uint8)
    if cls == FREE_CLASS and binary.any():
        raise IngestError(f"{stem}.png: a defect-free tile's mask marks {int(binary.sum())} defect pixels")
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
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="data/ingested", type=Path)
    args = parser.parse_args()
    params = load_params(args.params).ingest
    if args.out.exists():
        shutil.rmtree(args.out)
    records = ingest(params.source, args.out)
    counts: dict[str, int] = {}
    for r in records:
        counts[r.cls] = counts.get(r.cls, 0) + 1
    print(f"ingested {len(records)} tiles from {params.source}: {counts}")


if __name__ == "__main__":
    main()
