"""Input drift: what a tile is summarised by, the bins those numbers are counted in, and how far two
such histograms are apart (the population stability index).

Training's export stage counts the train tiles' statistics, and evaluate the val tiles' tile scores, in
these bins and stores them in the model (``ModelInfo.reference``). The service counts what it is sent
in the same bins: Prometheus histograms for dashboards, and a rolling window compared with the
reference (``tilescan_input_drift_psi``, the alert rule in ``deploy/``); ``make drift-report`` prints
which inputs drifted. One place for the bins, so the two sides always count alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

# Upper bin edges; a last, open bin takes everything above. Gray levels and their spread are 0..255;
# tile areas span 64 px to the 2 Mpx upload limit; the tile score is a probability.
EDGES: dict[str, tuple[float, ...]] = {
    "mean_intensity": (40, 60, 80, 100, 120, 140, 160, 180, 200),
    "contrast": (5, 10, 15, 20, 25, 30, 40, 50, 70),
    "pixels": (3e4, 5e4, 7e4, 9e4, 1.2e5, 1.6e5, 2.5e5, 5e5, 1e6),
    "tile_score": (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
}
INPUT_STATS = ("mean_intensity", "contrast", "pixels")
# The usual reading of the index: below 0.1 stable, 0.1-0.25 a moderate shift, above 0.25 drifted.
DRIFTED = 0.25
# Empty bins would make the index infinite: each share is at least this.
_FLOOR = 1e-4


def tile_stats(gray: np.ndarray) -> dict[str, float]:
    """Mean gray level, its standard deviation (contrast) and the pixel count of one tile."""
    values = gray.astype(np.float32)
    return {
        "mean_intensity": float(values.mean()),
        "contrast": float(values.std()),
        "pixels": float(gray.size),
    }


def bin_of(stat: str, value: float) -> int:
    """Index of the bin of ``EDGES[stat]`` that ``value`` falls in (upper edges inclusive)."""
    return int(np.searchsorted(EDGES[stat], value, side="left"))


def histogram(stat: str, values: Iterable[float]) -> list[int]:
    """Counts of ``values`` in the bins of ``stat`` (``len(EDGES[stat]) + 1`` of them)."""
    counts = [0] * (len(EDGES[stat]) + 1)
    for value in values:
        counts[bin_of(stat, value)] += 1
    return counts


def reference(values: Mapping[str, Iterable[float]]) -> dict[str, list[int]]:
    """The histograms a model stores as its reference, one per statistic given."""
    return {stat: histogram(stat, stat_values) for stat, stat_values in values.items()}


def psi(expected: Sequence[int], actual: Sequence[int]) -> float:
    """Population stability index of ``actual`` counts against ``expected`` counts in the same bins."""
    if len(expected) != len(actual):
        raise ValueError(f"{len(expected)} reference bins against {len(actual)}")
    expected_total, actual_total = sum(expected), sum(actual)
    if not expected_total or not actual_total:
        return 0.0
    index = 0.0
    for e, a in zip(expected, actual, strict=True):
        p, q = max(e / expected_total, _FLOOR), max(a / actual_total, _FLOOR)
        index += (q - p) * math.log(q / p)
    return index
