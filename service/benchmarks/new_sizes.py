"""What tiles of new sizes cost each runtime: OpenVINO prepares its graph again for every new shape.

``python service/benchmarks/new_sizes.py [--tiles 48] [--capacities 0,1000] [--compare MODEL ...]``
(``make train``'s ingest and split first; a CPU with bf16 instructions). Test-split tiles, which come in
almost as many sizes as tiles, like a plant's; sessions as the service opens them (the service's malloc
settings). Prints:

* bf16 on one thread, per run, nothing kept: **a new size** (each tile once, after a tile of another
  size; wall time and the time the network's operators took, from OpenVINO's per-operator counters:
  the rest is what OpenVINO spends preparing the graph for a shape it did not run last) and **the same
  size again** (the tile straight after itself);
* bf16 on one thread at each ``CPU_RUNTIME_CACHE_CAPACITY`` (the service's default is
  ``OPENVINO_CACHE_CAPACITY``; 0 keeps nothing): each tile's whole answer (a second look where the
  model's rule says), and the memory held afterwards beyond what was held after a first small tile
  (both after ``malloc_trim``);
* every precision of the served model on one thread (a busy service's shared lane) and on two (the solo
  lane), each tile's whole answer; and each ``--compare`` model (e.g. ``git show
  2c2a9f1:models/tilescan.onnx``) in fp32.

Each measurement runs in a fresh process: oneDNN keeps kernels process-wide, so tiles seen by an
earlier measurement would not be new to a later one. Results in docs/benchmarks.md ("Precision").
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
from harness import load_tiles

from tilescan_service.memory import keep_inference_buffers, release_free_memory
from tilescan_shared.image import decode_gray
from tilescan_shared.predictor import Predictor
from tilescan_shared.runtimes import OPENVINO_CACHE_CAPACITY

MODEL = Path(__file__).resolve().parents[2] / "models/tilescan.onnx"


def predictor(
    capacity: int = OPENVINO_CACHE_CAPACITY,
    profile: bool = False,
    model: Path = MODEL,
    variant: str = "bf16",
    threads: int = 1,
) -> Predictor:
    """A session as the service opens it, with OpenVINO's shape cache at ``capacity`` entries."""
    compile_model = ov.Core.compile_model

    def compile_with(core: ov.Core, graph: object, device: str, config: dict[str, str]) -> object:
        return compile_model(core, graph, device, config | ({"PERF_COUNT": "YES"} if profile else {}))

    with mock.patch.object(ov.Core, "compile_model", compile_with):
        return Predictor(model, intra_op_threads=threads, variant=variant, cache_capacity=capacity)


def sizes(tiles: list[np.ndarray], profile: bool) -> dict[str, float]:
    """Each tile once after a tile of another size, then again straight after itself: ms a run (and,
    ``profile``, the operators' share of the first, from OpenVINO's per-operator counters)."""
    request = predictor(0, profile=profile).session.compiled.create_infer_request()
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


def answers(tiles: list[np.ndarray], p: Predictor) -> dict[str, float]:
    """Every tile's whole answer (a second look where the model's rule says) in ms a tile, runs a tile,
    and the memory held afterwards beyond what the session held after a first small tile."""
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


def measure(what: str, tiles: int, *options: str) -> dict[str, float]:
    """One measurement in a fresh process (module doc)."""
    command = [sys.executable, __file__, "--tiles", str(tiles), "--child", what, *options]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=48, help="test tiles to use")
    parser.add_argument("--capacities", default="0,1000", help="comma-separated cache capacities")
    parser.add_argument("--compare", type=Path, nargs="*", default=[], help="other models, run in fp32")
    parser.add_argument("--child", choices=["sizes", "operators", "answers"], help=argparse.SUPPRESS)
    parser.add_argument("--capacity", type=int, default=OPENVINO_CACHE_CAPACITY, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, default=MODEL, help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="bf16", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        keep_inference_buffers()
        tiles = [decode_gray(data) for _, data in load_tiles(args.tiles)]
        if args.child == "answers":
            p = predictor(args.capacity, model=args.model, variant=args.variant, threads=args.threads)
            print(json.dumps(answers(tiles, p)))
        else:
            print(json.dumps(sizes(tiles, profile=args.child == "operators")))
        return
    shapes = {decode_gray(data).shape for _, data in load_tiles(args.tiles)}
    print(f"{args.tiles} test tiles, {len(shapes)} sizes; each row a fresh process\n")
    plain, profiled = measure("sizes", args.tiles), measure("operators", args.tiles)
    print("| bf16, one thread | ms | of which the operators | preparing |")
    print("| --- | ---: | ---: | ---: |")
    new, operators = plain["new"], profiled["operators"]
    print(f"| a new size | {new:.1f} | {operators:.1f} | {new - operators:.1f} |")
    print(f"| the same size again | {plain['same']:.1f} | | |")
    print("\n| CPU_RUNTIME_CACHE_CAPACITY | ms a tile (whole answer) | runs a tile | held afterwards |")
    print("| ---: | ---: | ---: | ---: |")
    for capacity in args.capacities.split(","):
        result = measure("answers", args.tiles, "--capacity", capacity)
        print(f"| {capacity} | {result['ms']:.1f} | {result['runs']:.2f} | +{result['held_mb']:.0f} MB |")
    print("\n| model, precision | one thread, ms a tile | two threads | runs a tile |")
    print("| --- | ---: | ---: | ---: |")
    runs = [(MODEL, variant) for variant in ("bf16", "int8", "fp32")] + [(m, "fp32") for m in args.compare]
    for model, variant in runs:
        options = ["--model", str(model), "--variant", variant]
        one, two = (measure("answers", args.tiles, *options, "--threads", t) for t in ("1", "2"))
        print(f"| {model.name}, {variant} | {one['ms']:.1f} | {two['ms']:.1f} | {one['runs']:.2f} |")


if __name__ == "__main__":
    main()
