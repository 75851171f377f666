"""Stage ``split``: a deterministic split stratified by class, written as a manifest (no copies).

Public tiles are split as if no plant tile existed, so the public test split, and every number measured
on it, stays comparable across dataset versions. Plant tiles go to train, val or a test split of their
own (``plant_test``) by a hash of their id: a tile keeps its split as later batches arrive.
"""

from __future__ import annotations

import argparse
import hashlib
from collections import defaultdict
from pathlib import Path

import numpy as np

from tilescan_training.manifest import FREE_CLASS, Record, SplitEntry, read_records, write_split
from tilescan_training.params.loading import load_section
from tilescan_training.params.split import SplitParams


def split(records: list[Record], params: SplitParams) -> list[SplitEntry]:
    """Shuffle each class with the seed, then cut test, val and train shares from it.

    The result depends only on the set of ids and the params, not on the order of ``records``.
    Defect-free training tiles beyond ``free_in_train`` are marked ``unused``. Plant tiles: see the module.
    """
    plant = [_plant_entry(r, params) for r in records if r.from_plant]
    by_class: dict[str, list[str]] = defaultdict(list)
    for r in records:
        if not r.from_plant:
            by_class[r.cls].append(r.id)
    entries: list[SplitEntry] = []
    for cls in sorted(by_class):
        ids = sorted(by_class[cls])
        order = np.random.default_rng([params.seed, _stable(cls)]).permutation(len(ids))
        shuffled = [ids[i] for i in order]
        n_test = round(len(ids) * params.test_fraction)
        n_val = round(len(ids) * params.val_fraction)
        n_train = len(ids) - n_test - n_val
        if cls == FREE_CLASS and params.free_in_train >= 0:
            n_train = min(n_train, params.free_in_train)
        for i, id_ in enumerate(shuffled):
            if i < n_test:
                name = "test"
            elif i < n_test + n_val:
                name = "val"
            elif i < n_test + n_val + n_train:
                name = "train"
            else:
                name = "unused"
            entries.append(SplitEntry(id=id_, cls=cls, split=name))
    return sorted(entries + plant, key=lambda e: e.id)


def _plant_entry(record: Record, params: SplitParams) -> SplitEntry:
    """``plant_test``, ``val`` or ``train`` by where the seeded hash of the id falls in [0, 1)."""
    digest = hashlib.sha256(f"{params.seed}:{record.id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < params.test_fraction:
        name = "plant_test"
    elif u < params.test_fraction + params.val_fraction:
        name = "val"
    else:
        name = "train"
    return SplitEntry(id=record.id, cls=record.cls, split=name)


def _stable(text: str) -> int:
    """A seed component from a class name that, unlike ``hash()``, is the same in every process."""
    return int.from_bytes(text.encode(), "little") % (2**32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--manifest", default="data/ingested/manifest.csv", type=Path)
    parser.add_argument("--out", default="data/split.csv", type=Path)
    args = parser.parse_args()
    entries = split(read_records(args.manifest), load_section(args.params, "split", SplitParams))
    write_split(args.out, entries)
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for e in entries:
        table[e.cls][e.split] += 1
    for cls, counts in sorted(table.items()):
        print(f"{cls:>10}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
