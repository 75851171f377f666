"""The service's drift watch: what its last tiles looked like, against what the model was trained on.

Every prediction's input statistics (mean gray level, contrast, size) and tile score are counted in the
bins of :mod:`tilescan_shared.drift`: in cumulative Prometheus histograms (``tilescan_input_*``,
``tilescan_tile_score``: dashboards take any window of them with ``increase``), and in a rolling window
of the last ``TILESCAN_DRIFT_WINDOW`` tiles whose population stability index against the served
model's reference (``ModelInfo.reference``) each scrape reports as ``tilescan_input_drift_psi{stat}``.
``deploy/prometheus/alerts.yml`` alerts on it; ``make drift-report`` prints it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tilescan_shared.drift import EDGES, bin_of, psi


class DriftWatch(Collector):
    """Counts what the service is sent; thread-safe (inference threads add, the scrape reads)."""

    def __init__(
        self, size: int, registry: CollectorRegistry, reference: Callable[[], dict[str, list[int]]]
    ) -> None:
        self.size = size
        self._reference = reference
        self._recent: deque[dict[str, int]] = deque()
        self._counts = {stat: [0] * (len(edges) + 1) for stat, edges in EDGES.items()}
        self._lock = threading.Lock()
        self._histograms = {
            stat: Histogram(
                f"tilescan_{'tile_score' if stat == 'tile_score' else 'input_' + stat}",
                f"The {stat.replace('_', ' ')} of each predicted tile, in the drift reference's bins.",
                buckets=edges,
                registry=registry,
            )
            for stat, edges in EDGES.items()
            if stat != "pixels"  # tilescan_image_pixels counts sizes already
        }
        registry.register(self)

    def observe(self, values: dict[str, float]) -> None:
        """One tile's statistics (and tile score, when the model gives one)."""
        for stat, value in values.items():
            if stat in self._histograms:
                self._histograms[stat].observe(value)
        if not self.size:
            return
        bins = {stat: bin_of(stat, value) for stat, value in values.items()}
        with self._lock:
            self._recent.append(bins)
            for stat, index in bins.items():
                self._counts[stat][index] += 1
            if len(self._recent) > self.size:
                for stat, index in self._recent.popleft().items():
                    self._counts[stat][index] -= 1

    def indices(self) -> tuple[int, dict[str, float]]:
        """Tiles in the window, and each statistic's stability index against the model's reference."""
        reference = self._reference()
        with self._lock:
            counts = {stat: list(bins) for stat, bins in self._counts.items()}
            tiles = len(self._recent)
        return tiles, {stat: psi(reference[stat], counts[stat]) for stat in counts if stat in reference}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        tiles, indices = self.indices()
        window = GaugeMetricFamily(
            "tilescan_input_drift_window_tiles", "Tiles in the drift watch's rolling window."
        )
        window.add_metric([], tiles)
        yield window
        drift = GaugeMetricFamily(
            "tilescan_input_drift_psi",
            "Population stability index of the window's inputs against the model's training reference "
            "(> 0.25: drifted).",
            labels=["stat"],
        )
        for stat, index in indices.items():
            drift.add_metric([stat], index)
        yield drift
