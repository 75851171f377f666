"""The Markdown tables ``make bench`` prints, each row judged against its target (the constants below)."""

from __future__ import annotations

import os
import statistics

import yaml
from harness import REPO, Run
from scenarios import (
    MIDDLE,
    Load,
    MemoryRun,
    ModelRun,
    PrecisionRun,
    ShadowCounts,
    overload_bound_ms,
    single_request_ms,
)

from tilescan_service.config import Settings  # the servers' settings come from the same environment

# The targets the rows are judged against (issues 4 and 9), in one place.
THROUGHPUT_VS_DIRECT = 0.85  # the service's tiles/s at 8 clients over onnxruntime alone's
EXTRA_P50_MS = 5.0  # the service's p50 at 1 client minus onnxruntime alone's
PNG_VS_JSON = 20  # a PNG answer at least this many times smaller than the JSON one
OWN_CPU_MS = 3.0  # the service's CPU per tile beyond onnxruntime
GOODPUT_VS_CAPACITY = 0.9  # answers/s at 64 connections over answers/s at 8
BIG_IMAGE_PEAK_MB, BIG_IMAGE_HELD_MB = 600, 200  # memory growth while one big image is served, and after
# Issue 17: a reduced precision's service throughput over fp32's, and the service over its runtime alone.
PRECISION_VS_FP32 = 1.8
SERVICE_VS_RUNTIME = 0.95


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
        f"| throughput c=8 / direct | {ratio['json']:.2f}x | {ratio['png']:.2f}x "
        f"| >= {THROUGHPUT_VS_DIRECT}x ({_verdict(min(ratio.values()) >= THROUGHPUT_VS_DIRECT)}) |"
    )
    print(
        f"| p50 c=1 - direct p50 | {extra['json']:+.1f} ms | {extra['png']:+.1f} ms "
        f"| <= +{EXTRA_P50_MS:g} ms ({_verdict(max(extra.values()) <= EXTRA_P50_MS)}) |"
    )
    median = {fmt: statistics.median(values) for fmt, values in sizes.items()}
    size_ratio = median["json"] / median["png"]
    print("\n| response (median over the tiles) | bytes | vs PNG |")
    print("| --- | ---: | ---: |")
    for fmt in ("json", "png", "rle"):
        print(f"| {fmt.upper()} | {median[fmt]:,.0f} | {median[fmt] / median['png']:.1f}x |")
    verdict = _verdict(size_ratio >= PNG_VS_JSON)
    print(f"\nPNG is {size_ratio:.0f}x smaller than JSON (goal >= {PNG_VS_JSON}x: {verdict})")


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
    verdict = _verdict(max(over.values()) <= OWN_CPU_MS)
    print(
        f"| **service's own (goal <= {OWN_CPU_MS:g} ms: {verdict})** "
        f"| {over['json']:+.1f} ms | {over['png']:+.1f} ms |"
    )
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


def report_overload(
    runs: list[Run],
    capacity: Load,
    overloads: dict[str, Load],
    after: tuple[int, float],
    queue_timeout: tuple[float, Load],
) -> None:
    settings = Settings()
    single = single_request_ms(runs)
    bound = overload_bound_ms(settings.max_queue, single)
    queue_timeout_s, timed_out = queue_timeout
    print(
        f"\n| JSON load, {capacity.wall:.0f} s each | 200/s | vs 8 | 503s | other | p50 ms | p99 ms "
        "| p99 of the middle ms |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with_timeout = f"64, honour Retry-After, `TILESCAN_QUEUE_TIMEOUT_SECONDS={queue_timeout_s:.2f}`"
    for name, load in {"8 connections (capacity)": capacity, **overloads, with_timeout: timed_out}.items():
        print(
            f"| {name} | {load.goodput:.1f} | {load.goodput / capacity.goodput:.2f}x | {load.rejected} "
            f"| {load.other} | {load.ok_percentile(50):.0f} | {load.ok_percentile(99):.0f} "
            f"| {load.ok_percentile(99, MIDDLE):.0f} |"
        )
    worst = min(load.goodput for load in overloads.values()) / capacity.goodput
    p99 = max(load.ok_percentile(99) for load in overloads.values())
    print(
        f"\ngoodput at 64 connections / capacity at 8: {worst:.2f}x "
        f"(goal >= {GOODPUT_VS_CAPACITY}x: {_verdict(worst >= GOODPUT_VS_CAPACITY)})"
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
        f"({_verdict(kept >= GOODPUT_VS_CAPACITY)}), 503s {timed_out.rejected} "
        "(refused or timed out in the queue)"
    )
    print(f"(the middle: the answers to requests sent between {MIDDLE[0]:.0%} and {MIDDLE[1]:.0%} of a load)")
    print(
        f"first request after the overload: {after[0]} in {after[1] * 1000:.0f} ms "
        f"({_verdict(after[0] == 200)})"
    )


def pod_memory_limit_mb() -> float:
    """The API pod's memory limit (deploy/k8s/base/deployment.yaml), in MB (10^6 bytes)."""
    deployment = yaml.safe_load((REPO / "deploy/k8s/base/deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    limit = str(container["resources"]["limits"]["memory"])
    units = {"Gi": 2**30, "Mi": 2**20, "G": 10**9, "M": 10**6}
    unit = next(unit for unit in units if limit.endswith(unit))
    return float(limit.removesuffix(unit)) * units[unit] / 1e6


def report_memory(runs: list[MemoryRun], stream: MemoryRun) -> None:
    """The memory target, peak growth and memory held after it, for each single-image PNG
    answer: a big image is either refused before decoding (413) or served within it; and a stream of
    tiles of many sizes: what it leaves plus the worst big image's peak must fit the pod."""
    print("\n| big image | result |")
    print("| --- | --- |")
    for run in runs:
        print(f"| {run.describe()} |")
    singles = [run for run in runs if len(run.statuses) == 1 and run.case.endswith("format=png")]
    ok = all(
        run.statuses == [413]
        or (
            run.statuses == [200]
            and run.peak_growth_mb <= BIG_IMAGE_PEAK_MB
            and run.held_mb <= BIG_IMAGE_HELD_MB
        )
        for run in singles
    )
    verdict = _verdict(ok)
    print(
        f"\nbig images, PNG answer: refused, or peak <= +{BIG_IMAGE_PEAK_MB} MB and held "
        f"<= +{BIG_IMAGE_HELD_MB} MB ({verdict})"
    )
    print("\n| a stream of tiles | result |")
    print("| --- | --- |")
    print(f"| {stream.describe()} |")
    # An image at the pixel limit never runs beside tiles (their pixels share one budget): its peak
    # comes on top of what the stream left, not of the stream's own peak.
    footprint = stream.before_mb + stream.held_mb
    worst = max(run.peak_growth_mb for run in runs)
    limit = pod_memory_limit_mb()
    print(
        f"\nheld after the stream {footprint:.0f} MB + the worst big image's peak {worst:+.0f} MB = "
        f"{footprint + worst:.0f} MB; the pod's limit {limit:.0f} MB ({_verdict(footprint + worst <= limit)})"
    )


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


def report_capture(runs: list[Run], cpu: dict[str, float], counts: dict[str, float]) -> None:
    """p50 at one connection with capture off and on, and the capturing service's counters."""
    off = runs[0].percentile(50)
    print("\n| measurement | images | p50 ms | p95 ms | p50 vs off | CPU ms/image | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for run, seconds in zip(runs, cpu.values(), strict=True):
        print(
            f"| {run.name} | {len(run.latencies)} | {run.percentile(50):.1f} | {run.percentile(95):.1f} "
            f"| {run.percentile(50) / off:.3f}x | {seconds * 1000 / max(len(run.latencies), 1):.1f} "
            f"| {run.errors} |"
        )
    print(
        "\nCapture counters: "
        + (", ".join(f"{name} {n:.0f}" for name, n in sorted(counts.items())) or "none")
    )


def report_models(runs: list[ModelRun]) -> None:
    """Each model's serving cost against the first one's, as the service runs each by default."""
    first = runs[0]
    print(
        "\n| model | precision | answers from 4 views | p50 ms (c=1) | tiles/s (c=8) "
        "| cost per tile vs the first (c=8) | CPU ms/tile (c=8) "
        f"| tiles/s, {len(first.fresh.latencies)} new tiles once (c=8) | cost per new tile vs the first |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for run in runs:
        cost = first.eight.images_per_s / run.eight.images_per_s
        fresh_cost = first.fresh.images_per_s / run.fresh.images_per_s
        print(
            f"| {run.model} | {run.precision} | {run.second_looks:.1%} | {run.one.percentile(50):.1f} "
            f"| {run.eight.images_per_s:.1f} | {cost:.2f}x | {run.eight.cpu_ms_per_image:.1f} "
            f"| {run.fresh.images_per_s:.1f} | {fresh_cost:.2f}x |"
        )


def report_precision(runs: list[PrecisionRun], auto: dict[str, object]) -> None:
    """Each precision's cost alone and through the service, and what the service picks by itself."""
    fp32 = next(run for run in runs if run.precision == "fp32")
    print(
        "\n| precision | runtime alone, solo tiles/s | alone, side by side | service c=8 tiles/s "
        "| service / runtime | service / fp32 service | service CPU ms/tile | clients' CPU ms/tile "
        "| service p50 ms |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for run in runs:
        ratio = run.service.images_per_s / run.runtime_images_per_s
        vs_fp32 = run.service.images_per_s / fp32.service.images_per_s
        print(
            f"| {run.precision} | {run.solo.images_per_s:.1f} | {run.side_by_side.images_per_s:.1f} "
            f"| {run.service.images_per_s:.1f} | {ratio:.2f}x ({_verdict(ratio >= SERVICE_VS_RUNTIME)}) "
            f"| {vs_fp32:.2f}x | {run.service.cpu_ms_per_image:.1f} "
            f"| {run.service.client_cpu_ms_per_image:.1f} | {run.service.percentile(50):.1f} |"
        )
    best = max(runs, key=lambda run: run.service.images_per_s)
    gain = best.service.images_per_s / fp32.service.images_per_s
    print(
        f"\nfastest through the service: {best.precision}, {gain:.2f}x fp32 "
        f"(goal >= {PRECISION_VS_FP32}x: {_verdict(gain >= PRECISION_VS_FP32)}); "
        f"errors: {sum(run.service.errors for run in runs)}"
    )
    print(f"TILESCAN_PRECISION=auto picks {auto['precision']}: {auto['reason']}")
    # The runtime alone has the machine's CPUs to itself; the service shares them with its clients.
    # What it spends a tile bounds it even with no CPU idle (cpu_by_thread.py says on what).
    cpus = len(os.sched_getaffinity(0))  # the CPUs this process and the services it started may use
    for run in runs:
        http = run.service
        service, clients = (seconds / http.wall / cpus for seconds in (http.cpu_s, http.client_cpu_s))
        full = cpus * 1000 / http.cpu_ms_per_image
        print(
            f"{run.precision} at 8 connections: the service used {service:.0%} of the {cpus} CPUs, "
            f"its clients {clients:.0%}; at its CPU a tile, all {cpus} CPUs would answer at most "
            f"{full:.1f} tiles/s, {full / run.runtime_images_per_s:.2f}x its runtime alone"
        )
