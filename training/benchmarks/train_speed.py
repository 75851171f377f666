"""Train-stage throughput on this machine: the data path and the training step, side by side in one run.

    .venv/bin/python training/benchmarks/train_speed.py [--steps 8] [--profile]

Prints, for ``params.yaml``'s network, crop and batch size:

* the data path: ms per training sample when every sample decodes its tile and mask from disk (what the
  train stage did before) and when tiles are held in memory (:class:`TileDataset` now);
* the training step (forward, joint loss, backward, AdamW) in fp32 and bf16 autocast, NCHW and
  channels_last, eager and ``torch.compile``d: ms per step and images per second.

``--profile`` adds torch.profiler's top operators for the eager and the compiled bf16 step. CPUs differ
(AVX-512, AMX): compare the rows of one run, not runs of different machines.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tilescan_training.dataset import TileDataset
from tilescan_training.losses import SegDecLoss
from tilescan_training.manifest import read_records, read_split, records_in
from tilescan_training.params.loading import load_section
from tilescan_training.params.train import TrainParams
from tilescan_training.weights import build_net


def data_path_ms(data_dir: Path, split_csv: Path, params, samples: int = 200) -> tuple[float, float]:
    """ms per sample: decoding tile and mask from disk each time vs cutting a crop from memory."""
    records = records_in("train", read_records(data_dir / "manifest.csv"), read_split(split_csv))[:samples]
    started = time.perf_counter()
    for r in records:
        for rel in (r.image, r.mask):
            with Image.open(data_dir / rel) as img:
                np.array(img)
    decode = (time.perf_counter() - started) / len(records) * 1000
    dataset = TileDataset(records, data_dir, params.crop_size, params.scale, params.augment)
    started = time.perf_counter()
    for i in range(len(records)):
        dataset[i]
    memory = (time.perf_counter() - started) / len(records) * 1000
    return decode, memory


def step_ms(params, bf16: bool, channels_last: bool, compiled: bool, steps: int, profile: bool) -> float:
    torch.manual_seed(0)
    net = build_net(params)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=layout)
    forward = torch.compile(net.forward) if compiled else net.forward
    loss_fn = SegDecLoss(params.loss)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    shape = (params.batch_size, 1, *params.crop_size)
    images = torch.rand(shape).contiguous(memory_format=layout)
    masks = (torch.rand(shape) > 0.98).float()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, tile = forward(images)
        loss, _, _ = loss_fn(logits.float(), tile.float(), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):  # warm-up (and, compiled, the build)
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    ms = (time.perf_counter() - started) / steps * 1000
    if profile:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(2):
                step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", default="data/ingested", type=Path)
    parser.add_argument("--split", default="data/split.csv", type=Path)
    parser.add_argument("--steps", default=8, type=int)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    params = load_section(args.params, "train", TrainParams)
    threads, batch = torch.get_num_threads(), f"{params.batch_size} x {params.crop_size}"
    print(f"torch {torch.__version__}, {threads} threads; batch {batch}")
    if args.data.is_dir():
        decode, memory = data_path_ms(args.data, args.split, params)
        print(f"data path: {decode:.2f} ms/sample decoding from disk, {memory:.2f} ms/sample from memory")
    print("| precision | layout | mode | ms/step | images/s |\n| --- | --- | --- | ---: | ---: |")
    rows = [
        (False, False, False),
        (True, True, False),
        (True, False, False),
        (True, False, True),
    ]
    for bf16, channels_last, compiled in rows:
        profile = args.profile and bf16 and not channels_last
        ms = step_ms(params, bf16, channels_last, compiled, args.steps, profile)
        print(
            f"| {'bf16' if bf16 else 'fp32'} | {'channels_last' if channels_last else 'NCHW'} "
            f"| {'compiled' if compiled else 'eager'} | {ms:.0f} | {params.batch_size / ms * 1000:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
