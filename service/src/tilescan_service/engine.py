"""The model inside the service: loading, warm-up, and bounded, off-event-loop predictions."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from tilescan_service.config import Settings
from tilescan_service.memory import BIG_IMAGE_PIXELS, release_free_memory
from tilescan_service.observability.metrics import ServiceMetrics
from tilescan_shared.image import decode_gray
from tilescan_shared.masks import DecisionRule, Segmentation, segment
from tilescan_shared.model_info import ModelInfo
from tilescan_shared.predictor import Predictor

log = logging.getLogger(__name__)

Status = Literal["loading", "ready", "failed"]


class NotReadyError(Exception):
    """The model is still loading (or failed to load)."""


@dataclass(frozen=True)
class Prediction:
    segmentation: Segmentation
    rule: DecisionRule  # the one applied: the model's, with the request's threshold if it gave one
    inference_seconds: float
    model: ModelInfo  # the model that made it (a hot swap may have replaced the engine's since)

    @property
    def height(self) -> int:
        return int(self.segmentation.mask.shape[0])

    @property
    def width(self) -> int:
        return int(self.segmentation.mask.shape[1])

    @property
    def defect_fraction(self) -> float:
        return self.segmentation.defect_pixels / (self.height * self.width)


class Engine:
    """Owns the :class:`Predictor`; ``predict`` is safe to await from many requests at once."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.status: Status = "loading"
        self.error: str | None = None
        self._predictor: Predictor | None = None
        # Inferences get their own threads, fed straight from the executor's queue: when one ends,
        # the next starts at once instead of waiting for a busy event loop to hand it over.
        self._inference_pool = ThreadPoolExecutor(
            settings.inference_concurrency, thread_name_prefix="inference"
        )
        self._pending = 0

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @property
    def pending(self) -> int:
        """Predictions admitted and not finished."""
        return self._pending

    @property
    def predictor(self) -> Predictor:
        if self._predictor is None or not self.ready:
            raise NotReadyError(self.error or "the model is still loading")
        return self._predictor

    def load(self) -> None:
        """Open the ONNX session and run one warm-up inference (blocking; run it in a thread)."""
        started = time.perf_counter()
        predictor = self._open("model load failed")
        if predictor is None:
            # Clients see that it failed; the path and onnxruntime's message are for the log only.
            self.status, self.error = "failed", "the model failed to load; the service log says why"
            return
        self._serve(predictor)
        log.info("model ready", extra=_describe(predictor, started))

    def reload(self) -> bool:
        """Load the model file again and swap it in once warmed up (blocking; run it in a thread).

        Requests that already hold the old predictor finish on it; later ones get the new one. A
        file that fails to load or warm up leaves the old model serving. True when swapped.
        """
        started = time.perf_counter()
        previous = self._predictor.info.version if self._predictor is not None else None
        predictor = self._open("model reload failed; the model already loaded keeps serving")
        self.metrics.reloads.labels("failure" if predictor is None else "success").inc()
        if predictor is None:
            return False
        self._serve(predictor)
        log.info("model swapped", extra={"previous_version": previous, **_describe(predictor, started)})
        return True

    def _open(self, failure: str) -> Predictor | None:
        """A warmed-up predictor on the model file, or None (logged with ``failure``) if it cannot be."""
        try:
            predictor = Predictor(
                self.settings.model_path,
                providers=self.settings.provider_list,
                intra_op_threads=self.settings.intra_op_threads,
                inter_op_threads=self.settings.inter_op_threads,
            )
            # The first run allocates buffers and picks kernels; pay for it before the first client does.
            predictor.predict(np.zeros(predictor.info.working_size, dtype=np.uint8))
        except Exception:
            log.exception(failure, extra={"model_path": str(self.settings.model_path)})
            return None
        return predictor

    def _serve(self, predictor: Predictor) -> None:
        """Make ``predictor`` the one new requests get (one attribute store: atomic for other threads)."""
        info = predictor.info
        self.metrics.model.clear()
        self.metrics.model.labels(info.name, info.version, ",".join(predictor.providers)).set(1)
        self._predictor = predictor
        self.status, self.error = "ready", None

    def close(self) -> None:
        """Let running inferences finish and stop the inference threads."""
        self._inference_pool.shutdown(wait=True, cancel_futures=True)

    async def predict(self, data: bytes, threshold: float | None = None) -> Prediction:
        """Decode, infer and apply the model's decision rule (``threshold`` overrides its threshold).

        Raises ``tilescan_shared.image.ImageError`` for bad bytes. How many may wait here is
        bounded before the upload is read, by :mod:`tilescan_service.admission`.
        """
        predictor = self.predictor
        self._pending += 1
        self.metrics.queued.inc()
        try:
            gray = await asyncio.to_thread(decode_gray, data, self.settings.max_image_pixels)
            self.metrics.pixels.observe(gray.size)
            rule = (
                predictor.info.rule
                if threshold is None
                else replace(predictor.info.rule, threshold=threshold)
            )
            loop = asyncio.get_running_loop()
            segmentation, seconds = await loop.run_in_executor(
                self._inference_pool, _infer, predictor, gray, rule
            )
            self.metrics.inference.observe(seconds)
        finally:
            self._pending -= 1
            self.metrics.queued.dec()
        if gray.size >= BIG_IMAGE_PIXELS:
            del gray  # what decoding and inference held is free now: give it back to the OS
            await asyncio.to_thread(release_free_memory)
        return Prediction(segmentation, rule, seconds, predictor.info)


def _describe(predictor: Predictor, started: float) -> dict[str, object]:
    """The log fields of a freshly loaded model."""
    return {
        "model": predictor.info.name,
        "version": predictor.info.version,
        "providers": predictor.providers,
        "load_seconds": round(time.perf_counter() - started, 3),
    }


def _infer(predictor: Predictor, gray: np.ndarray, rule: DecisionRule) -> tuple[Segmentation, float]:
    """The segmentation and the seconds onnxruntime took (queueing excluded).

    The decision rule runs in the same worker call: one thread hop less per request, for ~0.3 ms
    of numpy that would otherwise wait for a thread of its own.
    """
    started = time.perf_counter()
    probability = predictor.predict(gray)
    seconds = time.perf_counter() - started
    return segment(probability, rule), seconds
