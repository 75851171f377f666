"""Which inputs drifted away from what the model was trained on (``make drift-report``).

Compares a window of tiles with the served model's training reference (``ModelInfo.reference``) by the
population stability index of each statistic of :mod:`tilescan_shared.drift` (mean gray level,
contrast, size, tile score), and names the ones above 0.25. The window is either

* a running service's rolling window (its last ``TILESCAN_DRIFT_WINDOW`` tiles), read from ``/metrics``:
  ``python scripts/drift_report.py --url http://127.0.0.1:8000``;
* the random sample in a capture store (captures with reason ``sampled``: the uncertain ones would not
  be a fair picture), measured here against a model file:
  ``python scripts/drift_report.py --captures s3://bucket/captures --model models/tilescan.onnx``.

Exits 1 when an input drifted, 2 when there is nothing to compare.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tilescan_shared import drift
from tilescan_shared.captures import CaptureStore
from tilescan_shared.image import decode_gray
from tilescan_shared.predictor import Predictor


def from_service(url: str) -> tuple[int, dict[str, float]]:
    """The service's window size and its indices, from its ``/metrics``."""
    text = httpx.get(f"{url.rstrip('/')}/metrics", timeout=10).raise_for_status().text
    tiles, indices = 0, {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tilescan_input_drift_window_tiles":
                tiles = int(sample.value)
            elif sample.name == "tilescan_input_drift_psi":
                indices[sample.labels["stat"]] = sample.value
    return tiles, indices


def from_captures(url: str, model: Path) -> tuple[int, dict[str, float]]:
    """The sampled captures' tiles and their indices against ``model``'s reference."""
    store = CaptureStore(url)
    values: dict[str, list[float]] = {stat: [] for stat in drift.EDGES}
    sampled = [record for record in store.records() if record.reason == "sampled"]
    for record in sampled:
        for stat, value in drift.tile_stats(decode_gray(store.image(record.sha256))).items():
            values[stat].append(value)
        values["tile_score"].append(record.score)
    reference = Predictor(model).info.reference
    window = drift.reference(values)
    return len(sampled), {
        stat: drift.psi(reference[stat], window[stat]) for stat in window if stat in reference
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="a running tilescan service")
    source.add_argument("--captures", help="a capture store: a directory or fsspec URL")
    parser.add_argument("--model", type=Path, default=Path("models/tilescan.onnx"), help="with --captures")
    args = parser.parse_args(argv)
    tiles, indices = from_service(args.url) if args.url else from_captures(args.captures, args.model)
    if not tiles or not indices:
        print(f"nothing to compare: {tiles} tiles in the window, {len(indices)} statistics with a reference")
        return 2
    print(f"{tiles} tiles against the model's training reference\n")
    print("| input | population stability index | |")
    print("| --- | ---: | --- |")
    for stat, index in sorted(indices.items()):
        print(f"| {stat} | {index:.3f} | {'**drifted**' if index > drift.DRIFTED else 'stable'} |")
    drifted = sorted(stat for stat, index in indices.items() if index > drift.DRIFTED)
    print(
        f"\n{'drifted: ' + ', '.join(drifted) if drifted else 'no input drifted'} (threshold {drift.DRIFTED})"
    )
    return 1 if drifted else 0


if __name__ == "__main__":
    sys.exit(main())
