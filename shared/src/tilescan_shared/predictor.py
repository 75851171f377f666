"""The ONNX model contract and the one class that runs it.

Contract of ``models/tilescan.onnx`` (written by training's export stage):

* input ``image``: ``uint8`` ``[N, 1, H, W]``, grayscale, any ``H`` and ``W``;
* output ``probability``: ``float32`` ``[N, 1, H, W]``, per-pixel defect probability, same size;
* output ``tile_score`` (models with a tile decision head): ``float32`` ``[N]``, the probability that
  the tile has a defect at all; models without it still load and are decided by their pixel rule;
* ``metadata_props``: see :mod:`tilescan_shared.model_info` (its one reader and writer).

Normalisation, resizing and the sigmoid live inside the graph, so callers only decode the image.
The same contract runs at several precisions, each on its runtime (:mod:`tilescan_shared.runtimes`).

A second look (test-time augmentation where it pays): given a decision rule with a ``review`` band
(:class:`~tilescan_shared.masks.DecisionRule`; the model's own rule names it), a tile whose tile score
falls inside it is run again mirrored left-right, top-bottom and both, and its answer is the mean of
the four views, probabilities mapped back. Mirroring cannot change what a tile is, so the mean is a
steadier answer for a tile the model was unsure of; confident tiles (most of a line) cost one run.
The views run one after another, so memory stays what one image needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tilescan_shared.masks import DecisionRule
from tilescan_shared.model_info import ModelInfo
from tilescan_shared.runtimes import (
    CPU,
    CUDA,
    OPENVINO_CACHE_CAPACITY,
    Variant,
    open_session,
    resolve_providers,
)

__all__ = [
    "CPU",
    "CUDA",
    "MIRRORS",
    "Inference",
    "Predictor",
    "Variant",
    "most_views",
    "resolve_providers",
    "second_look",
]

INPUT_NAME = "image"
OUTPUT_NAME = "probability"
TILE_OUTPUT_NAME = "tile_score"


# The mirrored views of a second look, as the image axes each one flips (the first view is the tile).
MIRRORS: tuple[tuple[int, ...], ...] = ((1,), (0,), (0, 1))


@dataclass(frozen=True)
class Inference:
    """The model's answer for one image."""

    probability: np.ndarray  # float32 (H, W)
    tile_score: float | None  # None for a model without a tile decision head
    views: int = 1  # 4 when the tile was looked at again (mirrored), the mean of the views


def most_views(rule: DecisionRule | None) -> int:
    """The most runs of the model :func:`second_look` may take for one tile under ``rule``."""
    return 1 + len(MIRRORS) if rule is not None and rule.review is not None else 1


def second_look(
    first: Inference, rule: DecisionRule | None, mirrored: Callable[[], Sequence[Inference]]
) -> Inference:
    """A tile's answer under ``rule``: its ``first`` view, or, when the rule's review band holds its
    score, the mean of it and the ``mirrored()`` views (each already mapped back to the tile)."""
    if rule is None or not rule.reviews(first.tile_score):
        return first
    views = [first, *mirrored()]
    probability = np.mean([v.probability for v in views], axis=0, dtype=np.float32)
    scores = [v.tile_score for v in views]
    return Inference(probability, float(np.mean(scores)), len(views))


class Predictor:
    """One runtime session over a tilescan model file; thread-safe for concurrent ``predict`` calls.

    ``variant`` picks the precision (fp32 by default); ``parallel_runs`` is how many ``predict`` calls
    are expected side by side (OpenVINO sizes its streams by it; onnxruntime needs nothing);
    ``cache_capacity``: what OpenVINO keeps of the shapes it prepared
    (:class:`~tilescan_shared.runtimes.OpenVinoSession`).
    """

    def __init__(
        self,
        model_path: str | Path,
        providers: str | Sequence[str] = "auto",
        intra_op_threads: int = 0,
        inter_op_threads: int = 0,
        variant: Variant | str = Variant.FP32,
        parallel_runs: int = 1,
        cache_capacity: int = OPENVINO_CACHE_CAPACITY,
    ) -> None:
        self.variant = Variant(variant)
        self.session = open_session(
            model_path,
            self.variant,
            providers,
            intra_op_threads,
            inter_op_threads,
            parallel_runs,
            cache_capacity,
        )
        self.info = ModelInfo.from_props(self.session.metadata)
        self.outputs = [OUTPUT_NAME] + (
            [TILE_OUTPUT_NAME] if TILE_OUTPUT_NAME in self.session.output_names else []
        )

    @property
    def providers(self) -> list[str]:
        """Where the session really runs (CUDA may have fallen back to CPU; OpenVINO says its device)."""
        return self.session.providers

    def predict(self, gray: np.ndarray, rule: DecisionRule | None = None) -> Inference:
        """Defect probability ``float32 (H, W)`` and tile score for one ``uint8 (H, W)`` grayscale image.

        With a ``rule`` that has a review band, a tile scored inside it gets the second look (module doc).
        """
        return second_look(self._run(gray), rule, lambda: self.mirrored_views(gray))

    def mirrored_views(self, gray: np.ndarray) -> list[Inference]:
        """The tile's answers seen through each of :data:`MIRRORS`, mapped back to the tile."""
        views = []
        for axes in MIRRORS:
            view = self._run(np.ascontiguousarray(np.flip(gray, axes)))
            views.append(Inference(np.ascontiguousarray(np.flip(view.probability, axes)), view.tile_score))
        return views

    def _run(self, gray: np.ndarray) -> Inference:
        if gray.dtype != np.uint8 or gray.ndim != 2:
            raise ValueError(f"expected a uint8 (H, W) array, got {gray.dtype} {gray.shape}")
        probability, tile_scores = self.predict_batch(gray[None, None])
        return Inference(probability[0, 0], None if tile_scores is None else float(tile_scores[0]))

    def predict_batch(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities ``float32 [N, 1, H, W]`` and tile scores ``[N]`` (or None) for a ``uint8`` batch."""
        results = self.session.run(self.outputs, {INPUT_NAME: batch})
        return results[0], results[1] if len(results) > 1 else None
