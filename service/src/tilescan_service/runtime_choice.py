"""Which precision and thread layout the model runs at here: chosen by timing them on this machine.

At start-up and at every hot swap the engine opens the model at each precision it may run: fp32
always, plus every reduced precision the model's metadata lists as having passed evaluation against
fp32 (``ModelInfo.variants``; :mod:`tilescan_training.variants`) that this machine can run
(:func:`tilescan_shared.runtimes.unavailable`: bf16 needs OpenVINO and bf16 instructions, int8 its
file; a GPU host serves fp32). Each is timed on a working-size tile (a convolution costs the same
whatever the pixels say): a few warm inferences alone on every thread (the solo lane of
:mod:`tilescan_service.scheduling`) and side by side on one thread each (the shared lane). The fastest
is served; the shared lane is used only where it beats the solo lane per tile. ``TILESCAN_PRECISION``
pins a precision instead; one that cannot run here falls back to fp32, and the reason says so.
The choice, its reason and every timing are in ``/model``, ``/metrics`` and the start-up log.

Images of ``BIG_IMAGE_PIXELS`` or more run fp32 on onnxruntime whatever was chosen: OpenVINO keeps the
buffers of the largest shape it has run (a 2 Mpx image left 317 MB held for good), where onnxruntime,
its arena off, gives them back (docs/benchmarks.md, "Memory").
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from tilescan_service.config import Settings
from tilescan_service.memory import BIG_IMAGE_PIXELS
from tilescan_service.scheduling import Lane
from tilescan_shared.predictor import Predictor, Variant
from tilescan_shared.runtimes import unavailable

TIMED_RUNS = 3  # per lane, after one warm-up run


@dataclass(frozen=True)
class Sessions:
    """One model file at one precision, opened for both lanes of :mod:`tilescan_service.scheduling`."""

    solo: Predictor  # ``intra_op_threads`` threads: a prediction alone
    shared: Predictor  # one thread a run, runs side by side (``solo`` itself when that has one thread)
    big: Predictor | None = None  # for images of BIG_IMAGE_PIXELS or more (None: the lane's own)

    def lane(self, lane: Lane, pixels: int) -> Predictor:
        """The session for an image of ``pixels`` pixels on ``lane``."""
        if self.big is not None and pixels >= BIG_IMAGE_PIXELS:
            return self.big
        return self.solo if lane is Lane.SOLO else self.shared


@dataclass(frozen=True)
class Timing:
    """Milliseconds per inference of a working-size tile at one precision."""

    precision: str
    solo_ms: float  # one inference on every thread
    shared_ms: float | None  # wall time / inferences, ``slots`` running side by side; None: one slot

    @property
    def best_ms(self) -> float:
        """Per tile, in the faster layout: what a tile costs when the service is busy."""
        return min(self.solo_ms, self.shared_ms or self.solo_ms)


@dataclass(frozen=True)
class RuntimeChoice:
    """The sessions served, and why."""

    sessions: Sessions
    reason: str
    timings: tuple[Timing, ...]
    side_by_side: bool  # whether waiting predictions share the CPUs, one thread each
    tile_pixels: int  # of the timing tile

    @property
    def precision(self) -> Variant:
        return self.sessions.solo.variant

    @property
    def timing(self) -> Timing:
        return next(t for t in self.timings if t.precision == self.precision)

    @property
    def seconds_per_pixel(self) -> float:
        """What a pixel of work costs in the served layout, as timed: the queue's waits scale by it."""
        return self.timing.best_ms / 1000 / self.tile_pixels


def choose(settings: Settings) -> RuntimeChoice:
    """Open, time and pick (blocking: seconds; run it in a thread)."""
    fp32 = _open(settings, Variant.FP32)
    info, providers = fp32.solo.info, fp32.solo.providers
    listed = [Variant(name) for name in info.variants if name in set(Variant)]
    wanted = [Variant.FP32, *listed] if settings.precision == "auto" else [Variant(settings.precision)]
    candidates, skipped = {}, []
    for variant in wanted:
        why = None if variant is Variant.FP32 else unavailable(variant, settings.model_path, providers)
        if variant is not Variant.FP32 and variant not in listed:
            why = "the model does not list it as having passed evaluation against fp32"
        if why is None:
            candidates[variant] = fp32 if variant is Variant.FP32 else _open(settings, variant)
        else:
            skipped.append(f"{variant}: {why}")
    if not candidates:
        candidates[Variant.FP32] = fp32  # a pinned precision that cannot run: fp32 and say why
    tile = np.random.default_rng(0).integers(0, 256, info.working_size, dtype=np.uint8)
    timings = {
        variant: _time(sessions, tile, settings.inference_slots) for variant, sessions in candidates.items()
    }
    chosen = min(timings, key=lambda variant: timings[variant].best_ms)
    sessions = candidates[chosen]
    if chosen is Variant.BF16:
        sessions = replace(sessions, big=fp32.solo)  # see the module doc
    return RuntimeChoice(
        sessions=sessions,
        reason=_reason(settings.precision, chosen, timings, skipped),
        timings=tuple(timings.values()),
        side_by_side=timings[chosen].best_ms < timings[chosen].solo_ms,
        tile_pixels=tile.size,
    )


def _open(settings: Settings, variant: Variant) -> Sessions:
    def predictor(threads: int, parallel_runs: int) -> Predictor:
        return Predictor(
            settings.model_path,
            providers=settings.provider_list,
            intra_op_threads=threads,
            inter_op_threads=settings.inter_op_threads,
            variant=variant,
            parallel_runs=parallel_runs,
            cache_capacity=settings.openvino_cache_capacity,
        )

    solo = predictor(settings.intra_op_threads, 1)
    one_thread = settings.intra_op_threads == 1 or settings.inference_slots == 1
    return Sessions(solo, solo if one_thread else predictor(1, settings.inference_slots))


def _time(sessions: Sessions, tile: np.ndarray, slots: int) -> Timing:
    """Warm both lanes (the first run allocates and picks kernels: paid before any client) and time them."""

    def runs(predictor: Predictor, count: int) -> list[float]:
        seconds = []
        for _ in range(count):
            started = time.perf_counter()
            predictor.predict(tile)
            seconds.append(time.perf_counter() - started)
        return seconds

    runs(sessions.solo, 1)
    solo_ms = statistics.median(runs(sessions.solo, TIMED_RUNS)) * 1000
    if sessions.shared is sessions.solo:
        return Timing(sessions.solo.variant.value, round(solo_ms, 2), None)
    with ThreadPoolExecutor(slots) as pool:
        list(pool.map(lambda _: runs(sessions.shared, 1), range(slots)))
        started = time.perf_counter()
        list(pool.map(lambda _: runs(sessions.shared, TIMED_RUNS), range(slots)))
        shared_ms = (time.perf_counter() - started) / (slots * TIMED_RUNS) * 1000
    return Timing(sessions.solo.variant.value, round(solo_ms, 2), round(shared_ms, 2))


def _reason(pinned: str, chosen: Variant, timings: dict[Variant, Timing], skipped: list[str]) -> str:
    timed = ", ".join(f"{variant} {timing.best_ms:.1f} ms" for variant, timing in timings.items())
    if pinned != "auto":
        head = f"pinned by TILESCAN_PRECISION={pinned}"
        if chosen.value != pinned:
            head = f"TILESCAN_PRECISION={pinned} cannot run here, so fp32"
    elif len(timings) == 1:
        head = f"{chosen}: the only precision this model may run at here"
    else:
        head = f"{chosen}: the fastest per tile ({timed})"
    return "; ".join([head, *skipped])
