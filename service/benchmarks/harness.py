"""The benchmarks' plumbing: test tiles, a measured run, services started and stopped, HTTP posts,
process CPU and memory readings, the machine's description."""

from __future__ import annotations

import csv
import http.client
import io
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tilescan_service.testing import start_serve

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Run:
    name: str
    latencies: list[float]  # seconds, one per image
    wall: float
    errors: int = 0
    cpu_s: float = 0.0  # CPU time of the process that did the work (direct: this one; HTTP: the server)
    # HTTP: the CPU time the clients themselves used (this process), taken from the service's CPUs when
    # both run on one machine
    client_cpu_s: float = 0.0

    @property
    def cpu_ms_per_image(self) -> float:
        return self.cpu_s / len(self.latencies) * 1000

    @property
    def client_cpu_ms_per_image(self) -> float:
        return self.client_cpu_s / len(self.latencies) * 1000

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
            sum(run.client_cpu_s for run in runs),
        )


def interleaved(rounds: int, measurements: dict[str, Callable[[], Run]]) -> dict[str, Run]:
    """Each measurement once per round, in turn (every other round in reverse), merged over the rounds.

    The speed of a shared VM drifts by tens of percent within minutes; measured in turn, every
    variant sees the same drift, so their ratios hold where back-to-back blocks would not.
    """
    passes: dict[str, list[Run]] = {name: [] for name in measurements}
    for i in range(rounds):
        # Every other round in reverse: the one measured first in a round is measured last in the next.
        for name, measure in list(measurements.items())[:: 1 if i % 2 == 0 else -1]:
            passes[name].append(measure())
    return {name: Run.merged(runs) for name, runs in passes.items()}


def load_tiles(limit: int | None = None, split: str | None = "test") -> list[tuple[str, bytes]]:
    """Tiles of a split (None: every split; ids and PNG bytes; the first ``limit``, default all), classes
    interleaved so any prefix is a fair mix."""
    with open(REPO / "data/split.csv", newline="") as f:
        ids = {row["id"] for row in csv.DictReader(f) if split in (None, row["split"])}
    by_class: dict[str, list[tuple[str, bytes]]] = {}
    with open(REPO / "data/ingested/manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["id"] in ids:
                data = (REPO / "data/ingested" / row["image"]).read_bytes()
                by_class.setdefault(row["cls"], []).append((row["id"], data))
    if not by_class:
        sys.exit(f"no {split or 'dataset'} tiles found: run the ingest and split stages first (make data)")
    mixed = [tile for group in zip(*by_class.values(), strict=False) for tile in group]
    taken = set(mixed)
    leftovers = [tile for tiles in by_class.values() for tile in tiles if tile not in taken]
    return (mixed + leftovers)[:limit]


def post(conn: http.client.HTTPConnection, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    conn.request("POST", path, body=body, headers={"Content-Type": content_type})
    response = conn.getresponse()
    return response.status, response.read()


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (Linux ``/proc``)."""
    return _stat_cpu_s(Path(f"/proc/{pid}/stat"))


def thread_cpu_s(pid: int) -> dict[int, float]:
    """User + system CPU seconds of each of a process's threads, by OS thread id (Linux ``/proc``)."""
    seconds = {}
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            seconds[int(stat.parent.name)] = _stat_cpu_s(stat)
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    return seconds


def _stat_cpu_s(stat: Path) -> float:
    """utime + stime of a ``/proc`` ``stat`` file, in seconds."""
    fields = stat.read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_request(port: int, body: tuple[bytes, str]) -> tuple[int, float]:
    """Status and seconds of a single request on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t0 = time.perf_counter()
    status, _ = post(conn, "/predict", *body)
    seconds = time.perf_counter() - t0
    conn.close()
    return status, seconds


def settings_spec(text: str) -> tuple[str, dict[str, str]]:
    """``what:VAR=value,VAR=value`` (nothing after the colon: the defaults) -> ``what`` and the settings."""
    what, _, assignments = text.partition(":")
    return what, dict(pair.split("=", 1) for pair in assignments.split(",") if pair)


def start_service(model: Path, port: int, log: Path, **settings: str) -> subprocess.Popen:
    """A ready ``tilescan-serve`` on ``port`` with ``settings``, its output in ``log``; exits if it fails."""
    settings = {"TILESCAN_LOG_LEVEL": "INFO", **settings}
    with open(log, "w") as out:
        try:
            return start_serve(model, port, log=out, **settings).process
        except TimeoutError as err:
            sys.exit(f"{err}; see {log}")


def stop_service(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=30)


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


def metric_samples(port: int) -> Iterator[Sample]:
    """Every sample on a service's ``/metrics``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    for family in text_string_to_metric_families(text):
        yield from family.samples


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
