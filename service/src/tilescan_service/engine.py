"""The model inside the service: loading, warm-up, and bounded, off-event-loop predictions."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

import numpy as np

from tilescan_service.config import Settings
from tilescan_service.memory import BIG_IMAGE_PIXELS, big_image_allocation, release_free_memory
from tilescan_service.observability.metrics import ServiceMetrics
from tilescan_service.scheduling import InferenceSlots, Lane
from tilescan_shared.image import decode_gray
from tilescan_shared.masks import DecisionRule, Segmentation, segment
from tilescan_shared.model_info import ModelInfo
from tilescan_shared.predictor import Predictor

log = logging.getLogger(__name__)

Status = Literal["loading", "ready", "failed"]
T = TypeVar("T")


class NotReadyError(Exception):
    """The model is still loading (or failed to load)."""


class QueueTimeoutError(Exception):
    """No inference turn came within ``queue_timeout_seconds``: the request left the line."""


@dataclass(frozen=True)
class Prediction:
    segmentation: Segmentation
    rule: DecisionRule  # the one applied: the model's, with the request's threshold if it gave one
    inference_seconds: float
    model: ModelInfo  # the model that made it (a hot swap may have replaced the engine's since)
    peak_probability: float  # the map's highest probability: how close a tile came to the pixel rule

    @property
    def height(self) -> int:
        return int(self.segmentation.mask.shape[0])

    @property
    def width(self) -> int:
        return int(self.segmentation.mask.shape[1])

    @property
    def defect_fraction(self) -> float:
        return self.segmentation.defect_pixels / (self.height * self.width)


@dataclass(frozen=True)
class _Sessions:
    """One model file, opened for both lanes of :mod:`tilescan_service.scheduling`."""

    solo: Predictor  # ``intra_op_threads`` threads: a prediction alone
    shared: Predictor  # one thread: predictions side by side (``solo`` itself when that has one thread)

    def lane(self, lane: Lane) -> Predictor:
        return self.solo if lane is Lane.SOLO else self.shared


class Engine:
    """Owns the model's sessions; ``predict`` is safe to await from many requests at once."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.status: Status = "loading"
        self.error: str | None = None
        self._sessions: _Sessions | None = None
        self.slots = InferenceSlots(settings.inference_slots, settings.max_image_pixels)
        # One thread per slot, so a granted inference starts at once.
        self._inference_pool = ThreadPoolExecutor(settings.inference_slots, thread_name_prefix="inference")
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
        """The session a lone prediction runs on (the model card and the providers come from it)."""
        return self._current().solo

    def _current(self) -> _Sessions:
        if self._sessions is None or not self.ready:
            raise NotReadyError(self.error or "the model is still loading")
        return self._sessions

    def load(self) -> None:
        """Open the ONNX sessions and run one warm-up inference on each (blocking; run it in a thread)."""
        started = time.perf_counter()
        sessions = self._open("model load failed")
        if sessions is None:
            # Clients see that it failed; the path and onnxruntime's message are for the log only.
            self.status, self.error = "failed", "the model failed to load; the service log says why"
            return
        self._serve(sessions)
        log.info("model ready", extra=_describe(sessions.solo, started))

    def reload(self) -> bool:
        """Load the model file again and swap it in once warmed up (blocking; run it in a thread).

        Requests that already hold the old sessions finish on them; later ones get the new ones. A
        file that fails to load or warm up leaves the old model serving. True when swapped.
        """
        started = time.perf_counter()
        previous = self._sessions.solo.info.version if self._sessions is not None else None
        sessions = self._open("model reload failed; the model already loaded keeps serving")
        self.metrics.reloads.labels("failure" if sessions is None else "success").inc()
        if sessions is None:
            return False
        self._serve(sessions)
        log.info("model swapped", extra={"previous_version": previous, **_describe(sessions.solo, started)})
        return True

    def _open(self, failure: str) -> _Sessions | None:
        """Warmed-up sessions on the model file, or None (logged with ``failure``) if they cannot be."""
        settings = self.settings
        try:
            solo = self._warm(settings.intra_op_threads)
            one_thread = settings.intra_op_threads == 1 or settings.inference_slots == 1
            sessions = _Sessions(solo, solo if one_thread else self._warm(1))
        except Exception:
            log.exception(failure, extra={"model_path": str(settings.model_path)})
            return None
        return sessions

    def _warm(self, intra_op_threads: int) -> Predictor:
        predictor = Predictor(
            self.settings.model_path,
            providers=self.settings.provider_list,
            intra_op_threads=intra_op_threads,
            inter_op_threads=self.settings.inter_op_threads,
        )
        # The first run allocates buffers and picks kernels; pay for it before the first client does.
        predictor.predict(np.zeros(predictor.info.working_size, dtype=np.uint8))
        return predictor

    def _serve(self, sessions: _Sessions) -> None:
        """Make ``sessions`` the ones new requests get (one attribute store: atomic for other threads)."""
        info = sessions.solo.info
        self.metrics.model.clear()
        self.metrics.model.labels(info.name, info.version, ",".join(sessions.solo.providers)).set(1)
        self._sessions = sessions
        self.status, self.error = "ready", None

    def close(self) -> None:
        """Let running inferences finish and stop the inference threads."""
        self._inference_pool.shutdown(wait=True, cancel_futures=True)

    async def predict(
        self, data: bytes, threshold: float | None, finish: Callable[[Prediction], T]
    ) -> tuple[Prediction, T]:
        """Decode, infer, apply the model's decision rule (``threshold`` overrides its threshold) and
        call ``finish`` on the prediction (rendering: it runs in the inference thread, one hop less).

        Raises ``tilescan_shared.image.ImageError`` for bad bytes. How many may wait here is
        bounded before the upload is read, by :mod:`tilescan_service.admission`.
        """
        sessions = self._current()
        self._pending += 1
        self.metrics.queued.inc()
        try:
            gray = await asyncio.to_thread(decode_gray, data, self.settings.max_image_pixels)
            self.metrics.pixels.observe(gray.size)
            rule = (
                sessions.solo.info.rule
                if threshold is None
                else replace(sessions.solo.info.rule, threshold=threshold)
            )
            lane = await self._turn(gray.size)
            work = asyncio.get_running_loop().run_in_executor(
                self._inference_pool, _infer, sessions.lane(lane), gray, rule, finish
            )
            try:
                # Shielded: a dropped request's inference cannot be stopped, so its slot is
                # given back only when the thread is really done with it.
                prediction, result, cpu_seconds = await asyncio.shield(work)
            except asyncio.CancelledError:
                work.add_done_callback(lambda _: self.slots.release(lane, gray.size))
                raise
            self.slots.release(lane, gray.size)
            self.metrics.inference.labels(lane.value).observe(prediction.inference_seconds)
            self.metrics.inference_cpu.labels(lane.value).inc(cpu_seconds)
        finally:
            self._pending -= 1
            self.metrics.queued.dec()
        if gray.size >= BIG_IMAGE_PIXELS:
            del gray  # what decoding and inference held is free now: give it back to the OS
            await asyncio.to_thread(release_free_memory)
        return prediction, result

    async def _turn(self, pixels: int) -> Lane:
        """Wait for an inference turn, at most ``queue_timeout_seconds`` when set.

        A request that would wait longer leaves the line before any inference work, so the answers
        that do come waited at most that long, and the requests shed cost no inference.
        """
        limit = self.settings.queue_timeout_seconds or None
        try:
            async with asyncio.timeout(limit):
                return await self.slots.acquire(pixels)
        except TimeoutError:
            self.metrics.queue_timeouts.inc()
            raise QueueTimeoutError(
                f"no inference turn within {limit:g} s: the service is busy; retry later"
            ) from None


def _describe(predictor: Predictor, started: float) -> dict[str, object]:
    """The log fields of a freshly loaded model."""
    return {
        "model": predictor.info.name,
        "version": predictor.info.version,
        "providers": predictor.providers,
        "load_seconds": round(time.perf_counter() - started, 3),
    }


def _infer(
    predictor: Predictor, gray: np.ndarray, rule: DecisionRule, finish: Callable[[Prediction], T]
) -> tuple[Prediction, T, float]:
    """The prediction, ``finish(prediction)``, and the CPU seconds onnxruntime took on this thread.

    Everything after decoding runs in this one worker call: a thread hop costs more than the
    decision rule or the rendering.
    """
    started, cpu_started = time.perf_counter(), time.thread_time()
    with big_image_allocation(gray.size):
        inference = predictor.predict(gray)
    seconds, cpu_seconds = time.perf_counter() - started, time.thread_time() - cpu_started
    segmentation = segment(inference.probability, rule, inference.tile_score)
    peak = float(inference.probability.max()) if inference.probability.size else 0.0
    prediction = Prediction(segmentation, rule, seconds, predictor.info, peak)
    return prediction, finish(prediction), cpu_seconds
