"""onnxruntime's CPU arena and big images: which session or run option gives the memory back.

``python service/benchmarks/arena.py [default|no-arena|shrink|shrink-big]`` (one option per process,
so each starts clean). One session on the committed model runs a 375x265 tile a few times, then one
6000x6000 image and the decision rule; prints the peak and held RSS growth around the big image, and
the held growth after 30 more tiles (MB, Linux: reads /proc).

``python service/benchmarks/arena.py tile-cpu``: what the arena saves on ordinary tiles. Two sessions,
arena on and off, take turns over 12 test-split tiles (``make train``'s ingest and split first);
prints the median process CPU time and wall time per tile of each. Results in docs/benchmarks.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tilescan_shared.masks import DecisionRule, segment
from tilescan_shared.predictor import INPUT_NAME, OUTPUT_NAME

MODEL = Path(__file__).resolve().parents[2] / "models/tilescan.onnx"
SHRINK = "memory.enable_memory_arena_shrinkage"


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1000
    raise RuntimeError(field)


def session(arena: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = arena
    return ort.InferenceSession(str(MODEL), sess_options=options, providers=["CPUExecutionProvider"])


def tile_cpu(rounds: int = 6) -> None:
    from harness import load_tiles  # needs the ingested tiles; the memory modes do not

    from tilescan_shared.image import decode_gray

    tiles = [decode_gray(data)[None, None] for _, data in load_tiles(12)]
    sessions = {"arena on": session(True), "arena off": session(False)}
    cpu: dict[str, list[float]] = {name: [] for name in sessions}
    wall: dict[str, list[float]] = {name: [] for name in sessions}
    for current in sessions.values():  # warm-up
        for tile in tiles:
            current.run([OUTPUT_NAME], {INPUT_NAME: tile})
    for _ in range(rounds):
        for name, current in sessions.items():
            cpu_started, wall_started = time.process_time(), time.perf_counter()
            for tile in tiles:
                current.run([OUTPUT_NAME], {INPUT_NAME: tile})
            cpu[name].append((time.process_time() - cpu_started) / len(tiles) * 1000)
            wall[name].append((time.perf_counter() - wall_started) / len(tiles) * 1000)
    for name in sessions:
        rounds_text = ", ".join(f"{ms:.1f}" for ms in cpu[name])
        print(
            f"{name}: CPU {np.median(cpu[name]):.1f} ms/tile (rounds: {rounds_text}), "
            f"wall {np.median(wall[name]):.1f} ms/tile"
        )


def main(option: str) -> None:
    current = session(arena=option != "no-arena")
    shrink = ort.RunOptions()
    shrink.add_run_config_entry(SHRINK, "cpu:0")

    def run(gray: np.ndarray, big: bool = False) -> np.ndarray:
        use = option == "shrink" or (option == "shrink-big" and big)
        return current.run([OUTPUT_NAME], {INPUT_NAME: gray[None, None]}, shrink if use else None)[0][0, 0]

    tile = np.full((265, 375), 90, np.uint8)
    for _ in range(5):
        run(tile)
    before = rss_mb()
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM
    started = time.perf_counter()
    segment(run(np.zeros((6000, 6000), np.uint8), big=True), DecisionRule(0.05, 0, 0.8))
    seconds = time.perf_counter() - started
    peak = rss_mb("VmHWM")
    time.sleep(0.5)
    held = rss_mb()
    for _ in range(30):
        run(tile)
    print(
        f"| {option} | {peak - before:+.0f} | {held - before:+.0f} | {rss_mb() - before:+.0f} "
        f"| {seconds:.2f} s |"
    )


if __name__ == "__main__":
    option = sys.argv[1] if len(sys.argv) > 1 else "default"
    if option == "tile-cpu":
        tile_cpu()
    else:
        main(option)
