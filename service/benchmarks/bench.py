"""Benchmark: onnxruntime alone vs the HTTP service, on real test-split tiles (``make bench``).

(a) ``session.run`` on already decoded arrays, one image at a time;
(b) a real ``tilescan-serve`` process on 127.0.0.1, at concurrency 1 and 8, JSON and PNG answers,
measured in turn with (a), round by round; and the server's CPU time per request at concurrency 1
beyond onnxruntime's own (the server counts onnxruntime's CPU time itself);
(c) overload: good answers per second with 64 connections beside the capacity with 8, the wait of
the accepted ones, and the answer to the first request after the overload; the same overload on a
service with a queue timeout of half the queue places' single requests;
(d) the peak and held memory of a fresh service for one 36 Mpx 16-bit PNG (and three float TIFFs),
and after a stream of every dataset tile once (almost one size a tile, as from a plant); plus the
JSON / PNG / RLE response sizes. Prints a Markdown report with the targets of issues 4 and 9:
service throughput at c=8 >= 0.85 x direct, service p50 at c=1 <= direct p50 + 5 ms, PNG >= 20x
smaller than JSON, CPU overhead <= 3 ms per tile, goodput at 64 connections >= 0.9 x capacity at 8
with the accepted requests' p99 <= (queue places + 1) x the single-request time. Then the
primary's p50 at c=1 with shadow mirroring off and on (issue 8), with the drops it counts when the
shadow is down; the same with capture off and on, every tile kept (issue 18; ``--capture-only``);
then (e) each precision the machine can run (fp32, bf16 on OpenVINO, int8): the
runtime alone and a service pinned to it at 8 connections, their ratios, and what
``TILESCAN_PRECISION=auto`` picks (issue 17; ``--precision-only`` runs just that).
``--compare-models A B ...`` runs only each model's serving cost against the first's (a service per
model, default settings unless ``A:VAR=value,...``; 300 train tiles each once, then the test tiles in
turn; issue 16). Load goes to 127.0.0.1 only and is bounded in requests and seconds.
"""

from __future__ import annotations

import argparse
import http.client
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

from harness import (
    REPO,
    Run,
    interleaved,
    load_tiles,
    machine,
    one_request,
    post,
    settings_spec,
    start_service,
    stop_service,
)
from report import (
    report,
    report_capture,
    report_cpu,
    report_memory,
    report_models,
    report_overload,
    report_precision,
    report_shadow,
)
from scenarios import (
    Load,
    bench_capture,
    bench_cpu,
    bench_direct,
    bench_http,
    bench_load,
    bench_models,
    bench_precision,
    bench_shadow,
    big_image_memory,
    direct_predictor,
    served_precision,
    single_request_ms,
    tile_stream_memory,
)

from tilescan_service.client import multipart_body
from tilescan_service.config import Settings  # the servers' settings come from the same environment
from tilescan_service.testing import free_port
from tilescan_shared.image import decode_gray


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models/tilescan.onnx")
    parser.add_argument("--images", type=int, default=48, help="test tiles to use")
    parser.add_argument("--rounds", type=int, default=4, help="passes over the tiles per measurement")
    parser.add_argument("--limit-s", type=float, default=90, help="time cap per HTTP measurement")
    parser.add_argument("--load-s", type=float, default=15, help="seconds of each load measurement")
    parser.add_argument("--shadow-only", action="store_true", help="only the shadow mirroring comparison")
    parser.add_argument(
        "--precision-only", action="store_true", help="only the fp32 / bf16 / int8 comparison"
    )
    parser.add_argument("--capture-only", action="store_true", help="only capture off vs on")
    parser.add_argument(
        "--compare-models",
        type=settings_spec,
        nargs="+",
        metavar="MODEL[:VAR=value,...]",
        help="only the serving cost of these model files, each with these settings, against the first",
    )
    args = parser.parse_args()

    tiles = load_tiles(args.images)
    arrays = [decode_gray(data) for _, data in tiles]
    bodies = [multipart_body(data, f"{tile_id.replace('/', '_')}.png") for tile_id, data in tiles]
    sizes = [gray.shape for gray in arrays]
    print(f"{len(tiles)} test tiles, {min(sizes)} .. {max(sizes)} px; machine: {machine()}", flush=True)
    log = Path(os.environ.get("TMPDIR", "/tmp")) / "tilescan-bench-service.log"
    if args.shadow_only:
        report_shadow(*bench_shadow(args.model, tiles, bodies, args.rounds, args.limit_s))
        return
    if args.capture_only:
        report_capture(*bench_capture(args.model, bodies, args.rounds, args.limit_s))
        return
    if args.compare_models:
        fresh = [multipart_body(data, "tile.png") for _, data in load_tiles(300, split="train")]
        report_models(bench_models(args.compare_models, bodies, fresh, args.rounds, args.limit_s, log))
        return
    if args.precision_only:
        report_precision(*bench_precision(args.model, arrays, bodies, args.rounds, args.limit_s, log))
        return

    port = free_port()
    service = start_service(args.model, port, log)
    try:
        # The runtime alone at the precision the service chose, so the ratios compare like with like.
        precision = served_precision(port)
        predictor = direct_predictor(args.model, arrays, variant=precision)
        # One untimed pass so the server's threads and allocator are warm too.
        bench_http(port, bodies[:8], "json", 1, 1, args.limit_s, service.pid)
        measurements: dict[str, Callable[[], Run]] = {
            "direct": lambda: bench_direct(predictor, arrays, f"runtime alone, {precision} (c=1)")
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
        ],
        tile_stream_memory(args.model, load_tiles(split=None)),
    )
    report_shadow(*bench_shadow(args.model, tiles, bodies, args.rounds, args.limit_s))
    report_capture(*bench_capture(args.model, bodies, args.rounds, args.limit_s))
    report_precision(*bench_precision(args.model, arrays, bodies, args.rounds, args.limit_s, log))


if __name__ == "__main__":
    main()
