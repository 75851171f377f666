"""Shadow comparison: mirror a sampled share of ``/predict`` to another service and score agreement.

A candidate model (the dev release) runs as a second tilescan service at ``TILESCAN_SHADOW_URL``.
The primary hands each sampled upload to :meth:`ShadowMirror.offer`, which only puts it on a bounded
queue: the primary's answer never waits for the shadow and never fails because of it. Worker tasks
post the same image (and the same ``threshold``) to the shadow asking for RLE, rebuild its mask and
record, per (primary version, shadow version), the pixel Dice and IoU between the two masks and
whether both said ``has_defect`` alike. A full queue, a shadow that is down, slow or answers
something unreadable drops the mirrored request and counts the drop by reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram

from tilescan_service.config import Settings
from tilescan_service.observability.logs import request_id_var
from tilescan_service.schemas import RLE_MEDIA_TYPE
from tilescan_shared.masks import Segmentation, decode_rle
from tilescan_shared.metrics import pixel_counts

log = logging.getLogger(__name__)

DROP_REASONS = ("queue_full", "shadow_down", "timeout", "shadow_error", "internal_error")
# Fine steps near 1: two models that mostly agree differ in the third decimal. The 0.9999 bucket
# separates identical masks (Dice 1) from nearly identical ones.
_AGREEMENT_BUCKETS = (0.1, 0.25, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999, 1.0)
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Versions come from the models' metadata (one from the shadow's answer): a cap keeps the label set
# bounded whatever the shadow sends.
MAX_VERSION_PAIRS = 8
OTHER = "other"
_MAX_VERSION_CHARS = 64
# After a refused connection, sampled requests are dropped at once for this long instead of each
# trying again: an attempt costs the primary about 1 ms of CPU, a shadow that is down costs nothing.
DOWN_RETRY_SECONDS = 1.0


class ShadowMetrics:
    """The shadow comparison's Prometheus series, registered on the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        pair = ["primary_version", "shadow_version"]
        self.sampled = Counter(
            "tilescan_shadow_sampled",
            "Predictions chosen for mirroring (each ends compared or dropped).",
            registry=registry,
        )
        self.dropped = Counter(
            "tilescan_shadow_dropped",
            "Mirrored requests given up, by reason: " + ", ".join(DROP_REASONS) + ".",
            ["reason"],
            registry=registry,
        )
        for reason in DROP_REASONS:
            self.dropped.labels(reason)  # every reason is scraped from the start, at 0
        self.compared = Counter(
            "tilescan_shadow_compared",
            "Mirrored requests whose masks were compared, by has_defect of each side.",
            [*pair, "primary_has_defect", "shadow_has_defect"],
            registry=registry,
        )
        self.dice = Histogram(
            "tilescan_shadow_dice",
            "Pixel Dice of the primary's and the shadow's masks (identical ones, empty too, score 1).",
            pair,
            buckets=_AGREEMENT_BUCKETS,
            registry=registry,
        )
        self.iou = Histogram(
            "tilescan_shadow_iou",
            "Pixel IoU between the primary's and the shadow's mask.",
            pair,
            buckets=_AGREEMENT_BUCKETS,
            registry=registry,
        )
        self.latency = Histogram(
            "tilescan_shadow_request_duration_seconds",
            "Time the shadow took to answer a mirrored request (answers that were compared).",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )


@dataclass(frozen=True)
class MirroredRequest:
    image: bytes
    threshold: float | None
    mask: np.ndarray  # the primary's answer, compared once the shadow's arrives
    has_defect: bool
    version: str
    request_id: str  # the primary's, sent along so both services' logs line up
    on_disagreement: Callable[[], None] | None  # called when the shadow's has_defect differs (capture)


@dataclass(frozen=True)
class Comparison:
    dice: float
    iou: float
    shadow_has_defect: bool
    shadow_version: str


class ShadowAnswerError(ValueError):
    """The shadow answered 200 with a body that is not a readable prediction of this image."""


def compare(primary: np.ndarray, shadow_answer: bytes) -> Comparison:
    """Score the shadow's RLE answer against the primary's mask (Dice and IoU as the evaluation's)."""
    try:
        answer = json.loads(shadow_answer)
        mask = decode_rle(answer["rle"])
        has_defect, version = answer["has_defect"], answer["model"]["version"]
    except (ValueError, KeyError, TypeError) as err:
        raise ShadowAnswerError(f"unreadable shadow answer: {err!r}") from err
    if mask.shape != primary.shape:
        raise ShadowAnswerError(f"shadow mask {mask.shape} differs from the primary's {primary.shape}")
    if not isinstance(has_defect, bool):
        raise ShadowAnswerError("has_defect is not a boolean")
    counts = pixel_counts(mask, primary)
    return Comparison(counts.dice, counts.iou, has_defect, str(version))


class ShadowMirror:
    """Bounded, asynchronous mirroring of predictions to ``settings.shadow_url``.

    ``start``/``stop`` run in the app's lifespan; ``offer`` is called by the route and never blocks.
    """

    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        if settings.shadow_url is None:
            raise ValueError("ShadowMirror needs settings.shadow_url")
        self.url = str(settings.shadow_url).rstrip("/") + "/predict"
        self.sample_rate = settings.shadow_sample_rate
        self.timeout = settings.shadow_timeout_seconds
        self.concurrency = settings.shadow_concurrency
        self.queue_size = settings.shadow_queue_size
        self.metrics = ShadowMetrics(registry)
        self._queue: asyncio.Queue[MirroredRequest] | None = None  # made in start(), on the app's loop
        self._pairs: set[tuple[str, str]] = set()
        self._down_until = 0.0  # time.monotonic() before which the shadow counts as down
        self._client: httpx.AsyncClient | None = None
        self._workers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._queue = asyncio.Queue(self.queue_size)
        self._client = httpx.AsyncClient(
            timeout=self.timeout, limits=httpx.Limits(max_connections=self.concurrency)
        )
        self._workers = [
            asyncio.create_task(self._work(), name=f"shadow-{i}") for i in range(self.concurrency)
        ]
        log.info("shadow mirroring on", extra={"shadow_url": self.url, "sample_rate": self.sample_rate})

    async def stop(self) -> None:
        """Stop at once: requests still queued or in flight are abandoned (the shadow is best effort)."""
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def drained(self) -> None:
        """Wait until every queued request was compared or dropped."""
        if self._queue is not None:
            await self._queue.join()

    def offer(
        self,
        image: bytes,
        threshold: float | None,
        primary: Segmentation,
        version: str,
        on_disagreement: Callable[[], None] | None = None,
    ) -> None:
        """Queue this prediction for mirroring if it is sampled; drop it when the queue is full.
        ``on_disagreement`` runs (on the event loop) if the shadow decides the tile the other way."""
        if self._queue is None or random.random() >= self.sample_rate:
            return
        self.metrics.sampled.inc()
        if time.monotonic() < self._down_until:
            self.metrics.dropped.labels("shadow_down").inc()
            return
        job = MirroredRequest(
            image, threshold, primary.mask, primary.has_defect, version, request_id_var.get(), on_disagreement
        )
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.metrics.dropped.labels("queue_full").inc()

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            job = await self._queue.get()
            try:
                reason = await self._mirror(job)
            except Exception:
                # A bug here must not end the worker: the mirror would go silent.
                log.exception("shadow comparison failed", extra={"shadow_url": self.url})
                reason = "internal_error"
            if reason is not None:
                self.metrics.dropped.labels(reason).inc()
            self._queue.task_done()

    async def _mirror(self, job: MirroredRequest) -> str | None:
        """Post one request to the shadow and record the comparison; the drop reason if it failed."""
        assert self._client is not None, "start() first"
        params = {"format": "rle"} if job.threshold is None else {"format": "rle", "threshold": job.threshold}
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._client.post(
                    self.url,
                    params=params,
                    files={"image": ("image", job.image, "application/octet-stream")},
                    headers={"Accept": RLE_MEDIA_TYPE, "X-Request-ID": job.request_id},
                )
        except (TimeoutError, httpx.TimeoutException):
            return "timeout"
        except httpx.TransportError as err:
            log.debug("shadow unreachable: %r", err)
            if isinstance(err, httpx.ConnectError):
                self._down_until = time.monotonic() + DOWN_RETRY_SECONDS
            return "shadow_down"
        seconds = time.perf_counter() - started
        if response.status_code != 200:
            log.warning("shadow answered %s", response.status_code, extra={"shadow_url": self.url})
            return "shadow_error"
        try:
            result = await asyncio.to_thread(compare, job.mask, response.content)
        except ShadowAnswerError as err:
            log.warning("%s", err, extra={"shadow_url": self.url})
            return "shadow_error"
        primary_version, shadow_version = self._pair(job.version, result.shadow_version)
        self.metrics.latency.observe(seconds)
        self.metrics.compared.labels(
            primary_version, shadow_version, _flag(job.has_defect), _flag(result.shadow_has_defect)
        ).inc()
        self.metrics.dice.labels(primary_version, shadow_version).observe(result.dice)
        self.metrics.iou.labels(primary_version, shadow_version).observe(result.iou)
        if job.on_disagreement is not None and result.shadow_has_defect != job.has_defect:
            job.on_disagreement()
        return None

    def _pair(self, primary: str, shadow: str) -> tuple[str, str]:
        """The version labels, folded into ``other`` once :data:`MAX_VERSION_PAIRS` pairs were seen."""
        pair = (primary[:_MAX_VERSION_CHARS], shadow[:_MAX_VERSION_CHARS])
        if pair in self._pairs:
            return pair
        if len(self._pairs) < MAX_VERSION_PAIRS:
            self._pairs.add(pair)
            return pair
        return OTHER, OTHER


def _flag(value: bool) -> str:
    return "true" if value else "false"
