"""What ``make bench`` measures: onnxruntime alone, the service at 1 and 8 clients, CPU per request,
overload, memory for big images and shadow mirroring; :mod:`report` prints the results."""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
from harness import (
    REPO,
    Run,
    _encoded,
    _rss_kb,
    interleaved,
    metric_samples,
    post,
    process_cpu_s,
    start_service,
    stop_service,
)
from prometheus_client import CollectorRegistry

from tilescan_service.client import multipart_body
from tilescan_service.config import Settings  # the servers' settings come from the same environment
from tilescan_service.engine import Prediction
from tilescan_service.rendering import render
from tilescan_service.schemas import OutputFormat
from tilescan_service.testing import free_port
from tilescan_shared.drift import tile_stats
from tilescan_shared.image import decode_gray
from tilescan_shared.masks import segment
from tilescan_shared.predictor import CPU, Predictor, Variant
from tilescan_shared.runtimes import REDUCED, unavailable, variant_path


def served_precision(port: int) -> Variant:
    """The precision a running service chose (its ``/model`` runtime card)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/model")
    precision = json.loads(conn.getresponse().read())["runtime"]["precision"]
    conn.close()
    return Variant(precision)


def direct_predictor(
    model: Path, arrays: list[np.ndarray], intra_op_threads: int = 0, variant: Variant = Variant.FP32
) -> Predictor:
    """A predictor with the service's session options at ``variant`` (pass the service's own choice),
    warmed up on every tile."""
    predictor = Predictor(model, intra_op_threads=intra_op_threads, variant=variant)
    for gray in arrays:
        predictor.predict(gray)
    return predictor


def bench_direct(predictor: Predictor, arrays: list[np.ndarray], name: str) -> Run:
    """The runtime alone on each decoded tile once, one at a time: the model's whole answer as the
    service gets it (a second look where the model's rule says), no decision rule or rendering."""
    latencies = []
    rule = predictor.info.rule
    started, cpu_started = time.perf_counter(), time.process_time()
    for gray in arrays:
        t0 = time.perf_counter()
        predictor.predict(gray, rule)
        latencies.append(time.perf_counter() - t0)
    cpu_s = time.process_time() - cpu_started
    return Run(name, latencies, time.perf_counter() - started, cpu_s=cpu_s)


def bench_pipeline(predictor: Predictor, images: list[bytes], fmt: str) -> Run:
    """The service's own calls around onnxruntime, in this process and in the service's order:
    decoding, inference, decision rule, rendering. ``cpu_s`` leaves onnxruntime's out: it is what a
    tile costs besides inference before any HTTP (caches are cold after inference)."""
    rule, latencies, cpu_s = predictor.info.rule, [], 0.0
    started = time.perf_counter()
    for data in images:
        t0, cpu0 = time.perf_counter(), time.thread_time()
        gray = decode_gray(data)
        cpu1 = time.thread_time()
        inference = predictor.predict(gray, rule)
        cpu2 = time.thread_time()
        segmentation = segment(inference.probability, rule, inference.tile_score)
        peak = float(inference.probability.max())
        prediction = Prediction(segmentation, rule, cpu2 - cpu1, predictor.info, peak, tile_stats(gray))
        render(prediction, OutputFormat(fmt))
        cpu_s += (cpu1 - cpu0) + (time.thread_time() - cpu2)
        latencies.append(time.perf_counter() - t0)
    wall = time.perf_counter() - started
    return Run(f"pipeline {fmt.upper()} (c=1, 1 thread)", latencies, wall, cpu_s=cpu_s)


def bench_http(
    port: int,
    bodies: list[tuple[bytes, str]],
    fmt: str,
    concurrency: int,
    rounds: int,
    limit_s: float,
    server_pid: int,
) -> Run:
    """``concurrency`` keep-alive clients share the queue of requests; stops early at ``limit_s``."""
    jobs = [body for _ in range(rounds) for body in bodies]
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    next_job = 0
    deadline = time.perf_counter() + limit_s

    def client() -> None:
        nonlocal next_job, errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.perf_counter() < deadline:
            with lock:
                if next_job >= len(jobs):
                    break
                body, content_type = jobs[next_job]
                next_job += 1
            t0 = time.perf_counter()
            status, _ = post(conn, f"/predict?format={fmt}", body, content_type)
            seconds = time.perf_counter() - t0
            with lock:
                if status == 200:
                    latencies.append(seconds)
                else:
                    errors += 1
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started, cpu_started = time.perf_counter(), process_cpu_s(server_pid)
    client_cpu_started = time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall, cpu_s = time.perf_counter() - started, process_cpu_s(server_pid) - cpu_started
    client_cpu_s = time.process_time() - client_cpu_started
    return Run(f"service {fmt.upper()} (c={concurrency})", latencies, wall, errors, cpu_s, client_cpu_s)


# The share of a load's time whose requests show a steady overload: past its start, before its end
# (when the clients stop, the requests left in the line are answered with nothing behind them).
MIDDLE = (0.1, 0.7)


@dataclass(frozen=True)
class Load:
    """Clients posting in a loop for a while: what came back."""

    connections: int
    ok_latencies: list[float]  # seconds, one per 200
    rejected: int  # 503
    other: int  # any other status
    wall: float
    seconds: float  # how long the clients kept sending
    ok_sent: list[float]  # when each 200's request was sent, from the start

    @property
    def goodput(self) -> float:
        return len(self.ok_latencies) / self.wall

    def ok_percentile(self, q: float, sent_between: tuple[float, float] | None = None) -> float:
        """The ``q``th percentile of the 200s' latencies in ms (of those sent in a share of the time)."""
        latencies = self.ok_latencies
        if sent_between is not None:
            low, high = (share * self.seconds for share in sent_between)
            pairs = zip(self.ok_latencies, self.ok_sent, strict=True)
            latencies = [seconds for seconds, sent in pairs if low <= sent < high]
        return float(np.percentile(latencies, q)) * 1000 if latencies else float("nan")

    @staticmethod
    def merged(loads: list[Load]) -> Load:
        """One measurement out of several spells of the same load (send times from each spell's start)."""
        return Load(
            loads[0].connections,
            [seconds for load in loads for seconds in load.ok_latencies],
            sum(load.rejected for load in loads),
            sum(load.other for load in loads),
            sum(load.wall for load in loads),
            loads[0].seconds,
            [sent for load in loads for sent in load.ok_sent],
        )


def bench_load(
    port: int, bodies: list[tuple[bytes, str]], connections: int, seconds: float, honor_retry_after: bool
) -> Load:
    """``connections`` keep-alive clients post JSON requests back to back for ``seconds``.

    A 503 is retried at once, or after its ``Retry-After`` with ``honor_retry_after``. Goodput counts
    200s over the time until the last client is done (requests in flight at the end included).
    """
    ok: list[float] = []
    sent: list[float] = []
    counts = {"rejected": 0, "other": 0}
    lock = threading.Lock()
    begun = time.perf_counter()
    stop = begun + seconds

    def client(first: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        job = first
        while time.perf_counter() < stop:
            body, content_type = bodies[job % len(bodies)]
            job += connections
            t0 = time.perf_counter()
            conn.request("POST", "/predict", body=body, headers={"Content-Type": content_type})
            response = conn.getresponse()
            response.read()
            seconds_taken = time.perf_counter() - t0
            with lock:
                if response.status == 200:
                    ok.append(seconds_taken)
                    sent.append(t0 - begun)
                elif response.status == 503:
                    counts["rejected"] += 1
                else:
                    counts["other"] += 1
            if response.status == 503 and honor_retry_after:
                pause = float(response.getheader("Retry-After", "1"))
                time.sleep(max(0.0, min(pause, stop - time.perf_counter())))
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return Load(connections, ok, counts["rejected"], counts["other"], wall, seconds, sent)


@dataclass(frozen=True)
class MemoryRun:
    """RSS of a service process around big requests or a stream of tiles, in MB (10^6 bytes)."""

    case: str
    statuses: list[int]
    before_mb: float  # after start-up and a few ordinary tiles
    peak_growth_mb: float  # highest RSS while they were served, minus before
    held_mb: float  # RSS one second after the answers, minus before
    seconds: float

    def describe(self) -> str:
        counts = Counter(self.statuses)
        statuses = ", ".join(str(s) if n == 1 else f"{s} x {n}" for s, n in sorted(counts.items()))
        return (
            f"{self.case} | HTTP {statuses} in {self.seconds:.1f} s; "
            f"RSS {self.before_mb:.0f} MB before, peak **{self.peak_growth_mb:+.0f} MB**, "
            f"**{self.held_mb:+.0f} MB** held after 1 s"
        )


def _fresh_service_memory(
    model: Path, warm_up: Callable[[int], None], client: Callable[[int], None], clients: int
) -> tuple[float, float, float, float]:
    """A fresh service on ``model``: ``warm_up(port)``, then ``client(port)`` on ``clients`` threads at
    once. RSS before them, its peak growth while they ran (``VmHWM``, reset just before) and the growth
    held 1 s after, in MB (10^6 bytes; Linux: reads /proc), and the seconds they took."""
    port = free_port()
    service = start_service(model, port, Path(os.environ.get("TMPDIR", "/tmp")) / "tilescan-bench-memory.log")
    try:
        warm_up(port)
        time.sleep(0.5)
        before = _rss_kb(service.pid, "VmRSS")
        Path(f"/proc/{service.pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(port,)) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        peak = _rss_kb(service.pid, "VmHWM")
        time.sleep(1)
        held = _rss_kb(service.pid, "VmRSS")
    finally:
        stop_service(service)
    return before / 1000, (peak - before) / 1000, (held - before) / 1000, seconds


def _post_all(port: int, path: str, bodies: list[tuple[bytes, str]]) -> list[int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    statuses = [post(conn, path, *body)[0] for body in bodies]
    conn.close()
    return statuses


def big_image_memory(
    model: Path, fmt: str = "png", image: str = "png16", at_once: int = 1, side: int = 6000
) -> MemoryRun:
    """Peak and held RSS growth of a fresh service for big images, after five ordinary tiles.

    ``image="png16"``: a ``side`` x ``side`` 16-bit PNG of zeros (68 kB upload at 6000); ``"float-tiff"``:
    the same size as a 32-bit float TIFF (LZW). ``at_once`` copies are posted together on their own
    connections. Everything the service holds for them comes from decoding, inference, the
    decision rule and rendering.
    """
    if image == "png16":
        upload = _encoded(np.zeros((side, side), dtype=np.uint16), "PNG")
    else:
        upload = _encoded(np.zeros((side, side), dtype=np.float32), "TIFF", compression="tiff_lzw")
    big = multipart_body(upload, f"big.{image}")
    ordinary = multipart_body(_encoded(np.full((265, 375), 90, dtype=np.uint8), "PNG"), "tile.png")
    path = f"/predict?format={fmt}"
    statuses: list[int] = []
    measured = _fresh_service_memory(
        model,
        lambda port: _post_all(port, path, [ordinary] * 5),
        lambda port: statuses.extend(_post_all(port, path, [big])),
        at_once,
    )
    size = f"{len(upload) / 1000:,.0f} kB"
    case = f"{at_once} x {side}x{side} {image} of zeros ({size}), format={fmt}"
    return MemoryRun(case, sorted(statuses), *measured)


def tile_stream_memory(model: Path, tiles: list[tuple[str, bytes]], connections: int = 2) -> MemoryRun:
    """Peak and held RSS growth of a fresh service answering every tile once, after five of them.

    Plant tiles come in many sizes (the dataset has almost one size per tile, 128 shapes once padded to
    the network's stride), and what a runtime keeps per shape, or leaves in the heaps, grows with every
    new one until its cache is full: a stream measures it where a few tiles sent again and again cannot.
    """
    bodies = [multipart_body(data, f"{tile_id.replace('/', '_')}.png") for tile_id, data in tiles]
    sizes = {decode_gray(data).shape for _, data in tiles}
    statuses: list[int] = []
    lock = threading.Lock()
    queue = iter(bodies)

    def client(port: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while True:
            with lock:
                body = next(queue, None)
            if body is None:
                break
            statuses.append(post(conn, "/predict", *body)[0])
        conn.close()

    measured = _fresh_service_memory(
        model, lambda port: _post_all(port, "/predict", bodies[:5]), client, connections
    )
    case = f"every tile once ({len(tiles)} tiles, {len(sizes)} sizes), {connections} connections"
    return MemoryRun(case, statuses, *measured)


@dataclass(frozen=True)
class ShadowCounts:
    sampled: float = 0.0
    compared: float = 0.0
    dropped: dict[str, float] = field(default_factory=dict)

    def __sub__(self, before: ShadowCounts) -> ShadowCounts:
        return ShadowCounts(
            self.sampled - before.sampled,
            self.compared - before.compared,
            {reason: n - before.dropped.get(reason, 0) for reason, n in self.dropped.items()},
        )


def shadow_counts(port: int, limit_s: float = 30) -> ShadowCounts:
    """A primary's mirroring counters, read once every sampled request was compared or dropped."""
    deadline = time.monotonic() + limit_s
    while True:
        sampled, compared, dropped = 0.0, 0.0, {}
        for sample in metric_samples(port):
            if sample.name == "tilescan_shadow_sampled_total":
                sampled = sample.value
            elif sample.name == "tilescan_shadow_compared_total":
                compared += sample.value
            elif sample.name == "tilescan_shadow_dropped_total":
                dropped[sample.labels["reason"]] = sample.value
        if compared + sum(dropped.values()) >= sampled or time.monotonic() > deadline:
            return ShadowCounts(sampled, compared, dropped)
        time.sleep(0.1)


async def mirror_cpu_ms(shadow_url: str, tiles: list[tuple[str, bytes]], rounds: int) -> float:
    """The primary's CPU ms per mirrored request, measured in this process on the primary's code path.

    A ``ShadowMirror`` as the service runs it (same settings) sends every tile to ``shadow_url`` and
    compares the answers with a mask of the tile's size; nothing else runs in this process meanwhile.
    """
    from tilescan_service.shadow import ShadowMirror
    from tilescan_shared.masks import Segmentation

    masks = [Segmentation(np.zeros(decode_gray(data).shape, dtype=np.uint8), []) for _, data in tiles]
    settings = Settings(shadow_url=shadow_url, shadow_queue_size=len(tiles) * rounds)
    mirror = ShadowMirror(settings, CollectorRegistry())
    await mirror.start()
    try:
        started = time.process_time()
        for _ in range(rounds):
            for (_, data), mask in zip(tiles, masks, strict=True):
                mirror.offer(data, None, mask, "primary")
        await mirror.drained()
        return (time.process_time() - started) * 1000 / (len(tiles) * rounds)
    finally:
        await mirror.stop()


def bench_shadow(
    model: Path, tiles: list[tuple[str, bytes]], bodies: list[tuple[bytes, str]], rounds: int, limit_s: float
) -> tuple[list[Run], dict[str, float], dict[str, ShadowCounts], list[str], float]:
    """Primary p50 at c=1 (JSON) with mirroring off, on with the shadow down, on with a live shadow.

    All primaries and shadows run at once and the measurements alternate round by round, so drift
    on the machine hits every variant alike. A shadow on this machine shares the primary's CPUs,
    which a shadow on its own host would not, so there are two live shadows: the same model (its
    inferences compete with the primary's for the cores) and ``tilescan_shared.testing``'s tiny
    model (a different decision rule whose inference costs next to nothing), which leaves the
    primary's own mirroring cost: sampling, queueing, the upload, reading the RLE answer, Dice.
    """
    from tilescan_shared.testing import write_tiny_model  # needs onnx (the test extra)

    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    tiny = write_tiny_model(tmp / "tilescan-bench-tiny.onnx", version="tiny-shadow")
    same_port, tiny_port, down_port = free_port(), free_port(), free_port()  # nothing on down_port
    variants = {
        "mirroring off": {},
        "mirroring on, shadow down": {"TILESCAN_SHADOW_URL": f"http://127.0.0.1:{down_port}"},
        "mirroring on, tiny-model shadow": {"TILESCAN_SHADOW_URL": f"http://127.0.0.1:{tiny_port}"},
        "mirroring on, same-model shadow": {"TILESCAN_SHADOW_URL": f"http://127.0.0.1:{same_port}"},
    }
    processes = [
        start_service(model, same_port, tmp / "tilescan-bench-shadow.log"),
        start_service(tiny, tiny_port, tmp / "tilescan-bench-shadow-tiny.log"),
    ]
    ports: dict[str, int] = {}
    try:
        for i, (name, env) in enumerate(variants.items()):
            ports[name] = free_port()
            processes.append(start_service(model, ports[name], tmp / f"tilescan-bench-primary{i}.log", **env))
        pids = dict(zip(variants, (process.pid for process in processes[2:]), strict=True))
        for name, port in ports.items():  # warm-up, untimed (and not counted below)
            bench_http(port, bodies[:8], "json", 1, 1, limit_s, pids[name])
        warm = {name: shadow_counts(port) for name, port in ports.items()}
        cpu_before = {name: process_cpu_s(pid) for name, pid in pids.items()}
        latencies: dict[str, list[float]] = {name: [] for name in variants}
        walls = dict.fromkeys(variants, 0.0)
        errors = dict.fromkeys(variants, 0)
        for _ in range(rounds):
            for name, port in ports.items():
                run = bench_http(port, bodies, "json", 1, 1, limit_s, pids[name])
                latencies[name] += run.latencies
                walls[name] += run.wall
                errors[name] += run.errors
        counts = {name: shadow_counts(port) - warm[name] for name, port in ports.items()}  # drains
        cpu = {name: process_cpu_s(pid) - cpu_before[name] for name, pid in pids.items()}
        asyncio.run(mirror_cpu_ms(f"http://127.0.0.1:{tiny_port}", tiles[:8], 1))  # warm-up
        mirror_ms = asyncio.run(mirror_cpu_ms(f"http://127.0.0.1:{tiny_port}", tiles, rounds))
        reports = [
            subprocess.run(
                [sys.executable, str(REPO / "scripts/shadow_report.py"), f"http://127.0.0.1:{ports[name]}"],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
            for name in variants
            if name.endswith("-model shadow")
        ]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
    runs = [
        Run(f"primary JSON (c=1), {name}", latencies[name], walls[name], errors[name]) for name in variants
    ]
    return runs, cpu, counts, reports, mirror_ms


def bench_capture(
    model: Path, bodies: list[tuple[bytes, str]], rounds: int, limit_s: float
) -> tuple[list[Run], dict[str, float], dict[str, float]]:
    """Primary p50 at c=1 (JSON) with capture off and on, alternating round by round (issue 18).

    Capture on keeps every tile (``TILESCAN_CAPTURE_SAMPLE_RATE=1``, the most it can write) to a folder:
    the first round stores each tile, later rounds find it there (dedup by hash). Returns the runs, each
    service's CPU seconds, and the capturing one's stored and dropped counts.
    """
    store = Path(tempfile.mkdtemp(prefix="tilescan-bench-captures-"))
    variants = {
        "capture off": {},
        "capture on, every tile": {"TILESCAN_CAPTURE_URL": str(store), "TILESCAN_CAPTURE_SAMPLE_RATE": "1"},
    }
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    ports = {name: free_port() for name in variants}
    processes = {
        name: start_service(model, ports[name], tmp / f"tilescan-bench-capture{i}.log", **env)
        for i, (name, env) in enumerate(variants.items())
    }
    try:
        for name, port in ports.items():  # warm-up, untimed
            bench_http(port, bodies[:8], "json", 1, 1, limit_s, processes[name].pid)
        cpu_before = {name: process_cpu_s(p.pid) for name, p in processes.items()}
        measurements = {
            name: partial(bench_http, port, bodies, "json", 1, 1, limit_s, processes[name].pid)
            for name, port in ports.items()
        }
        runs = interleaved(rounds, measurements)
        cpu = {name: process_cpu_s(p.pid) - cpu_before[name] for name, p in processes.items()}
        counts = {
            f"{sample.name.removesuffix('_total')} {sample.labels['reason']}": sample.value
            for sample in metric_samples(ports["capture on, every tile"])
            if sample.name in ("tilescan_capture_stored_total", "tilescan_capture_dropped_total")
        }
    finally:
        for process in processes.values():
            stop_service(process)
        shutil.rmtree(store, ignore_errors=True)
    return [replace(run, name=f"primary JSON (c=1), {name}") for name, run in runs.items()], cpu, counts


@dataclass(frozen=True)
class ModelRun:
    """One model served with default settings: its answers at 1 and 8 connections and how it ran."""

    model: str
    precision: str  # what the service chose (TILESCAN_PRECISION=auto)
    one: Run
    eight: Run
    second_looks: float  # share of its answers made from four mirrored views
    fresh: Run  # 8 connections, tiles it had not seen, each once


FRESH_CHUNKS = 6  # the new tiles of bench_models, sent in turn


def bench_models(
    services: list[tuple[str, dict[str, str]]],
    bodies: list[tuple[bytes, str]],
    fresh: list[tuple[bytes, str]],
    rounds: int,
    limit_s: float,
    log: Path,
) -> list[ModelRun]:
    """What serving each model costs (issue 16's serving cost): a service per (model file, settings),
    with the defaults for the rest (its own precision choice, its own decision rule and review band).
    First the ``fresh`` tiles, each once, in ``FRESH_CHUNKS`` chunks at 8 connections, the services in
    turn chunk by chunk (a plant's tiles come in many sizes, and what a runtime keeps of the shapes it
    ran pays only on the ones that come again); then the ``bodies``, JSON at 1 and 8 connections, all
    measured in turn round by round (``interleaved``)."""
    names = [Path(model).name + "".join(f", {k}={v}" for k, v in env.items()) for model, env in services]
    ports = [free_port() for _ in services]
    processes = [
        start_service(Path(model), port, log.with_name(f"tilescan-bench-model{i}.log"), **env)
        for i, ((model, env), port) in enumerate(zip(services, ports, strict=True))
    ]
    try:
        chunks = [fresh[i::FRESH_CHUNKS] for i in range(FRESH_CHUNKS)]
        pending = [iter(chunks) for _ in services]

        def next_chunk(i: int) -> Run:
            return bench_http(ports[i], next(pending[i]), "json", 8, 1, limit_s, processes[i].pid)

        streams = interleaved(FRESH_CHUNKS, {f"{i}": partial(next_chunk, i) for i in range(len(services))})
        measurements: dict[str, Callable[[], Run]] = {}
        for i, (port, process) in enumerate(zip(ports, processes, strict=True)):
            bench_http(port, bodies, "json", 8, 1, limit_s, process.pid)  # warm-up (each tile size)
            measurements[f"{i} 1"] = partial(bench_http, port, bodies, "json", 1, 1, limit_s, process.pid)
            measurements[f"{i} 8"] = partial(bench_http, port, bodies, "json", 8, 1, limit_s, process.pid)
        runs = interleaved(rounds, measurements)
        results = []
        for i, port in enumerate(ports):
            precision = served_precision(port).value
            counts = {
                sample.name: sample.value
                for sample in metric_samples(port)
                if sample.name in ("tilescan_second_looks_total", "tilescan_image_pixels_count")
            }
            share = counts.get("tilescan_second_looks_total", 0.0) / counts["tilescan_image_pixels_count"]
            one, eight = runs[f"{i} 1"], runs[f"{i} 8"]
            results.append(ModelRun(names[i], precision, one, eight, share, streams[f"{i}"]))
    finally:
        for process in processes:
            stop_service(process)
    return results


def bench_cpu(
    args: argparse.Namespace,
    images: list[bytes],
    arrays: list[np.ndarray],
    bodies: list[tuple[bytes, str]],
    log: Path,
) -> tuple[dict[str, Run], dict[str, float]]:
    """CPU time per image at c=1, one onnxruntime thread: onnxruntime alone, and the server, split.

    With a thread pool, onnxruntime's threads spin while they wait for each other, and how long
    depends on what else the machine runs: CPU time would measure the neighbours. One thread has no
    pool and no spinning, and then the server's ``tilescan_inference_cpu_seconds_total`` is all of
    onnxruntime's CPU time in the server: the rest of the process's CPU time is the service's own.
    The same calls run in this process too (:func:`bench_pipeline`), to split the service's own CPU
    time into the tile's work around inference and the serving (HTTP, threads, logs, metrics).
    Returns the runs by name (the server's CPU in ``cpu_s``) and onnxruntime's seconds in the server.
    """
    port = free_port()
    service = start_service(args.model, port, log, TILESCAN_INTRA_OP_THREADS="1")
    try:
        precision = served_precision(port)
        predictor = direct_predictor(args.model, arrays, intra_op_threads=1, variant=precision)
        bench_http(port, bodies[:8], "json", 1, 1, args.limit_s, service.pid)
        measurements: dict[str, Callable[[], Run]] = {
            "direct": lambda: bench_direct(predictor, arrays, f"runtime alone, {precision} (c=1, 1 thread)")
        }
        onnxruntime_s: dict[str, float] = {}
        for fmt in ("json", "png"):
            measurements[f"pipeline {fmt}"] = partial(bench_pipeline, predictor, images, fmt)

            def measure(fmt: str = fmt) -> Run:
                before = inference_cpu_s(port)
                run = bench_http(port, bodies, fmt, 1, 1, args.limit_s, service.pid)
                onnxruntime_s[fmt] = onnxruntime_s.get(fmt, 0.0) + inference_cpu_s(port) - before
                return run

            measurements[fmt] = measure
        runs = interleaved(args.rounds, measurements)
    finally:
        service.terminate()
        service.wait(timeout=30)
    return runs, onnxruntime_s


def inference_cpu_s(port: int) -> float:
    """The server's ``tilescan_inference_cpu_seconds_total``, all lanes."""
    return sum(s.value for s in metric_samples(port) if s.name == "tilescan_inference_cpu_seconds_total")


@dataclass(frozen=True)
class PrecisionRun:
    """One precision: its runtime alone at its best layout, and the service pinned to it at 8 clients."""

    precision: str
    solo: Run  # the runtime alone, one inference at a time on every thread
    side_by_side: Run  # the runtime alone, ``slots`` single-thread inferences at once
    service: Run  # the HTTP service at 8 connections, JSON

    @property
    def runtime_images_per_s(self) -> float:
        return max(self.solo.images_per_s, self.side_by_side.images_per_s)


def measurement_model(model: Path, folder: Path) -> Path:
    """A copy of ``model`` (and its int8 sibling) that lists every reduced precision as passed.

    For timing only: which precisions the served model may run is evaluation's call, and a precision
    that failed it still has a cost worth knowing.
    """
    import onnx

    from tilescan_shared.model_info import read_info, stamp

    copy = folder / model.name
    for variant in Variant:
        source = variant_path(model, variant)
        if source.exists():
            loaded = onnx.load(str(source))
            info = read_info(loaded)
            listed = {v.value: info.variants.get(v.value, {"timing only": True}) for v in REDUCED}
            stamp(loaded, replace(info, variants=listed))
            onnx.save(loaded, str(variant_path(copy, variant)))
    return copy


def bench_precision(
    model: Path,
    arrays: list[np.ndarray],
    bodies: list[tuple[bytes, str]],
    rounds: int,
    limit_s: float,
    log: Path,
) -> tuple[list[PrecisionRun], dict[str, str]]:
    """Each precision that can run here, in turn round by round: the runtime alone (solo and side by
    side, as the service's two lanes) and a service pinned to it at 8 connections. Also returns what
    the service picks with the default ``TILESCAN_PRECISION=auto`` (its ``/model`` runtime card)."""
    slots = Settings().inference_slots
    with tempfile.TemporaryDirectory() as tmp:
        copy = measurement_model(model, Path(tmp))
        precisions = [v for v in Variant if unavailable(v, copy, [CPU]) is None]
        services, measurements = {}, {}
        try:
            for variant in precisions:
                port = free_port()
                services[variant] = start_service(
                    copy,
                    port,
                    log.with_name(f"tilescan-bench-{variant}.log"),
                    TILESCAN_PRECISION=variant.value,
                )
                solo = Predictor(copy, variant=variant)
                shared = Predictor(copy, intra_op_threads=1, variant=variant, parallel_runs=slots)
                solo.predict(arrays[0]), shared.predict(arrays[0])
                bench_direct(solo, arrays, "warm")  # OpenVINO compiles each new tile size once
                bench_http(port, bodies, "json", 8, 1, limit_s, services[variant].pid)
                measurements[f"{variant} solo"] = partial(
                    bench_direct, solo, arrays, f"{variant} alone, solo"
                )
                measurements[f"{variant} side by side"] = partial(
                    bench_side_by_side, shared, arrays, slots, f"{variant} alone, {slots} at once"
                )
                measurements[f"{variant} service"] = partial(
                    bench_http, port, bodies, "json", 8, 1, limit_s, services[variant].pid
                )
            runs = interleaved(rounds, measurements)
            port = free_port()
            auto = start_service(copy, port, log.with_name("tilescan-bench-auto.log"))
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request("GET", "/model")
                card = json.loads(conn.getresponse().read())["runtime"]
            finally:
                stop_service(auto)
        finally:
            for service in services.values():
                stop_service(service)
    results = [
        PrecisionRun(v.value, runs[f"{v} solo"], runs[f"{v} side by side"], runs[f"{v} service"])
        for v in precisions
    ]
    return results, card


def bench_side_by_side(predictor: Predictor, arrays: list[np.ndarray], threads: int, name: str) -> Run:
    """``threads`` callers share the tiles, each running one inference at a time on ``predictor``."""
    latencies: list[float] = []
    lock = threading.Lock()
    queue = iter(arrays)

    def caller() -> None:
        while True:
            with lock:
                gray = next(queue, None)
            if gray is None:
                return
            t0 = time.perf_counter()
            predictor.predict(gray, predictor.info.rule)
            with lock:
                latencies.append(time.perf_counter() - t0)

    started, cpu_started = time.perf_counter(), time.process_time()
    callers = [threading.Thread(target=caller) for _ in range(threads)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    return Run(name, latencies, time.perf_counter() - started, cpu_s=time.process_time() - cpu_started)


def single_request_ms(runs: list[Run]) -> float:
    """The single-request time of the overload bound: the service's JSON p50 at c=1."""
    return {run.name: run for run in runs}["service JSON (c=1)"].percentile(50)


def overload_bound_ms(max_queue: int, single_ms: float) -> float:
    """What the accepted answers of a full service may take: (queue places + 1) single requests."""
    return (max_queue + 1) * single_ms
