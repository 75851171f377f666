"""The physical tiles behind the dataset's images, and how the split spreads them (docs/benchmarks.md).

    .venv/bin/python training/benchmarks/tile_siblings.py [--gap 150] [--show free/exp3_num_245792 ...]

The dataset photographs each tile under several lightings (``exp1`` to ``exp6`` in the file names),
a few dozen frame numbers apart. Images of one class whose frame numbers lie within ``--gap`` of the
next one are taken as one tile. The check that the grouping is right: each image's most similar other
image (correlation of 24x32 thumbnails) should be in its group. Prints the group sizes, how many val and
test images have a sibling in train, and the siblings of each ``--show`` image with their splits.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from tilescan_training.manifest import read_records, read_split

FRAME = re.compile(r"num_(\d+)")
THUMBNAIL = (24, 32)  # width, height
SIMILAR = 0.9  # thumbnail correlation above which two images are taken to show one tile


def group_tiles(ids: list[str], classes: dict[str, str], gap: int) -> dict[str, int]:
    """Each image id's tile number: same class, frame numbers within ``gap`` of the previous image's."""
    by_class: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for image_id in ids:
        by_class[classes[image_id]].append((int(FRAME.search(image_id).group(1)), image_id))
    tile_of, tile = {}, -1
    for frames in by_class.values():
        previous = None
        for frame, image_id in sorted(frames):
            if previous is None or frame - previous > gap:
                tile += 1
            tile_of[image_id], previous = tile, frame
    return tile_of


def thumbnails(paths: list[Path]) -> np.ndarray:
    """Zero-mean, unit-norm thumbnails, one row each: their dot products are correlations."""
    rows = []
    for path in paths:
        a = np.asarray(Image.open(path).convert("L").resize(THUMBNAIL), dtype=np.float32).ravel()
        a = a - a.mean()
        rows.append(a / (np.linalg.norm(a) + 1e-6))
    return np.array(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="data/ingested", type=Path)
    parser.add_argument("--split", default="data/split.csv", type=Path)
    parser.add_argument("--gap", default=150, type=int, help="most frame numbers between images of one tile")
    parser.add_argument("--show", nargs="*", default=[], help="image ids whose siblings to list")
    args = parser.parse_args()
    records = {r.id: r for r in read_records(args.data / "manifest.csv") if not r.from_plant}
    split = {e.id: e.split for e in read_split(args.split) if e.id in records}
    ids = sorted(split)
    tile_of = group_tiles(ids, {i: records[i].cls for i in ids}, args.gap)

    members: dict[int, list[str]] = defaultdict(list)
    for image_id in ids:
        members[tile_of[image_id]].append(image_id)
    sizes = Counter(len(m) for m in members.values())
    print(f"{len(ids)} images, {len(members)} tiles; images per tile: {dict(sorted(sizes.items()))}")

    pictures = thumbnails([args.data / records[i].image for i in ids])
    similarity = pictures @ pictures.T
    np.fill_diagonal(similarity, -1.0)
    nearest, best = similarity.argmax(1), similarity.max(1)
    similar = best > SIMILAR
    agree = sum(tile_of[ids[i]] == tile_of[ids[nearest[i]]] for i in np.flatnonzero(similar))
    print(
        f"images whose most similar image correlates above {SIMILAR}: {int(similar.sum())}, "
        f"that image in their tile: {agree}"
    )

    for name in ("val", "test"):
        own = [i for i in ids if split[i] == name]
        with_train = sum(any(split[j] == "train" for j in members[tile_of[i]]) for i in own)
        print(f"{name}: {len(own)} images, {with_train} with the same tile in train")
    for image_id in args.show:
        siblings = ", ".join(f"{j} ({split[j]})" for j in members[tile_of[image_id]] if j != image_id)
        print(f"{image_id} ({split[image_id]}): {siblings or 'none'}")


if __name__ == "__main__":
    main()
