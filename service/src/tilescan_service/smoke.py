"""Smoke test of a running tilescan API; the deploy workflows and ``make docker-smoke`` run it.

1. ``GET /readyz`` answers 200, polled for up to ``--wait`` seconds (a fresh dyno or container first
   loads the model and runs its warm-up inference);
2. ``GET /model`` reports the version stamped in this checkout's ``models/tilescan.onnx``;
3. ``POST /predict`` with a real tile returns a mask of exactly the tile's size (``format=json``).

The tile: unless ``--tile`` names an image, the image third of the first example panel that the evaluate
stage committed beside the model (``evaluation/examples/*.png`` = ``image | truth | prediction``). That is
a real test-split tile, pixel for pixel (the panels are lossless PNGs), and needs no data pull.

Run it as ``python -m tilescan_service.smoke URL`` with the project's venv, or on a bare runner after
``pip install --constraint constraints.txt onnx pillow scipy`` with ``PYTHONPATH=shared/src:service/src``:
it needs ``onnx`` (to load the model), ``pillow``, ``tilescan_shared`` (the model's metadata, without
onnxruntime) and :mod:`tilescan_service.client`, none of the service's own dependencies.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from PIL import Image

from tilescan_service.client import multipart_body
from tilescan_shared import panels
from tilescan_shared.model_info import read_info


class SmokeError(RuntimeError):
    """A check failed; the message says which and what came back."""


def tile_from_panel(panel_path: Path) -> Image.Image:
    """The original tile, cut out of an ``image | truth | prediction`` panel, as 8-bit grayscale."""
    try:
        return panels.cut_tile(Image.open(panel_path))
    except ValueError as err:
        raise SmokeError(f"{panel_path}: {err}") from err


def load_tile(tile: Path | None, examples: Path) -> tuple[bytes, tuple[int, int], str]:
    """PNG bytes, ``(width, height)`` and a description of the tile to send."""
    if tile is not None:
        image, source = Image.open(tile), str(tile)
    else:
        panels = sorted(examples.glob("*.png"))
        if not panels:
            raise SmokeError(f"no example panels in {examples}: pass --tile")
        image, source = tile_from_panel(panels[0]), f"image of {panels[0]}"
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), image.size, source


def model_version(model: Path) -> str:
    """The ``version`` in the ONNX file's metadata, as the service reports it on ``/model``."""
    import onnx

    try:
        return read_info(onnx.load(str(model), load_external_data=False)).version
    except ValueError as err:
        raise SmokeError(f"{model}: {err}") from None


def _request(req: urllib.request.Request | str, timeout: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_ready(url: str, wait: float, timeout: float) -> None:
    deadline = time.monotonic() + wait
    last = "no answer"
    while True:
        try:
            status, body = _request(f"{url}/readyz", timeout)
            if status == 200:
                return
            last = f"{status} {body[:200]!r}"
        except OSError as err:  # refused or reset while the server starts
            last = str(err)
        if time.monotonic() >= deadline:
            raise SmokeError(f"/readyz not 200 after {wait:.0f}s: {last}")
        time.sleep(2)


def get_json(url: str, timeout: float) -> dict[str, Any]:
    status, body = _request(url, timeout)
    if status != 200:
        raise SmokeError(f"GET {url}: {status} {body[:300]!r}")
    return json.loads(body)


def predict(url: str, png: bytes, timeout: float) -> dict[str, Any]:
    body, content_type = multipart_body(png)
    req = urllib.request.Request(
        f"{url}/predict?format=json",
        data=body,
        headers={"Content-Type": content_type, "Accept": "application/json"},
        method="POST",
    )
    status, answer = _request(req, timeout)
    if status != 200:
        raise SmokeError(f"POST /predict: {status} {answer[:300]!r}")
    return json.loads(answer)


def smoke(url: str, model: Path, tile: Path | None, examples: Path, wait: float, timeout: float) -> list[str]:
    """Run the three checks; return what each found, or raise :class:`SmokeError` at the first failure."""
    url = url.rstrip("/")
    expected = model_version(model)
    png, (width, height), source = load_tile(tile, examples)
    wait_ready(url, wait, timeout)
    lines = [f"/readyz 200 at {url}"]

    served = get_json(f"{url}/model", timeout).get("version")
    if served != expected:
        raise SmokeError(f"/model reports version {served!r}, {model} in this checkout is {expected!r}")
    lines.append(f"/model version {served} == {model}")

    answer = predict(url, png, timeout)
    mask = answer.get("pred")
    size = (answer.get("width"), answer.get("height"))
    if size != (width, height) or not isinstance(mask, list) or len(mask) != height:
        raise SmokeError(f"/predict mask is {size} with {len(mask or [])} rows; the tile is {width}x{height}")
    if any(len(row) != width for row in mask):
        raise SmokeError(f"/predict mask rows are not all {width} wide")
    lines.append(
        f"/predict {width}x{height} mask for {source}: {answer.get('defect_pixels')} defect pixels, "
        f"model {answer.get('model', {}).get('version')}"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url", help="base URL of the running API, e.g. https://tilescan-dev.herokuapp.com")
    parser.add_argument("--model", type=Path, default=Path("models/tilescan.onnx"))
    parser.add_argument("--examples", type=Path, default=Path("evaluation/examples"))
    parser.add_argument("--tile", type=Path, help="an image to send instead of a tile cut from a panel")
    parser.add_argument("--wait", type=float, default=180, help="seconds to wait for /readyz")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per request")
    args = parser.parse_args(argv)
    try:
        for line in smoke(args.url, args.model, args.tile, args.examples, args.wait, args.timeout):
            print(f"ok: {line}")
    except SmokeError as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
