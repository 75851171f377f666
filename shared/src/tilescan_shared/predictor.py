"""The ONNX model contract and the one class that runs it.

Contract of ``models/tilescan.onnx`` (written by training's export stage):

* input ``image``: ``uint8`` ``[N, 1, H, W]``, grayscale, any ``H`` and ``W``;
* output ``probability``: ``float32`` ``[N, 1, H, W]``, per-pixel defect probability, same size;
* output ``tile_score`` (models with a tile decision head): ``float32`` ``[N]``, the probability that
  the tile has a defect at all; models without it still load and are decided by their pixel rule;
* ``metadata_props``: see :mod:`tilescan_shared.model_info` (its one reader and writer).

Normalisation, resizing and the sigmoid live inside the graph, so callers only decode the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tilescan_shared.model_info import ModelInfo

INPUT_NAME = "image"
OUTPUT_NAME = "probability"
TILE_OUTPUT_NAME = "tile_score"
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def resolve_providers(requested: str | Sequence[str] = "auto") -> list[str]:
    """Turn ``"auto"`` or an explicit list into onnxruntime execution providers.

    ``auto`` means CUDA when this onnxruntime build offers it, then CPU as the fallback.
    """
    available = ort.get_available_providers()
    if requested == "auto":
        return [CUDA, CPU] if CUDA in available else [CPU]
    wanted = [requested] if isinstance(requested, str) else list(requested)
    unknown = [p for p in wanted if p not in available]
    if unknown:
        raise ValueError(f"execution providers {unknown} are not available; this build offers {available}")
    return wanted


@dataclass(frozen=True)
class Inference:
    """The model's answer for one image."""

    probability: np.ndarray  # float32 (H, W)
    tile_score: float | None  # None for a model without a tile decision head


class Predictor:
    """One onnxruntime session over a tilescan model file; thread-safe for concurrent ``predict`` calls."""

    def __init__(
        self,
        model_path: str | Path,
        providers: str | Sequence[str] = "auto",
        intra_op_threads: int = 0,
        inter_op_threads: int = 0,
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        # onnxruntime's CPU arena keeps the peak of the largest image ever seen for the session's
        # life; without it that memory goes back at once, and a typical tile runs as fast
        # (docs/benchmarks.md, "Memory").
        options.enable_cpu_mem_arena = False
        self.session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=resolve_providers(providers)
        )
        self.info = ModelInfo.from_props(self.session.get_modelmeta().custom_metadata_map)
        names = {output.name for output in self.session.get_outputs()}
        self.outputs = [OUTPUT_NAME] + ([TILE_OUTPUT_NAME] if TILE_OUTPUT_NAME in names else [])

    @property
    def providers(self) -> list[str]:
        """The execution providers the session really uses (CUDA may have fallen back to CPU)."""
        return self.session.get_providers()

    def predict(self, gray: np.ndarray) -> Inference:
        """Defect probability ``float32 (H, W)`` and tile score for one ``uint8 (H, W)`` grayscale image."""
        if gray.dtype != np.uint8 or gray.ndim != 2:
            raise ValueError(f"expected a uint8 (H, W) array, got {gray.dtype} {gray.shape}")
        probability, tile_scores = self.predict_batch(gray[None, None])
        return Inference(probability[0, 0], None if tile_scores is None else float(tile_scores[0]))

    def predict_batch(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities ``float32 [N, 1, H, W]`` and tile scores ``[N]`` (or None) for a ``uint8`` batch."""
        results = self.session.run(self.outputs, {INPUT_NAME: batch})
        return results[0], results[1] if len(results) > 1 else None
