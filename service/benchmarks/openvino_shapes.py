"""What a new tile size costs the bf16 runtime (OpenVINO), and what its shape cache would buy back.

``python service/benchmarks/openvino_shapes.py [--tiles 48] [--capacities 0,1000]`` (``make train``'s
ingest and split first; a CPU with bf16 instructions). The served model as the service opens it
(:class:`~tilescan_shared.runtimes.OpenVinoSession`: bf16, one thread, the service's malloc settings),
on test-split tiles, which come in almost as many sizes as tiles, like a plant's. Prints, per tile:

* **a new size**: each tile once, after a tile of another size; wall time and the time the network's
  operators took (OpenVINO's per-operator profile): the rest is what OpenVINO spends preparing the
  graph for a shape it did not run last (shape inference, kernels, buffers);
* **the same size again**: the same tile straight after itself (a line whose tiles share one size,
  or a second look's mirrored views);
* for each ``CPU_RUNTIME_CACHE_CAPACITY`` (0 is the service's; OpenVINO's default is 5000): each tile's
  whole answer (a second look where the model's rule says), and the memory the process holds
  afterwards beyond what it held after one small tile (both after ``malloc_trim``).

Each measurement runs in a fresh process: oneDNN keeps kernels process-wide, so tiles seen by an
earlier measurement would not be new to a later one.

Results in docs/benchmarks.md ("Precision").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import openvino as ov
from arena import rss_mb
from harness import load_test_tiles

from tilescan_service.memory import keep_inference_buffers, release_free_memory
from tilescan_shared.image import decode_gray
from tilescan_shared.predictor import Predictor

MODEL = Path(__file__).resolve().parents[2] / "models/tilescan.onnx"


def predictor(capacity: int = 0, profile: bool = False) -> Predictor:
    """The service's bf16 session on one thread, with OpenVINO's shape cache at ``capacity`` entries."""
    compile_model = ov.Core.compile_model

    def compile_with(core: ov.Core, model: object, device: str, config: dict[str, str]) -> object:
        config = {**config, "CPU_RUNTIME_CACHE_CAPACITY": str(capacity)}
        return compile_model(core, model, device, config | ({"PERF_COUNT": "YES"} if profile else {}))

    with mock.patch.object(ov.Core, "compile_model", compile_with):
        return Predictor(MODEL, intra_op_threads=1, variant="bf16")


def sizes(tiles: list[np.ndarray], profile: bool) -> dict[str, float]:
    """Each tile once after a tile of another size, then again straight after itself: ms a run (and,
    ``profile``, the operators' share of the first, from OpenVINO's per-operator counters)."""
    request = predictor(profile=profile).session.compiled.create_infer_request()
    request.infer({"image": np.zeros((1, 1, 64, 64), np.uint8)})  # the first run's one-off costs
    new, operators, same = [], [], []
    for gray in tiles:
        feeds = {"image": gray[None, None]}
        started = time.perf_counter()
        request.infer(feeds)
        new.append(time.perf_counter() - started)
        operators.append(sum(op.real_time.total_seconds() for op in request.profiling_info))
        started = time.perf_counter()
        request.infer(feeds)
        same.append(time.perf_counter() - started)
    return {"new": _ms(new), "operators": _ms(operators), "same": _ms(same)}


def answers(tiles: list[np.ndarray], capacity: int) -> dict[str, float]:
    """Every tile's whole answer (a second look where the model's rule says) at ``capacity``; the
    memory held afterwards beyond what the session held after its first tile."""
    p = predictor(capacity)
    rule = p.info.rule
    p.predict(np.zeros((64, 64), np.uint8), rule)
    release_free_memory()
    before = rss_mb()
    started = time.perf_counter()
    views = sum(p.predict(gray, rule).views for gray in tiles)
    seconds = (time.perf_counter() - started) / len(tiles)
    release_free_memory()
    return {"ms": 1000 * seconds, "runs": views / len(tiles), "held_mb": rss_mb() - before}


def _ms(seconds: list[float]) -> float:
    return 1000 * float(np.mean(seconds))


def measure(what: str, tiles: int, capacity: int) -> dict[str, float]:
    """One measurement in a fresh process (module doc)."""
    command = [sys.executable, __file__, "--tiles", str(tiles), "--child", what, "--capacity", str(capacity)]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=48, help="test tiles to use")
    parser.add_argument("--capacities", default="0,1000", help="comma-separated cache capacities")
    parser.add_argument("--child", choices=["sizes", "operators", "answers"], help=argparse.SUPPRESS)
    parser.add_argument("--capacity", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        keep_inference_buffers()
        tiles = [decode_gray(data) for _, data in load_test_tiles(args.tiles)]
        if args.child == "answers":
            print(json.dumps(answers(tiles, args.capacity)))
        else:
            print(json.dumps(sizes(tiles, profile=args.child == "operators")))
        return
    shapes = {decode_gray(data).shape for _, data in load_test_tiles(args.tiles)}
    print(f"{args.tiles} test tiles, {len(shapes)} sizes; bf16, one thread, each row a fresh process\n")
    plain, profiled = measure("sizes", args.tiles, 0), measure("operators", args.tiles, 0)
    print("| run | ms | of which the operators | preparing |")
    print("| --- | ---: | ---: | ---: |")
    new, operators = plain["new"], profiled["operators"]
    print(f"| a new size | {new:.1f} | {operators:.1f} | {new - operators:.1f} |")
    print(f"| the same size again | {plain['same']:.1f} | | |")
    print("\n| CPU_RUNTIME_CACHE_CAPACITY | ms a tile (whole answer) | runs a tile | held afterwards |")
    print("| ---: | ---: | ---: | ---: |")
    for capacity in (int(value) for value in args.capacities.split(",")):
        result = measure("answers", args.tiles, capacity)
        print(f"| {capacity} | {result['ms']:.1f} | {result['runs']:.2f} | +{result['held_mb']:.0f} MB |")


if __name__ == "__main__":
    main()
