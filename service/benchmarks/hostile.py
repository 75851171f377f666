"""The service under hostile input, measured on a real ``tilescan-serve`` process on 127.0.0.1.

Three rows of issue 9, each printed as a number the code is judged by:

- **big images**: peak and held RSS growth for one 6000x6000 16-bit PNG of zeros (PNG and JSON
  answers), and for three float TIFFs of that size at once (``scenarios.big_image_memory``,
  also part of ``make bench``);
- **broken images**: a seeded corpus of cut and byte-flipped tiles in every accepted format, posted
  one by one: how many answers were 5xx, and whether ``/readyz`` is still 200 afterwards;
- **made-up methods**: how many bytes ``/metrics`` grows after 200 requests with invented HTTP
  methods on invented paths.

``python service/benchmarks/hostile.py`` (the venv's Python). It needs no dataset: the tiles are
drawn here. Load is bounded (a few hundred requests) and goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import http.client
import io
import random
import string
from collections import Counter
from pathlib import Path

import numpy as np
from harness import REPO, start_service, stop_service
from PIL import Image
from scenarios import big_image_memory

from tilescan_service.client import multipart_body
from tilescan_service.testing import free_port

# Every format the service accepts, with the encoder options a camera or a script would use.
FORMATS: dict[str, tuple[str, dict]] = {
    "png": ("PNG", {}),
    "png16": ("PNG", {}),
    "jpeg": ("JPEG", {"quality": 90}),
    "bmp": ("BMP", {}),
    "tiff": ("TIFF", {}),
    "tiff_lzw": ("TIFF", {"compression": "tiff_lzw"}),
    "webp": ("WEBP", {"quality": 80}),
    "webp_lossless": ("WEBP", {"lossless": True}),
}


def tile(seed: int = 0, height: int = 48, width: int = 64) -> np.ndarray:
    """A tile-like 8-bit gray image: a noisy background with one bright scratch."""
    rng = np.random.default_rng(seed)
    img = rng.normal(90, 12, (height, width)).clip(0, 255).astype(np.uint8)
    img[20:24, 8:56] = 230
    return img


def encoded_tiles() -> dict[str, bytes]:
    """The same tile encoded in each accepted format (16-bit PNG included)."""
    out = {}
    gray = tile()
    for name, (fmt, options) in FORMATS.items():
        image = Image.fromarray(gray.astype(np.uint16) * 257) if name == "png16" else Image.fromarray(gray)
        buf = io.BytesIO()
        image.save(buf, format=fmt, **options)
        out[name] = buf.getvalue()
    return out


def broken_corpus(per_format: int, seed: int = 9) -> list[tuple[str, bytes]]:
    """Cut and byte-flipped copies of each encoded tile: half cut short, half with 1-8 bytes flipped."""
    rng = random.Random(seed)
    corpus = []
    for name, data in encoded_tiles().items():
        for i in range(per_format):
            if i % 2 == 0:
                # Cuts inside the header hit the parsers hardest: favour the first 64 bytes.
                end = rng.randint(1, 64) if i % 4 == 0 else rng.randint(1, len(data) - 1)
                corpus.append((f"{name}-cut{end}", data[:end]))
            else:
                mutated = bytearray(data)
                for _ in range(rng.randint(1, 8)):
                    position = rng.randrange(len(mutated))
                    mutated[position] ^= 1 << rng.randrange(8) if rng.random() < 0.5 else rng.randrange(256)
                corpus.append((f"{name}-flip{i}", bytes(mutated)))
    return corpus


def broken_images(port: int, per_format: int) -> tuple[Counter, int, bool]:
    """Statuses of the broken corpus, the count of 5xx, and whether the service is ready afterwards."""
    statuses: Counter = Counter()
    server_errors = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for name, data in broken_corpus(per_format):
        body, content_type = multipart_body(data, f"{name}.img")
        conn.request("POST", "/predict?format=png", body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        response.read()
        statuses[response.status] += 1
        server_errors += response.status >= 500
    conn.request("GET", "/readyz")
    ready = conn.getresponse()
    ready.read()
    conn.close()
    return statuses, server_errors, ready.status == 200


def metrics_size(conn: http.client.HTTPConnection) -> int:
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    return len(response.read())


def made_up_methods(port: int, requests: int, seed: int = 3) -> tuple[int, int]:
    """``/metrics`` size before and after ``requests`` requests with invented methods and paths."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    before = metrics_size(conn)
    for _ in range(requests):
        method = "".join(rng.choices(string.ascii_uppercase, k=rng.randint(6, 24)))
        path = "/" + "".join(rng.choices(string.ascii_lowercase, k=12))
        conn.request(method, path)
        conn.getresponse().read()
    after = metrics_size(conn)
    conn.close()
    return before, after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models/tilescan.onnx")
    parser.add_argument("--per-format", type=int, default=40, help="broken files per accepted format")
    parser.add_argument("--methods", type=int, default=200, help="requests with made-up methods")
    args = parser.parse_args()

    memory = [
        big_image_memory(args.model, "png"),
        big_image_memory(args.model, "json"),
        big_image_memory(args.model, "png", "float-tiff", at_once=3),
    ]
    port = free_port()
    log = Path("/tmp/tilescan-hostile-service.log")
    service = start_service(args.model, port, log)
    try:
        statuses, server_errors, ready = broken_images(port, args.per_format)
        before, after = made_up_methods(port, args.methods)
    finally:
        stop_service(service)

    print("\n| case | result |")
    print("| --- | --- |")
    for run in memory:
        print(f"| {run.describe()} |")
    total = sum(statuses.values())
    by_status = ", ".join(f"{count} x {status}" for status, count in sorted(statuses.items()))
    print(
        f"| {total} broken images ({args.per_format} per format, {len(FORMATS)} formats) "
        f"| {server_errors} x 5xx ({by_status}); ready afterwards: {ready} |"
    )
    print(
        f"| {args.methods} requests with made-up methods | /metrics {before:,} -> {after:,} bytes "
        f"({after - before:+,}) |"
    )


if __name__ == "__main__":
    main()
