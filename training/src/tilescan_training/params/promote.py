"""``params.yaml``'s ``promote:``: the rules of ``make gate`` and ``make promote`` (not a stage's; evaluate
reads ``min_improvement``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PromoteParams:
    """Rules of ``make gate`` (:mod:`tilescan_training.promotion.gate`)."""

    metrics_file: str
    # What `dvc repro` proposes (evaluate's output) and what is served; the second changes only through
    # `make promote`, which gates the first against it.
    candidate_file: str
    model_file: str
    # Higher is better; it must reach `floor` and beat the baseline by `min_improvement`.
    primary: str
    min_improvement: float
    floor: float
    # Metric -> largest allowed regression against the baseline.
    guards: dict[str, float]
    # Guards for which a rise is the regression.
    lower_is_better: tuple[str, ...]
