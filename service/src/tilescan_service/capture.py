"""Capture: keep the tiles a person should look at, so the next training run can learn from them.

Off unless ``TILESCAN_CAPTURE_URL`` is set (a directory, or any fsspec URL such as ``s3://bucket/prefix``).
Then the service keeps every tile whose decision was uncertain (its score within
``TILESCAN_CAPTURE_BAND`` of the decision threshold: the tile score against the tile threshold where the
model has a tile decision, else the map's peak probability against the pixel rule), every tile on which
the shadow disagreed, and a ``TILESCAN_CAPTURE_SAMPLE_RATE`` share of the rest.

What a capture holds, and the store, live in ``tilescan_shared.captures`` (the labelling tools read
them too). Nothing about the client (no address, no headers) is stored. Writing happens in the
background, from a bounded queue and within a daily byte budget: a capture never delays or fails an
answer; what cannot be kept is dropped and counted (``tilescan_capture_dropped_total``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from prometheus_client import CollectorRegistry, Counter

from tilescan_service.config import Settings
from tilescan_service.engine import Prediction
from tilescan_shared.captures import SAMPLED, UNCERTAIN, CaptureRecord, CaptureStore
from tilescan_shared.masks import encode_rle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """What the service answered for one tile: the part of a prediction a capture keeps."""

    mask: np.ndarray
    has_defect: bool
    score: float  # the tile score, or the map's peak probability for a model without one
    threshold: float  # what ``score`` was decided against
    model_version: str


def answer_of(prediction: Prediction) -> Answer:
    """The answer, with the score its decision rests on: the tile score where the rule decides the tile,
    else the map's peak against the pixel rule (a region needs a pixel at the threshold and the peak)."""
    seg, rule = prediction.segmentation, prediction.rule
    if rule.decides_tile(seg.tile_score):
        assert seg.tile_score is not None and rule.tile_threshold is not None
        score, threshold = seg.tile_score, rule.tile_threshold
    else:
        score, threshold = prediction.peak_probability, max(rule.threshold, rule.min_region_peak)
    return Answer(seg.mask, seg.has_defect, score, threshold, prediction.model.version)


class CaptureMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.stored = Counter(
            "tilescan_capture_stored", "Tiles captured and stored, by reason", ["reason"], registry=registry
        )
        self.dropped = Counter(
            "tilescan_capture_dropped",
            "Tiles chosen for capture but not stored: queue_full, daily_limit, duplicate, error",
            ["reason"],
            registry=registry,
        )


class Capturer:
    """Chooses what to capture (``offer``, called on the event loop, never blocks) and writes it in the
    background (``start``/``stop`` run in the app's lifespan)."""

    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        if not settings.capture_url:
            raise ValueError("Capturer needs settings.capture_url")
        self.store = CaptureStore(settings.capture_url)
        self.band = settings.capture_band
        self.sample_rate = settings.capture_sample_rate
        self.queue_size = settings.capture_queue_size
        self.max_bytes_per_day = settings.capture_max_bytes_per_day
        self.metrics = CaptureMetrics(registry)
        self._queue: asyncio.Queue[tuple[bytes, Answer, str, str]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._day, self._bytes_today = "", 0

    async def start(self) -> None:
        self._queue = asyncio.Queue(self.queue_size)
        self._worker = asyncio.create_task(self._work(), name="capture")
        log.info("capture on", extra={"capture_band": self.band, "sample_rate": self.sample_rate})

    async def stop(self) -> None:
        """Write what is queued (a capture is data a person will label), then stop."""
        if self._queue is not None:
            await self._queue.join()
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None

    def reason(self, answer: Answer) -> str | None:
        """Why this answer should be captured, or ``None``."""
        if abs(answer.score - answer.threshold) <= self.band:
            return UNCERTAIN
        if random.random() < self.sample_rate:
            return SAMPLED
        return None

    def offer(self, image: bytes, answer: Answer, reason: str | None = None) -> None:
        """Queue ``image`` for storing if ``reason`` (default: :meth:`reason`) says so; drop, counted,
        when the queue is full or today's bytes are spent."""
        reason = reason or self.reason(answer)
        if reason is None or self._queue is None:
            return
        day = time.strftime("%Y-%m-%d", time.gmtime())
        if day != self._day:
            self._day, self._bytes_today = day, 0
        if self._bytes_today + len(image) > self.max_bytes_per_day:
            self.metrics.dropped.labels("daily_limit").inc()
            return
        captured_at = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            self._queue.put_nowait((image, answer, reason, captured_at))
        except asyncio.QueueFull:
            self.metrics.dropped.labels("queue_full").inc()
            return
        self._bytes_today += len(image)

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            image, answer, reason, captured_at = await self._queue.get()
            try:
                # Hashing and RLE encoding run here, off the event loop that serves the answers.
                record = await asyncio.to_thread(_record, image, answer, reason, captured_at)
                stored = await asyncio.to_thread(self.store.write, image, record)
                if stored:
                    self.metrics.stored.labels(reason).inc()
                else:
                    self.metrics.dropped.labels("duplicate").inc()
            except Exception:
                # A full disk or an unreachable bucket must not end the worker: count and go on.
                log.exception("capture not stored", extra={"reason": reason})
                self.metrics.dropped.labels("error").inc()
            self._queue.task_done()


def _record(image: bytes, answer: Answer, reason: str, captured_at: str) -> CaptureRecord:
    height, width = answer.mask.shape
    return CaptureRecord(
        sha256=hashlib.sha256(image).hexdigest(),
        reason=reason,
        captured_at=captured_at,
        model_version=answer.model_version,
        image_bytes=len(image),
        height=int(height),
        width=int(width),
        has_defect=answer.has_defect,
        score=round(float(answer.score), 6),
        threshold=float(answer.threshold),
        rle=encode_rle(answer.mask),
    )
