"""What one service process needs: peak memory and the SIGTERM drain with a full queue (pod sizing).

Starts a real ``tilescan-serve`` with the settings in the environment (use the Kubernetes ConfigMap's,
see deploy/k8s/README.md), fills every inference slot and queue place with the largest image those
settings accept (random noise: the worst case for the PNG decoder and the mask), and prints

* the peak resident memory of the process (``VmHWM``) after each round;
* the drain: SIGTERM while the queue is full, then the seconds until the process exits and whether every
  admitted request was still answered 200.

Load goes to 127.0.0.1 only and is bounded (``--rounds``, one full queue each).
"""

from __future__ import annotations

import argparse
import io
import math
import signal
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from tilescan_service.config import Settings
from tilescan_service.testing import start_serve

REPO = Path(__file__).resolve().parents[2]


def noise_png(pixels: int) -> bytes:
    side = math.isqrt(pixels)
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def burst(url: str, body: bytes, count: int, results: list[tuple[int, float]]) -> list[threading.Thread]:
    """``count`` concurrent PNG-answer predictions, each on its own connection (started, not joined)."""

    def one() -> None:
        started = time.perf_counter()
        try:
            status = httpx.post(
                f"{url}/predict?format=png", files={"image": ("noise.png", body)}, timeout=120
            ).status_code
        except httpx.HTTPError:
            status = 0
        results.append((status, time.perf_counter() - started))

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="full queues sent before the drain")
    args = parser.parse_args()

    settings = Settings()
    admitted = settings.inference_slots + settings.max_queue
    body = noise_png(settings.max_image_pixels)
    # This process's TILESCAN_* settings (the command in docs/benchmarks.md sets them) go to the server.
    served = start_serve(REPO / "models/tilescan.onnx", timeout=120, TILESCAN_LOG_LEVEL=settings.log_level)
    server, url = served.process, served.url
    try:
        print(
            f"settings: intra_op_threads={settings.intra_op_threads} "
            f"inference_concurrency={settings.inference_concurrency} max_queue={settings.max_queue} "
            f"max_image_pixels={settings.max_image_pixels} ({len(body) / 2**20:.1f} MiB noise PNG)"
        )
        print(f"ready: peak RSS {peak_rss_mib(server.pid):.0f} MiB")
        for round_ in range(1, args.rounds + 1):
            results: list[tuple[int, float]] = []
            for thread in burst(url, body, admitted, results):
                thread.join()
            codes = sorted({status for status, _ in results})
            slowest = max(seconds for _, seconds in results)
            print(
                f"round {round_}: {admitted} requests at once, statuses {codes}, slowest {slowest:.2f} s, "
                f"peak RSS {peak_rss_mib(server.pid):.0f} MiB"
            )

        results = []
        threads = burst(url, body, admitted, results)
        time.sleep(1.0)  # every request uploaded and admitted
        term = time.perf_counter()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=300)
        drain = time.perf_counter() - term
        for thread in threads:
            thread.join()
        ok = sum(status == 200 for status, _ in results)
        print(f"drain: SIGTERM with {admitted} admitted -> exit after {drain:.2f} s, {ok} answered 200")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
