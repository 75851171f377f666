"""Bounded load on the API through a load balancer, counting every failure (``make scale-smoke``).

``--clients`` keep-alive connections post the same tile to ``/predict`` until the stop file appears (or
``--max-requests`` / ``--max-seconds`` run out, which is an error: the caller never said stop), writing the
running count of requests to the progress file so the caller can act in the middle of the load. Ends with
one line, ``N requests, M failed``, and exits 1 when any failed. A failure is anything but a 200 with a
mask of the tile's size: a refused or reset connection, a timeout, a 5xx.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tilescan_service.client import multipart_body
from tilescan_service.smoke import load_tile


class Tally:
    def __init__(self, progress: Path) -> None:
        self.requests = 0
        self.failures: list[str] = []
        self.progress = progress
        self.lock = threading.Lock()

    def add(self, failure: str | None) -> None:
        with self.lock:
            self.requests += 1
            if failure is not None:
                self.failures.append(failure)
            # Replaced, not rewritten: a reader never sees a half-written count.
            partial = self.progress.with_suffix(".partial")
            partial.write_text(f"{self.requests}\n")
            partial.replace(self.progress)


@dataclass(frozen=True)
class Upload:
    body: bytes  # multipart/form-data
    content_type: str
    size: tuple[int, int]  # the tile's (width, height)


def post(conn: http.client.HTTPConnection, upload: Upload) -> str | None:
    """One prediction; None when it succeeded, else what went wrong."""
    conn.request(
        "POST", "/predict?format=rle", body=upload.body, headers={"Content-Type": upload.content_type}
    )
    response = conn.getresponse()
    payload = response.read()
    if response.status != 200:
        return f"HTTP {response.status}: {payload[:200]!r}"
    answer = json.loads(payload)
    if (answer.get("width"), answer.get("height")) != upload.size:
        return f"mask of {answer.get('width')}x{answer.get('height')} for a {upload.size} tile"
    return None


def client(url: str, upload: Upload, stop: threading.Event, tally: Tally) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)
    while not stop.is_set():
        try:
            failure = post(conn, upload)
        except (OSError, http.client.HTTPException, ValueError) as err:
            failure = f"{type(err).__name__}: {err}"
            conn.close()  # a fresh connection for the next request
        tally.add(failure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the load balancer, e.g. http://127.0.0.1:8080")
    parser.add_argument("--stop-file", type=Path, required=True, help="the load ends when this file exists")
    parser.add_argument("--progress-file", type=Path, required=True, help="requests sent so far")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--examples", type=Path, default=Path("evaluation/examples"))
    args = parser.parse_args(argv)

    png, size, _ = load_tile(None, args.examples)
    upload = Upload(*multipart_body(png), size)

    tally = Tally(args.progress_file)
    stop = threading.Event()
    threads = [
        threading.Thread(target=client, args=(args.url, upload, stop, tally), daemon=True)
        for _ in range(args.clients)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + args.max_seconds
    bounded_out = False
    while not args.stop_file.exists():
        if tally.requests >= args.max_requests or time.monotonic() > deadline:
            bounded_out = True
            break
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(timeout=90)

    for failure in tally.failures[:10]:
        print(f"failed: {failure}", file=sys.stderr)
    if bounded_out:
        bound = f"{args.max_requests} requests, {args.max_seconds:.0f} s"
        print(f"the load hit its bound ({bound}) before the stop file appeared", file=sys.stderr)
    print(f"{tally.requests} requests, {len(tally.failures)} failed")
    return 1 if tally.failures or bounded_out else 0


if __name__ == "__main__":
    sys.exit(main())
