"""The model inside the service: loading, warm-up, and bounded, off-event-loop predictions."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Literal, TypeVar

import numpy as np

from tilescan_service.config import Settings
from tilescan_service.drift_watch import DriftWatch
from tilescan_service.memory import TrimSchedule, big_image_allocation, release_free_memory
from tilescan_service.observability.metrics import ServiceMetrics
from tilescan_service.runtime_choice import RuntimeChoice, choose
from tilescan_service.scheduling import InferenceSlots, Lane
from tilescan_shared.drift import tile_stats
from tilescan_shared.image import decode_gray
from tilescan_shared.masks import DecisionRule, Segmentation, segment
from tilescan_shared.model_info import ModelInfo
from tilescan_shared.predictor import Predictor, most_views

log = logging.getLogger(__name__)

Status = Literal["loading", "ready", "failed"]
# The pace starts from the timing at load, which covers inference alone (a request also costs decoding,
# the rule, rendering and HTTP: as much again with bf16), and a short line jitters: no request is shed
# sooner than this (0.1 s shed one request at 8 connections in `make bench`).
MIN_QUEUE_WAIT_SECONDS = 0.25
# Weight of the latest turn in the line's pace (an average over about the last 20 turns).
PACE_WEIGHT = 0.05
T = TypeVar("T")


class NotReadyError(Exception):
    """The model is still loading (or failed to load)."""


class QueueTimeoutError(Exception):
    """No inference turn came within the request's queue limit: it left the line."""


@dataclass(frozen=True)
class Prediction:
    segmentation: Segmentation
    rule: DecisionRule  # the one applied: the model's, with the request's threshold if it gave one
    inference_seconds: float
    model: ModelInfo  # the model that made it (a hot swap may have replaced the engine's since)
    peak_probability: float  # the map's highest probability: how close a tile came to the pixel rule
    input_stats: dict[str, float]  # the image's statistics in tilescan_shared.drift's terms
    views: int = 1  # 4 when the rule's review band sent the tile to a second look

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
    """Owns the model's sessions; ``predict`` is safe to await from many requests at once."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.status: Status = "loading"
        self.error: str | None = None
        self._choice: RuntimeChoice | None = None
        self.slots = InferenceSlots(
            settings.inference_slots,
            settings.max_image_pixels,
            settings.newest_first_at,
            settings.retry_after_seconds,
        )
        # One thread per slot, so a granted inference starts at once.
        self._inference_pool = ThreadPoolExecutor(settings.inference_slots, thread_name_prefix="inference")
        self._pending = 0
        self._seconds_per_pixel = 0.0  # the line's pace: see queue_limit
        self._trim = TrimSchedule()
        self.drift = DriftWatch(settings.drift_window, metrics.registry, self._reference)

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
        return self._current().sessions.solo

    @property
    def runtime(self) -> RuntimeChoice:
        """The precision and layout served, with the timings that chose them."""
        return self._current()

    def _reference(self) -> dict[str, list[int]]:
        """The served model's drift reference (none while no model is served)."""
        return self._choice.sessions.solo.info.reference if self._choice is not None else {}

    def _current(self) -> RuntimeChoice:
        if self._choice is None or not self.ready:
            raise NotReadyError(self.error or "the model is still loading")
        return self._choice

    def load(self) -> None:
        """Open, warm up and time the model's sessions, serve the fastest (blocking; run in a thread)."""
        started = time.perf_counter()
        choice = self._open("model load failed")
        if choice is None:
            # Clients see that it failed; the path and onnxruntime's message are for the log only.
            self.status, self.error = "failed", "the model failed to load; the service log says why"
            return
        self._serve(choice)
        log.info("model ready", extra=_describe(choice, started))

    def reload(self) -> bool:
        """Load the model file again and swap it in once warmed up (blocking; run it in a thread).

        Requests that already hold the old sessions finish on them; later ones get the new ones. A
        file that fails to load or warm up leaves the old model serving. True when swapped.
        """
        started = time.perf_counter()
        previous = self._choice.sessions.solo.info.version if self._choice is not None else None
        choice = self._open("model reload failed; the model already loaded keeps serving")
        self.metrics.reloads.labels("failure" if choice is None else "success").inc()
        if choice is None:
            return False
        self._serve(choice)
        log.info("model swapped", extra={"previous_version": previous, **_describe(choice, started)})
        return True

    def _open(self, failure: str) -> RuntimeChoice | None:
        """Warmed-up, timed sessions on the model file, or None (logged with ``failure``) on failure."""
        try:
            choice = choose(self.settings)
        except Exception:
            log.exception(failure, extra={"model_path": str(self.settings.model_path)})
            return None
        release_free_memory()  # what the precisions not chosen held goes back now, not after 40 tiles
        return choice

    def _serve(self, choice: RuntimeChoice) -> None:
        """Make ``choice`` the sessions new requests get (one attribute store: atomic for other threads)."""
        solo = choice.sessions.solo
        self.metrics.model.clear()
        self.metrics.model.labels(
            solo.info.name, solo.info.version, ",".join(solo.providers), choice.precision.value
        ).set(1)
        self.metrics.runtime_timing.clear()
        for timing in choice.timings:
            self.metrics.runtime_timing.labels(timing.precision, "solo").set(timing.solo_ms / 1000)
            if timing.shared_ms is not None:
                self.metrics.runtime_timing.labels(timing.precision, "shared").set(timing.shared_ms / 1000)
        # The shared lane only where it pays on this machine (tilescan_service.runtime_choice).
        self.slots.concurrency = self.settings.inference_slots if choice.side_by_side else 1
        self._choice = choice
        self._seconds_per_pixel = choice.seconds_per_pixel  # until answers under load say otherwise
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
        choice = self._current()
        sessions = choice.sessions
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
            lane = await self._turn(gray.size, most_views(rule))
            granted = time.perf_counter()
            work = asyncio.get_running_loop().run_in_executor(
                self._inference_pool, _infer, sessions.lane(lane, gray.size), gray, rule, finish
            )
            try:
                # Shielded: a dropped request's inference cannot be stopped, so its slot is
                # given back only when the thread is really done with it.
                prediction, result, cpu_seconds = await asyncio.shield(work)
            except asyncio.CancelledError:
                work.add_done_callback(lambda _: self.slots.release(lane, gray.size))
                raise
            self.slots.release(lane, gray.size)
            self._pace(lane, time.perf_counter() - granted, gray.size)
            tile_score = prediction.segmentation.tile_score
            self.drift.observe(
                prediction.input_stats | ({} if tile_score is None else {"tile_score": tile_score})
            )
            self.metrics.inference.labels(lane.value).observe(prediction.inference_seconds)
            self.metrics.inference_cpu.labels(lane.value).inc(cpu_seconds)
            if prediction.views > 1:
                self.metrics.second_looks.inc()
        finally:
            self._pending -= 1
            self.metrics.queued.dec()
        if self._trim.served(gray.size):
            del gray  # what decoding and inference held is free now: give it back to the OS,
            # beside the answer rather than before it (a trim takes ~10 ms; no request waits for it)
            asyncio.get_running_loop().run_in_executor(None, release_free_memory)
        return prediction, result

    def _pace(self, lane: Lane, held_seconds: float, pixels: int) -> None:
        """Fold one turn into the line's pace: seconds per pixel of the whole service's throughput
        (a shared turn's time divided by the turns that run side by side), averaged over recent turns."""
        side_by_side = self.slots.concurrency if lane is Lane.SHARED else 1
        self._seconds_per_pixel += PACE_WEIGHT * (
            held_seconds / pixels / side_by_side - self._seconds_per_pixel
        )

    async def _turn(self, pixels: int, views: int) -> Lane:
        """Wait for an inference turn, at most :meth:`queue_limit` seconds.

        A request that would wait longer leaves the line before any inference work, so the answers
        that do come waited at most that long, and the requests shed cost no inference.
        """
        limit = self.queue_limit(pixels, self._seconds_per_pixel, views)
        try:
            async with asyncio.timeout(limit):
                return await self.slots.acquire(pixels)
        except TimeoutError:
            self.metrics.queue_timeouts.inc()
            raise QueueTimeoutError(
                f"no inference turn within {limit:.2f} s: the service is busy; retry later"
            ) from None

    def queue_limit(self, pixels: int, seconds_per_pixel: float, views: int = 1) -> float | None:
        """How long a request of ``pixels`` may wait for its turn from now (None: no limit).

        ``queue_wait_ratio`` times what the pixels running and waiting ahead of it, and its own,
        should take at the line's recent pace (:meth:`_pace`, from the timing at load until turns
        are measured; at least ``MIN_QUEUE_WAIT_SECONDS``): a tile queued behind a big image may
        wait for it, and a line that suddenly moves slower is cut short. While the line stands
        (:meth:`~tilescan_service.scheduling.InferenceSlots.stands`: newest first, so a request
        arriving now may be overtaken until it leaves) ``standing_wait_ratio`` instead.
        ``queue_timeout_seconds`` caps it.

        Nor is it shorter than the turns running now would take as second looks (``views`` runs of
        each image, one thread each), which the line's average pace cannot foresee: with only two
        clients, tiles behind a big tile's second look were shed (7 and 5 of the 171 test tiles in
        fp32 and int8).
        """
        limits = []
        standing = self.slots.stands(arriving=True)
        ratio = self.settings.standing_wait_ratio if standing else self.settings.queue_wait_ratio
        if ratio:
            ahead = self.slots.running_pixels + self.slots.waiting_pixels + pixels
            expected = ratio * ahead * seconds_per_pixel
            running = views * self.slots.concurrency * self.slots.running_pixels * seconds_per_pixel
            limits.append(max(expected, running, MIN_QUEUE_WAIT_SECONDS))
        if self.settings.queue_timeout_seconds:
            limits.append(self.settings.queue_timeout_seconds)
        return min(limits, default=None)


def _describe(choice: RuntimeChoice, started: float) -> dict[str, object]:
    """The log fields of a freshly loaded model."""
    predictor = choice.sessions.solo
    return {
        "model": predictor.info.name,
        "version": predictor.info.version,
        "providers": predictor.providers,
        "precision": choice.precision.value,
        "precision_reason": choice.reason,
        "timings_ms": [asdict(timing) for timing in choice.timings],
        "side_by_side": choice.side_by_side,
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
        inference = predictor.predict(gray, rule)
    seconds, cpu_seconds = time.perf_counter() - started, time.thread_time() - cpu_started
    segmentation = segment(inference.probability, rule, inference.tile_score)
    peak = float(inference.probability.max()) if inference.probability.size else 0.0
    prediction = Prediction(
        segmentation, rule, seconds, predictor.info, peak, tile_stats(gray), inference.views
    )
    return prediction, finish(prediction), cpu_seconds
