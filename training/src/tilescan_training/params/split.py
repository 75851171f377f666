"""``params.yaml``'s ``split:``: how tiles are dealt into train, val and test (the split stage)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SplitParams:
    seed: int
    val_fraction: float
    test_fraction: float
    # Defect-free tiles in the training split: -1 = all of the free class's training share, 0 = none.
    free_in_train: int
