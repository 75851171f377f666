"""Where a busy service's CPU goes, thread by thread.

``python service/benchmarks/cpu_by_thread.py [--precision bf16] [--seconds 10]`` (``make bench``
installs py-spy; ``make data`` first, for the test tiles). A service pinned to the precision answers 8
keep-alive connections posting test tiles (JSON); each of its threads' CPU is read from
``/proc/<pid>/task/<tid>/stat`` before and after, and ``py-spy dump`` names the Python threads: the
event loop (HTTP, the ASGI stack, the multipart upload), the inference threads (the hand-over to the
runtime and back, the decision rule, the tile's statistics, the rendering), ``asyncio.to_thread``'s
(decoding). Threads py-spy does not know are the runtime's own (OpenVINO's or onnxruntime's pool).

What the service adds to its runtime bounds how close it can come to the runtime alone: at best,
CPUs / (runtime + the rest) a second (docs/benchmarks.md, "Precision"). py-spy needs the right to
ptrace the service (root, or ``kernel.yama.ptrace_scope`` 0). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from harness import REPO, load_tiles, machine, start_service, stop_service, thread_cpu_s
from scenarios import bench_http, measurement_model

from tilescan_service.client import multipart_body
from tilescan_service.testing import free_port
from tilescan_shared.predictor import Variant

CONNECTIONS = 8


def python_threads(pid: int) -> dict[int, str]:
    """The Python threads' names by OS thread id, numbered pool threads as one name (``inference_*``)."""
    py_spy = Path(sys.executable).with_name("py-spy")
    dump = subprocess.run([py_spy, "dump", "--json", "--pid", str(pid)], capture_output=True, text=True)
    if dump.returncode != 0:
        sys.exit(f"py-spy could not read the service: {dump.stderr.strip()}")
    return {
        thread["os_thread_id"]: re.sub(r"_\d+$", "_*", thread["thread_name"] or "unnamed")
        for thread in json.loads(dump.stdout)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=[v.value for v in Variant], default=Variant.BF16.value)
    parser.add_argument("--model", type=Path, default=REPO / "models/tilescan.onnx")
    parser.add_argument("--images", type=int, default=48, help="test tiles, classes interleaved")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the measured load lasts")
    args = parser.parse_args()

    tiles = load_tiles(args.images)
    bodies = [multipart_body(data, f"{tile_id.replace('/', '_')}.png") for tile_id, data in tiles]
    cpus = len(os.sched_getaffinity(0))
    print(f"{len(tiles)} test tiles; machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        copy = measurement_model(args.model, Path(tmp))  # every precision may run, for timing
        port = free_port()
        log = Path(tempfile.gettempdir()) / "tilescan-cpu-by-thread.log"  # kept, for a service that fails
        service = start_service(copy, port, log, TILESCAN_PRECISION=args.precision)
        try:
            bench_http(port, bodies, "json", CONNECTIONS, 2, 60, service.pid)  # warm: every tile size once
            before = thread_cpu_s(service.pid)
            rounds = 1_000  # more than the time allows: the load stops at --seconds
            run = bench_http(port, bodies, "json", CONNECTIONS, rounds, args.seconds, service.pid)
            after = thread_cpu_s(service.pid)
            names = python_threads(service.pid)
        finally:
            stop_service(service)
    spent = Counter()
    for tid, seconds in after.items():
        spent[names.get(tid, "the runtime's own threads")] += seconds - before.get(tid, 0.0)
    tiles_done = len(run.latencies)
    print(
        f"\n{args.precision} service at {CONNECTIONS} connections: {run.images_per_s:.1f} tiles/s "
        f"({run.errors} errors), {sum(spent.values()) / tiles_done * 1000:.1f} ms of CPU a tile, "
        f"{sum(spent.values()) / run.wall / cpus:.0%} of the {cpus} CPUs\n"
    )
    print("| thread | CPU ms/tile | share of the CPUs |\n| --- | ---: | ---: |")
    for name, seconds in spent.most_common():
        if seconds > 0:
            print(f"| {name} | {seconds / tiles_done * 1000:.2f} | {seconds / run.wall / cpus:.1%} |")


if __name__ == "__main__":
    main()
