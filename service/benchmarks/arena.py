"""onnxruntime's CPU arena and big images: which session or run option gives the memory back.

``python service/benchmarks/arena.py [default|no-arena|shrink|shrink-big]`` (one option per process,
so each starts clean). One session on the committed model runs a 375x265 tile a few times, then one
6000x6000 image and the decision rule; prints the peak and held RSS growth around the big image, and
the held growth after 30 more tiles (MB, Linux: reads /proc). Results in docs/benchmarks.md.
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


def main(option: str) -> None:
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = option != "no-arena"
    session = ort.InferenceSession(str(MODEL), sess_options=options, providers=["CPUExecutionProvider"])
    shrink = ort.RunOptions()
    shrink.add_run_config_entry(SHRINK, "cpu:0")

    def run(gray: np.ndarray, big: bool = False) -> np.ndarray:
        use = option == "shrink" or (option == "shrink-big" and big)
        return session.run([OUTPUT_NAME], {INPUT_NAME: gray[None, None]}, shrink if use else None)[0][0, 0]

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
    main(sys.argv[1] if len(sys.argv) > 1 else "default")
