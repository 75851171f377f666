"""``make bench``'s overload, against services that differ only in their settings, in turn.

``python service/benchmarks/overload.py 'arrival order:TILESCAN_NEWEST_FIRST_SHARE=0' 'default:'
[--spell 5] [--rounds 3]`` (``make train``'s ingest and split first, for the test tiles). Each argument
is ``name:VAR=value,VAR=value`` (nothing after the colon: the defaults). The services run side by side
and are loaded one at a time, every round in the other order, so each sees the same drift of the VM.
A round loads each service with ``make bench``'s loads (``scenarios.bench_load``, JSON, keep-alive):

* 1 connection: the single-request p50, which sets the bound: (queue places + 1) x that;
* 8 connections that retry a 503 at once: the capacity;
* 64 that retry at once, and 64 that honour ``Retry-After``: goodput against the capacity, p50 and
  p99 of the accepted answers against the bound, and the p99 of the answers sent between 10% and 70%
  of a spell ("middle": a steady overload, without its start or its end).

Run it on an otherwise idle machine: the clients share the CPUs with the services.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from harness import REPO, load_tiles, machine, settings_spec, start_service, stop_service
from scenarios import MIDDLE, Load, bench_load, overload_bound_ms

from tilescan_service.client import multipart_body
from tilescan_service.config import Settings
from tilescan_service.testing import free_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("services", nargs="+", type=settings_spec, help="name:VAR=value,... (the settings)")
    parser.add_argument("--model", type=Path, default=REPO / "models/tilescan.onnx")
    parser.add_argument("--images", type=int, default=48, help="test tiles, classes interleaved")
    parser.add_argument("--spell", type=float, default=5.0, help="seconds of each load in a round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    tiles = load_tiles(args.images)
    bodies = [multipart_body(data, f"{tile_id.replace('/', '_')}.png") for tile_id, data in tiles]
    print(f"{len(tiles)} test tiles; machine: {machine()}", flush=True)
    loads = {"single": (1, False), "capacity": (8, False), "64 at once": (64, False), "64 honour": (64, True)}
    ports = {name: free_port() for name, _ in args.services}
    services = {
        name: start_service(args.model, ports[name], Path(f"/tmp/tilescan-overload-{i}.log"), **env)
        for i, (name, env) in enumerate(args.services)
    }
    spells: dict[tuple[str, str], list[Load]] = {(name, load): [] for name in ports for load in loads}
    try:
        for port in ports.values():
            bench_load(port, bodies, 8, 2, honor_retry_after=False)  # warm-up
        for round_ in range(args.rounds):
            for name, port in list(ports.items())[:: 1 if round_ % 2 == 0 else -1]:
                for load, (connections, honour) in loads.items():
                    spells[name, load].append(bench_load(port, bodies, connections, args.spell, honour))
                time.sleep(1.5)  # the Retry-After pauses end and the line drains before the next service
    finally:
        for process in services.values():
            stop_service(process)

    print("| service | capacity at 8 | load | goodput | p50 / p99 ms | p99 / bound | middle p99 / bound |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for name, env in args.services:
        merged = {load: Load.merged(spells[name, load]) for load in loads}
        max_queue = int(env.get("TILESCAN_MAX_QUEUE", Settings().max_queue))
        bound = overload_bound_ms(max_queue, merged["single"].ok_percentile(50))
        capacity = merged["capacity"].goodput
        for load in ("64 at once", "64 honour"):
            run = merged[load]
            p99, middle = run.ok_percentile(99), run.ok_percentile(99, MIDDLE)
            print(
                f"| {name} | {capacity:.1f}/s | {load} | {run.goodput / capacity:.2f}x | "
                f"{run.ok_percentile(50):.0f} / {p99:.0f} | {p99 / bound:.2f}x | {middle / bound:.2f}x |"
            )
    print(f"bound: (queue places + 1) x single-request p50; {args.rounds} rounds, {args.spell:g} s spells")


if __name__ == "__main__":
    main()
