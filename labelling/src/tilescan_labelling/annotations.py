"""``tilescan-label import``: a Label Studio JSON export -> a labelled batch that ``ingest`` reads.

Each task's latest annotation that was not cancelled becomes one tile: the union of its brush strokes
as a 0/1 mask, its class the brush label covering most pixels; a tile ticked "Defect-free", or with
nothing painted, is defect-free with an empty mask. Tasks nobody labelled are skipped and counted.

The export is checked whole before anything is written: every task must name a tile of the capture
store, every stroke must be painted at the captured image's size, every label must be the interface's.
A bad export is refused with one line per problem, and the batch folder is only created (atomically,
by renaming a finished temporary folder) when every tile is good.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from label_studio_sdk.converter.brush import decode_rle
from PIL import Image

from tilescan_labelling.interface import BRUSH, DEFECT_FREE, VERDICT, class_of
from tilescan_shared.captures import CaptureRecord, CaptureStore
from tilescan_shared.labelled import FREE_CLASS, LabelledTile, write_labels

_FORMATS = {"JPEG": "jpg", "PNG": "png", "BMP": "bmp", "TIFF": "tif", "WEBP": "webp"}


class ExportError(ValueError):
    """The Label Studio export cannot be imported; the message names every problem."""


@dataclass(frozen=True)
class Imported:
    batch: Path
    tiles: list[LabelledTile]
    unlabelled: int  # tasks without a finished annotation


def read_export(path: Path) -> list[dict[str, Any]]:
    """The tasks of a Label Studio JSON export (``[{"id", "data", "annotations"}, ...]``)."""
    try:
        tasks = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ExportError(f"{path}: not a Label Studio JSON export ({err})") from None
    if not isinstance(tasks, list) or not all(
        isinstance(t, dict) and isinstance(t.get("data"), dict) for t in tasks
    ):
        raise ExportError(f"{path}: not a Label Studio JSON export (expected a list of tasks with data)")
    return tasks


def latest_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    """The task's most recently updated annotation that was not cancelled, or ``None``."""
    done = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    return max(done, key=lambda a: (str(a.get("updated_at", "")), a.get("id", 0)), default=None)


def mask_of(annotation: dict[str, Any], capture: CaptureRecord) -> tuple[str, np.ndarray]:
    """``(class, 0/1 mask)`` of one annotation; ``ValueError`` naming what does not fit the capture."""
    shape = (capture.height, capture.width)
    results = annotation.get("result") or []
    if any(
        r.get("from_name") == VERDICT and DEFECT_FREE in (r.get("value") or {}).get("choices", [])
        for r in results
    ):
        return FREE_CLASS, np.zeros(shape, np.uint8)
    mask = np.zeros(shape, np.uint8)
    pixels: dict[str, int] = {}
    for r in results:
        if r.get("from_name") != BRUSH:
            continue
        size = (r.get("original_height"), r.get("original_width"))
        if size != shape:
            raise ValueError(
                f"painted on a {size[1]}x{size[0]} image, the captured tile is {shape[1]}x{shape[0]}"
            )
        value = r.get("value") or {}
        if value.get("format") != "rle":
            raise ValueError(f"a {value.get('format')!r} stroke: only brush RLE is read")
        flat = decode_rle(value["rle"])
        if flat.size != shape[0] * shape[1] * 4:
            raise ValueError(
                f"a brush RLE of {flat.size} values, a {shape[1]}x{shape[0]} RGBA image has "
                f"{shape[0] * shape[1] * 4}"
            )
        stroke = flat.reshape(*shape, 4)[:, :, 3] > 0
        for label in value.get("brushlabels") or []:
            cls = class_of(label)
            pixels[cls] = pixels.get(cls, 0) + int(stroke.sum())
        mask |= stroke.astype(np.uint8)
    if not mask.any():
        return FREE_CLASS, mask
    if not pixels:
        raise ValueError("a stroke without a label")
    return max(pixels, key=lambda c: (pixels[c], c)), mask


def import_export(export: Path, store: CaptureStore, plant: Path, batch: str) -> Imported:
    """Read ``export`` against the captures of ``store`` into ``plant/<batch>`` (see the module)."""
    target = plant / batch
    if Path(batch).name != batch or batch.startswith("."):
        raise ExportError(f"batch {batch!r} is not a folder name")
    if target.exists():
        raise ExportError(f"{target} exists already: a batch is written once")
    captures = {r.sha256: r for r in store.records()}
    errors: list[str] = []
    tiles: list[tuple[CaptureRecord, str, np.ndarray]] = []
    unlabelled = 0
    for task in read_export(export):
        where = f"task {task.get('id', '?')}"
        sha = task["data"].get("sha256")
        if sha not in captures:
            errors.append(f"{where}: image {sha!r} is not a capture of {store.url}")
            continue
        annotation = latest_annotation(task)
        if annotation is None:
            unlabelled += 1
            continue
        try:
            cls, mask = mask_of(annotation, captures[sha])
        except (ValueError, KeyError, TypeError, IndexError) as err:  # a stroke as malformed as can be
            errors.append(f"{where} ({sha[:16]}): {err}")
            continue
        tiles.append((captures[sha], cls, mask))
    if errors:
        raise ExportError(
            f"{len(errors)} problem(s) in {export}, nothing imported:\n  " + "\n  ".join(errors)
        )
    plant.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=plant, prefix=f".{batch}."))
    try:
        written = _write_batch(tmp, tiles, store)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Imported(target, written, unlabelled)


def _write_batch(
    folder: Path, tiles: list[tuple[CaptureRecord, str, np.ndarray]], store: CaptureStore
) -> list[LabelledTile]:
    (folder / "images").mkdir()
    (folder / "masks").mkdir()
    rows = []
    for capture, cls, mask in tiles:
        data = store.image(capture.sha256)
        ext = _FORMATS.get(Image.open(io.BytesIO(data)).format or "", "bin")
        image, mask_file = f"images/{capture.sha256}.{ext}", f"masks/{capture.sha256}.png"
        (folder / image).write_bytes(data)
        Image.fromarray(mask).save(folder / mask_file)
        rows.append(
            LabelledTile(
                sha256=capture.sha256,
                cls=cls,
                image=image,
                mask=mask_file,
                height=capture.height,
                width=capture.width,
                defect_pixels=int(mask.sum()),
                captured_at=capture.captured_at,
                model_version=capture.model_version,
                reason=capture.reason,
            )
        )
    write_labels(folder, rows)
    return rows
