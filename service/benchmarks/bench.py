"""Benchmark: onnxruntime alone vs the HTTP service, on real test-split tiles (``make bench``).

(a) ``session.run`` on already decoded arrays, one image at a time;
(b) a real ``tilescan-serve`` process on 127.0.0.1, at concurrency 1 and 8, JSON and PNG answers,
measured in turn with (a), round by round; and the server's CPU time per request at concurrency 1
beyond onnxruntime's own (the server counts onnxruntime's CPU time itself);
(c) overload: good answers per second with 64 connections beside the capacity with 8, the wait of
the accepted ones, and the answer to the first request after the overload; the same overload on a
service with a queue timeout of half the queue places' single requests;
(d) the peak and held memory of a fresh service for one 36 Mpx 16-bit PNG (and three float TIFFs);
plus the JSON / PNG / RLE response sizes. Prints a Markdown report with the targets of issues 4 and 9:
service throughput at c=8 >= 0.85 x direct, service p50 at c=1 <= direct p50 + 5 ms, PNG >= 20x
smaller than JSON, CPU overhead <= 3 ms per tile, goodput at 64 connections >= 0.9 x capacity at 8
with the accepted requests' p99 <= (queue places + 1) x the single-request time. Then the
primary's p50 at c=1 with shadow mirroring off and on (issue 8), with the drops it counts when the
shadow is down. Load goes to 127.0.0.1 only and is bounded in requests and seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import http.client
import io
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tilescan_service.client import multipart_body
from tilescan_service.config import Settings  # the servers' settings come from the same environment
from tilescan_service.engine import Prediction
from tilescan_service.rendering import render
from tilescan_service.schemas import OutputFormat
from tilescan_service.testing import free_port
from tilescan_shared.image import decode_gray
from tilescan_shared.masks import segment
from tilescan_shared.predictor import INPUT_NAME, Predictor

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Run:
    name: str
    latencies: list[float]  # seconds, one per image
    wall: float
    errors: int = 0
    cpu_s: float = 0.0  # CPU time of the process that did the work (direct: this one; HTTP: the server)

    @property
    def cpu_ms_per_image(self) -> float:
        return self.cpu_s / len(self.latencies) * 1000

    @property
    def images_per_s(self) -> float:
        return len(self.latencies) / self.wall

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000

    @staticmethod
    def merged(runs: list[Run]) -> Run:
        """One run out of several passes of the same measurement."""
        return Run(
            runs[0].name,
            [seconds for run in runs for seconds in run.latencies],
            sum(run.wall for run in runs),
            sum(run.errors for run in runs),
            sum(run.cpu_s for run in runs),
        )


def interleaved(rounds: int, measurements: dict[str, Callable[[], Run]]) -> dict[str, Run]:
    """Each measurement once per round, in turn, merged over the rounds.

    The speed of a shared VM drifts by tens of percent within minutes; measured in turn, every
    variant sees the same drift, so their ratios hold where back-to-back blocks would not.
    """
    passes: dict[str, list[Run]] = {name: [] for name in measurements}
    for _ in range(rounds):
        for name, measure in measurements.items():
            passes[name].append(measure())
    return {name: Run.merged(runs) for name, runs in passes.items()}


def load_test_tiles(limit: int) -> list[tuple[str, bytes]]:
    """Test-split tiles (ids and PNG bytes), classes interleaved so any prefix is a fair mix."""
    with open(REPO / "data/split.csv", newline="") as f:
        test_ids = {row["id"] for row in csv.DictReader(f) if row["split"] == "test"}
    by_class: dict[str, list[tuple[str, bytes]]] = {}
    with open(REPO / "data/ingested/manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["id"] in test_ids:
                data = (REPO / "data/ingested" / row["image"]).read_bytes()
                by_class.setdefault(row["cls"], []).append((row["id"], data))
    if not by_class:
        sys.exit("no test-split tiles found: run the ingest and split stages first (make train)")
    mixed = [tile for group in zip(*by_class.values(), strict=False) for tile in group]
    leftovers = [tile for tiles in by_class.values() for tile in tiles if tile not in mixed]
    return (mixed + leftovers)[:limit]


def direct_predictor(model: Path, arrays: list[np.ndarray], intra_op_threads: int = 0) -> Predictor:
    """A predictor with the service's session options, warmed up as the service warms its own."""
    predictor = Predictor(model, intra_op_threads=intra_op_threads)
    predictor.predict(arrays[0])
    return predictor


def bench_direct(session: ort.InferenceSession, arrays: list[np.ndarray], name: str) -> Run:
    """``session.run`` on each decoded tile once, one at a time."""
    latencies = []
    started, cpu_started = time.perf_counter(), time.process_time()
    for gray in arrays:
        t0 = time.perf_counter()
        session.run(None, {INPUT_NAME: gray[None, None]})  # every output (a tile score too), as served
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
        inference = predictor.predict(gray)
        cpu2 = time.thread_time()
        segmentation = segment(inference.probability, rule, inference.tile_score)
        render(Prediction(segmentation, rule, cpu2 - cpu1, predictor.info), OutputFormat(fmt))
        cpu_s += (cpu1 - cpu0) + (time.thread_time() - cpu2)
        latencies.append(time.perf_counter() - t0)
    wall = time.perf_counter() - started
    return Run(f"pipeline {fmt.upper()} (c=1, 1 thread)", latencies, wall, cpu_s=cpu_s)


def post(conn: http.client.HTTPConnection, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    conn.request("POST", path, body=body, headers={"Content-Type": content_type})
    response = conn.getresponse()
    return response.status, response.read()


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall, cpu_s = time.perf_counter() - started, process_cpu_s(server_pid) - cpu_started
    return Run(f"service {fmt.upper()} (c={concurrency})", latencies, wall, errors, cpu_s)


@dataclass(frozen=True)
class Load:
    """Clients posting in a loop for a while: what came back."""

    connections: int
    ok_latencies: list[float]  # seconds, one per 200
    rejected: int  # 503
    other: int  # any other status
    wall: float

    @property
    def goodput(self) -> float:
        return len(self.ok_latencies) / self.wall

    def ok_percentile(self, q: float) -> float:
        return float(np.percentile(self.ok_latencies, q)) * 1000 if self.ok_latencies else float("nan")

    @staticmethod
    def merged(loads: list[Load]) -> Load:
        """One measurement out of several spells of the same load."""
        return Load(
            loads[0].connections,
            [seconds for load in loads for seconds in load.ok_latencies],
            sum(load.rejected for load in loads),
            sum(load.other for load in loads),
            sum(load.wall for load in loads),
        )


def bench_load(
    port: int, bodies: list[tuple[bytes, str]], connections: int, seconds: float, honor_retry_after: bool
) -> Load:
    """``connections`` keep-alive clients post JSON requests back to back for ``seconds``.

    A 503 is retried at once, or after its ``Retry-After`` with ``honor_retry_after``. Goodput counts
    200s over the time until the last client is done (requests in flight at the end included).
    """
    ok: list[float] = []
    counts = {"rejected": 0, "other": 0}
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

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
    return Load(connections, ok, counts["rejected"], counts["other"], time.perf_counter() - started)


def one_request(port: int, body: tuple[bytes, str]) -> tuple[int, float]:
    """Status and seconds of a single request on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t0 = time.perf_counter()
    status, _ = post(conn, "/predict", *body)
    seconds = time.perf_counter() - t0
    conn.close()
    return status, seconds


def start_service(model: Path, port: int, log: Path, **settings: str) -> subprocess.Popen:
    env = {
        **os.environ,
        **settings,
        "TILESCAN_MODEL_PATH": str(model),
        "PORT": str(port),
        "TILESCAN_HOST": "127.0.0.1",
        "TILESCAN_DRAIN_SECONDS": "0",  # no load balancer to wait for when the benchmark ends
    }
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tilescan_service.serve"], env=env, stdout=out, stderr=out
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the service exited with {process.returncode}; see {log}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.1)
    process.terminate()
    sys.exit(f"the service did not become ready in 60 s; see {log}")


def stop_service(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=30)


@dataclass(frozen=True)
class MemoryRun:
    """RSS of a service process around big requests, in MB (10^6 bytes)."""

    case: str
    statuses: list[int]
    before_mb: float  # after start-up and a few ordinary tiles
    peak_growth_mb: float  # highest RSS while the big images were served, minus before
    held_mb: float  # RSS one second after the answers, minus before
    seconds: float

    def describe(self) -> str:
        return (
            f"{self.case} | HTTP {', '.join(map(str, self.statuses))} in {self.seconds:.1f} s; "
            f"RSS {self.before_mb:.0f} MB before, peak **{self.peak_growth_mb:+.0f} MB**, "
            f"**{self.held_mb:+.0f} MB** held after 1 s"
        )


def _rss_kb(pid: int, field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak since the last reset) of a process, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def _encoded(array: np.ndarray, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **options)
    return buf.getvalue()


def big_image_memory(
    model: Path, fmt: str = "png", image: str = "png16", at_once: int = 1, side: int = 6000
) -> MemoryRun:
    """Peak and held RSS growth of a fresh service for big images (Linux: reads /proc).

    ``image="png16"``: a ``side`` x ``side`` 16-bit PNG of zeros (68 kB upload at 6000); ``"float-tiff"``:
    the same size as a 32-bit float TIFF (LZW). ``at_once`` copies are posted together on their own
    connections. Everything the service holds for them comes from decoding, inference, the
    decision rule and rendering. The peak counter (``VmHWM``) is reset just before the requests.
    """
    if image == "png16":
        upload = _encoded(np.zeros((side, side), dtype=np.uint16), "PNG")
    else:
        upload = _encoded(np.zeros((side, side), dtype=np.float32), "TIFF", compression="tiff_lzw")
    big = multipart_body(upload, f"big.{image}")
    ordinary = multipart_body(_encoded(np.full((265, 375), 90, dtype=np.uint8), "PNG"), "tile.png")
    statuses: list[int] = []

    def post_big() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        statuses.append(post(conn, f"/predict?format={fmt}", *big)[0])
        conn.close()

    port = free_port()
    service = start_service(model, port, Path(os.environ.get("TMPDIR", "/tmp")) / "tilescan-bench-memory.log")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        for _ in range(5):
            post(conn, f"/predict?format={fmt}", *ordinary)
        conn.close()
        time.sleep(0.5)
        before = _rss_kb(service.pid, "VmRSS")
        Path(f"/proc/{service.pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        started = time.perf_counter()
        clients = [threading.Thread(target=post_big) for _ in range(at_once)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        seconds = time.perf_counter() - started
        peak = _rss_kb(service.pid, "VmHWM")
        time.sleep(1)
        held = _rss_kb(service.pid, "VmRSS")
    finally:
        stop_service(service)
    size = f"{len(upload) / 1000:,.0f} kB"
    case = f"{at_once} x {side}x{side} {image} of zeros ({size}), format={fmt}"
    growth = (peak - before) / 1000, (held - before) / 1000
    return MemoryRun(case, sorted(statuses), before / 1000, *growth, seconds)


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


def metric_samples(port: int) -> Iterator[Sample]:
    """Every sample on a service's ``/metrics``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    for family in text_string_to_metric_families(text):
        yield from family.samples


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


def report_shadow(
    runs: list[Run],
    cpu: dict[str, float],
    counts: dict[str, ShadowCounts],
    shadow_reports: list[str],
    mirror_ms: float,
) -> None:
    """Latency, and the primary's own CPU time per image: what neighbours on the machine skew least."""
    cpu_ms = [
        seconds * 1000 / max(len(run.latencies), 1) for run, seconds in zip(runs, cpu.values(), strict=True)
    ]
    print(
        "\n| measurement | images | p50 ms | p95 ms | p50 vs off | primary CPU ms/image | vs off "
        "| errors | sampled | compared | dropped |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for run, ms, count in zip(runs, cpu_ms, counts.values(), strict=True):
        drops = ", ".join(f"{reason} {n:.0f}" for reason, n in count.dropped.items() if n) or "0"
        print(
            f"| {run.name} | {len(run.latencies)} | {run.percentile(50):.1f} | {run.percentile(95):.1f} "
            f"| {run.percentile(50) - runs[0].percentile(50):+.1f} ms | {ms:.1f} | {ms - cpu_ms[0]:+.1f} ms "
            f"| {run.errors} | {count.sampled:.0f} | {count.compared:.0f} | {drops} |"
        )
    print(
        f"\nThe primary's own mirroring work, measured alone against the tiny-model shadow: "
        f"{mirror_ms:.2f} CPU ms a mirrored request (the upload, reading the answer, Dice)"
    )
    for shadow_report in shadow_reports:
        print(f"\n`make shadow-report` {shadow_report}")


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line
        ]
        cpu = names[0] if names else cpu
    providers = ", ".join(ort.get_available_providers())
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, onnxruntime {ort.__version__} ({providers})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models/tilescan.onnx")
    parser.add_argument("--images", type=int, default=48, help="test tiles to use")
    parser.add_argument("--rounds", type=int, default=4, help="passes over the tiles per measurement")
    parser.add_argument("--limit-s", type=float, default=90, help="time cap per HTTP measurement")
    parser.add_argument("--load-s", type=float, default=15, help="seconds of each load measurement")
    parser.add_argument("--shadow-only", action="store_true", help="only the shadow mirroring comparison")
    args = parser.parse_args()

    tiles = load_test_tiles(args.images)
    arrays = [decode_gray(data) for _, data in tiles]
    bodies = [multipart_body(data, f"{tile_id.replace('/', '_')}.png") for tile_id, data in tiles]
    sizes = [gray.shape for gray in arrays]
    print(f"{len(tiles)} test tiles, {min(sizes)} .. {max(sizes)} px; machine: {machine()}", flush=True)
    if args.shadow_only:
        report_shadow(*bench_shadow(args.model, tiles, bodies, args.rounds, args.limit_s))
        return

    session = direct_predictor(args.model, arrays).session
    port = free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / "tilescan-bench-service.log"
    service = start_service(args.model, port, log)
    try:
        # One untimed pass so the server's threads and allocator are warm too.
        bench_http(port, bodies[:8], "json", 1, 1, args.limit_s, service.pid)
        measurements: dict[str, Callable[[], Run]] = {
            "direct": lambda: bench_direct(session, arrays, "onnxruntime direct (c=1)")
        }
        for fmt in ("json", "png"):
            for concurrency in (1, 8):
                measurements[f"{fmt} {concurrency}"] = partial(
                    bench_http, port, bodies, fmt, concurrency, 1, args.limit_s, service.pid
                )
        runs = list(interleaved(args.rounds, measurements).values())
        print("overload runs ...", flush=True)
        # The same overload on a second service with a queue timeout of half the queue places'
        # single requests: the answers' time is that wait plus their own inference, rendering and
        # transfer under load (measured: 0.89 s of queue timeout gave a p99 of 1.09 s). What does
        # a bound on every answer's wait cost in goodput?
        queue_timeout_s = Settings().max_queue / 2 * single_request_ms(runs) / 1000
        timeout_port = free_port()
        timeout_service = start_service(
            args.model,
            timeout_port,
            log.with_name("tilescan-bench-queue-timeout.log"),
            TILESCAN_QUEUE_TIMEOUT_SECONDS=f"{queue_timeout_s:.3f}",
        )
        try:
            # In turn, as above: each load gets a third of its time per round.
            spells: dict[str, list[Load]] = {"queue timeout": [], "capacity": [], "at once": [], "polite": []}
            spell = args.load_s / 3
            bench_http(timeout_port, bodies[:8], "json", 1, 1, args.limit_s, timeout_service.pid)
            for _ in range(3):
                spells["queue timeout"].append(
                    bench_load(timeout_port, bodies, 64, spell, honor_retry_after=True)
                )
                spells["capacity"].append(bench_load(port, bodies, 8, spell, honor_retry_after=False))
                spells["at once"].append(bench_load(port, bodies, 64, spell, honor_retry_after=False))
                spells["polite"].append(bench_load(port, bodies, 64, spell, honor_retry_after=True))
        finally:
            stop_service(timeout_service)
        right_after = one_request(port, bodies[0])  # right after the last spell of 64 connections
        timed_out, capacity, overload, polite = (Load.merged(loads) for loads in spells.values())
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        response_sizes = {
            fmt: [len(post(conn, f"/predict?format={fmt}", body, ctype)[1]) for body, ctype in bodies]
            for fmt in ("json", "png", "rle")
        }
    finally:
        stop_service(service)

    cpu_runs, onnxruntime_s = bench_cpu(args, [data for _, data in tiles], arrays, bodies, log)
    report(runs, response_sizes)
    report_cpu(cpu_runs, onnxruntime_s)
    report_overload(
        runs,
        capacity,
        {"64, retry at once": overload, "64, honour Retry-After": polite},
        right_after,
        (queue_timeout_s, timed_out),
    )

    report_memory(
        [
            big_image_memory(args.model, "png"),
            big_image_memory(args.model, "png", side=1414),  # the largest the default pixel limit admits
            big_image_memory(args.model, "json"),
            big_image_memory(args.model, "png", "float-tiff", at_once=3),
        ]
    )
    report_shadow(*bench_shadow(args.model, tiles, bodies, args.rounds, args.limit_s))


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
    predictor = direct_predictor(args.model, arrays, intra_op_threads=1)
    session = predictor.session
    port = free_port()
    service = start_service(args.model, port, log, TILESCAN_INTRA_OP_THREADS="1")
    try:
        bench_http(port, bodies[:8], "json", 1, 1, args.limit_s, service.pid)
        measurements: dict[str, Callable[[], Run]] = {
            "direct": lambda: bench_direct(session, arrays, "onnxruntime direct (c=1, 1 thread)")
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


def report_cpu(runs: dict[str, Run], onnxruntime_s: dict[str, float]) -> None:
    direct = runs["direct"].cpu_ms_per_image
    by_fmt = {fmt: runs[fmt] for fmt in ("json", "png")}
    served = {f: run.cpu_ms_per_image for f, run in by_fmt.items()}
    inside = {f: onnxruntime_s[f] * 1000 / len(run.latencies) for f, run in by_fmt.items()}
    over = {f: served[f] - inside[f] for f in served}
    tile = {f: runs[f"pipeline {f}"].cpu_ms_per_image for f in by_fmt}
    print("\n| CPU time per image at c=1, one onnxruntime thread, measured in turn | JSON | PNG |")
    print("| --- | ---: | ---: |")
    print(f"| server process | {served['json']:.1f} ms | {served['png']:.1f} ms |")
    print(f"| of which onnxruntime (server's counter) | {inside['json']:.1f} ms | {inside['png']:.1f} ms |")
    verdict = "met" if max(over.values()) <= 3 else "MISSED"
    print(f"| **service's own (goal <= 3 ms: {verdict})** | {over['json']:+.1f} ms | {over['png']:+.1f} ms |")
    print(
        "| - of which the tile's work besides inference (decoding, rule, rendering; "
        f"the same calls in this process) | {tile['json']:.1f} ms | {tile['png']:.1f} ms |"
    )
    print(
        "| - of which serving (HTTP, multipart, threads, logs, metrics: the rest) "
        f"| {over['json'] - tile['json']:+.1f} ms | {over['png'] - tile['png']:+.1f} ms |"
    )
    print(f"| onnxruntime alone, in this process | {direct:.1f} ms | {direct:.1f} ms |")
    print(
        f"| server process - onnxruntime alone | {served['json'] - direct:+.1f} ms "
        f"| {served['png'] - direct:+.1f} ms |"
    )


def single_request_ms(runs: list[Run]) -> float:
    """The single-request time of the overload bound: the service's JSON p50 at c=1."""
    return {run.name: run for run in runs}["service JSON (c=1)"].percentile(50)


def report_overload(
    runs: list[Run],
    capacity: Load,
    overloads: dict[str, Load],
    after: tuple[int, float],
    queue_timeout: tuple[float, Load],
) -> None:
    settings = Settings()
    single = single_request_ms(runs)
    bound = (settings.max_queue + 1) * single
    queue_timeout_s, timed_out = queue_timeout
    print(f"\n| JSON load, {capacity.wall:.0f} s each | 200/s | vs 8 | 503s | other | p50 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    with_timeout = f"64, honour Retry-After, `TILESCAN_QUEUE_TIMEOUT_SECONDS={queue_timeout_s:.2f}`"
    for name, load in {"8 connections (capacity)": capacity, **overloads, with_timeout: timed_out}.items():
        print(
            f"| {name} | {load.goodput:.1f} | {load.goodput / capacity.goodput:.2f}x | {load.rejected} "
            f"| {load.other} | {load.ok_percentile(50):.0f} | {load.ok_percentile(99):.0f} |"
        )
    worst = min(load.goodput for load in overloads.values()) / capacity.goodput
    p99 = max(load.ok_percentile(99) for load in overloads.values())
    print(
        f"\ngoodput at 64 connections / capacity at 8: {worst:.2f}x (goal >= 0.9x: {_verdict(worst >= 0.9)})"
    )
    print(
        f"p99 of the accepted: {p99:.0f} ms; bound (queue {settings.max_queue} + 1) x single request "
        f"{single:.1f} ms = {bound:.0f} ms ({_verdict(p99 <= bound)})"
    )
    # Little's law: with every place taken, the mean time in the service is the places over the rate.
    places = settings.inference_slots + settings.max_queue
    rate = min(load.goodput for load in overloads.values())
    print(
        f"(with all {places} places taken at {rate:.1f} answers/s, the mean time in the service is "
        f"{places / rate * 1000:.0f} ms by Little's law)"
    )
    kept = timed_out.goodput / capacity.goodput
    print(
        f"with a queue timeout of queue {settings.max_queue} / 2 x single request "
        f"= {queue_timeout_s:.2f} s: "
        f"p99 of the accepted {timed_out.ok_percentile(99):.0f} ms "
        f"({_verdict(timed_out.ok_percentile(99) <= bound)}), goodput {kept:.2f}x "
        f"({_verdict(kept >= 0.9)}), 503s {timed_out.rejected} (refused or timed out in the queue)"
    )
    print(
        f"first request after the overload: {after[0]} in {after[1] * 1000:.0f} ms "
        f"({_verdict(after[0] == 200)})"
    )


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def report(runs: list[Run], sizes: dict[str, list[int]]) -> None:
    direct = runs[0]
    by_name = {run.name: run for run in runs}
    print("\n| measurement | images | images/s | p50 ms | p95 ms | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for run in runs:
        print(
            f"| {run.name} | {len(run.latencies)} | {run.images_per_s:.1f} | {run.percentile(50):.1f} "
            f"| {run.percentile(95):.1f} | {run.errors} |"
        )
    print("\n| target | JSON | PNG | goal |")
    print("| --- | ---: | ---: | --- |")
    ratio = {
        f: by_name[f"service {f.upper()} (c=8)"].images_per_s / direct.images_per_s for f in ("json", "png")
    }
    extra = {
        f: by_name[f"service {f.upper()} (c=1)"].percentile(50) - direct.percentile(50)
        for f in ("json", "png")
    }
    print(
        f"| throughput c=8 / direct | {ratio['json']:.2f}x | {ratio['png']:.2f}x | >= 0.85x "
        f"({'met' if min(ratio.values()) >= 0.85 else 'MISSED'}) |"
    )
    print(
        f"| p50 c=1 - direct p50 | {extra['json']:+.1f} ms | {extra['png']:+.1f} ms | <= +5 ms "
        f"({'met' if max(extra.values()) <= 5 else 'MISSED'}) |"
    )
    median = {fmt: statistics.median(values) for fmt, values in sizes.items()}
    size_ratio = median["json"] / median["png"]
    print("\n| response (median over the tiles) | bytes | vs PNG |")
    print("| --- | ---: | ---: |")
    for fmt in ("json", "png", "rle"):
        print(f"| {fmt.upper()} | {median[fmt]:,.0f} | {median[fmt] / median['png']:.1f}x |")
    verdict = "met" if size_ratio >= 20 else "MISSED"
    print(f"\nPNG is {size_ratio:.0f}x smaller than JSON (goal >= 20x: {verdict})")


def report_memory(runs: list[MemoryRun]) -> None:
    """Issue 9's memory target, peak growth <= 600 MB and <= 200 MB held, for each single-image PNG
    answer: a big image is either refused before decoding (413) or served within it."""
    print("\n| big image | result |")
    print("| --- | --- |")
    for run in runs:
        print(f"| {run.describe()} |")
    singles = [run for run in runs if len(run.statuses) == 1 and run.case.endswith("format=png")]
    ok = all(
        run.statuses == [413] or (run.statuses == [200] and run.peak_growth_mb <= 600 and run.held_mb <= 200)
        for run in singles
    )
    verdict = "met" if ok else "MISSED"
    print(f"\nbig images, PNG answer: refused, or peak <= +600 MB and held <= +200 MB ({verdict})")


if __name__ == "__main__":
    main()
