"""Does onnxruntime really run the model on the GPU, and are its masks the CPU's? (``make gpu-check``)

Opens the model twice, once on the reference provider (CPU) and once on the candidate (CUDA), fails when
the candidate is not offered by this onnxruntime build or the session silently fell back to CPU, then
predicts every tile of the example panels (evaluation/examples) with both and compares:

* the probability maps: largest absolute difference <= ``--max-prob-diff``;
* the masks after the model's own decision rule: differing pixels <= ``--max-mask-diff`` of all pixels
  (a pixel whose probability sits on the threshold may flip; a region may not appear or vanish).

Runs inside the GPU image on a plant's GPU box (``python -m tilescan_service.gpu_parity``, from
scripts/gpu_check.sh); on CPU it runs with ``--candidate CPUExecutionProvider`` (the tests do).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tilescan_service.smoke import tile_from_panel
from tilescan_shared.masks import DecisionRule, segment
from tilescan_shared.predictor import Inference, Predictor

CPU = "CPUExecutionProvider"


@dataclass(frozen=True)
class Parity:
    max_prob_diff: float
    mask_diff_pixels: int
    pixels: int

    @property
    def mask_diff_fraction(self) -> float:
        return self.mask_diff_pixels / self.pixels


def compare(reference: Inference, candidate: Inference, rule: DecisionRule) -> Parity:
    """How far the candidate's probabilities (the tile score among them) and masks are from the
    reference's, for one tile."""
    masks = [segment(i.probability, rule, i.tile_score).mask for i in (reference, candidate)]
    gaps = [np.abs(reference.probability - candidate.probability).max()]
    if reference.tile_score is not None and candidate.tile_score is not None:
        gaps.append(abs(reference.tile_score - candidate.tile_score))
    return Parity(
        max_prob_diff=float(max(gaps)),
        mask_diff_pixels=int(np.count_nonzero(masks[0] != masks[1])),
        pixels=reference.probability.size,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/tilescan.onnx"))
    parser.add_argument("--examples", type=Path, default=Path("evaluation/examples"))
    parser.add_argument("--reference", default=CPU)
    parser.add_argument("--candidate", default="CUDAExecutionProvider")
    parser.add_argument("--max-prob-diff", type=float, default=1e-3)
    parser.add_argument("--max-mask-diff", type=float, default=1e-4, help="fraction of a tile's pixels")
    args = parser.parse_args(argv)

    available = ort.get_available_providers()
    print(f"onnxruntime {ort.__version__} ({ort.get_device()}): providers {available}")
    if args.candidate not in available:
        print(f"FAIL: this onnxruntime build does not offer {args.candidate}", file=sys.stderr)
        return 1
    reference = Predictor(args.model, providers=[args.reference])
    candidate = Predictor(args.model, providers=list(dict.fromkeys([args.candidate, CPU])))
    if candidate.providers[0] != args.candidate:
        # onnxruntime falls back to CPU with a warning when CUDA cannot start (driver, libraries).
        print(f"FAIL: the {args.candidate} session fell back to {candidate.providers}", file=sys.stderr)
        return 1
    print(f"reference session: {reference.providers}; candidate session: {candidate.providers}")

    panels = sorted(args.examples.glob("*.png"))
    if not panels:
        print(f"FAIL: no example panels in {args.examples}", file=sys.stderr)
        return 1
    rule = reference.info.rule
    failed = 0
    for panel in panels:
        tile = np.asarray(tile_from_panel(panel))
        parity = compare(reference.predict(tile), candidate.predict(tile), rule)
        ok = parity.max_prob_diff <= args.max_prob_diff and parity.mask_diff_fraction <= args.max_mask_diff
        failed += not ok
        print(
            f"{'ok  ' if ok else 'FAIL'} {panel.name}: {tile.shape[1]}x{tile.shape[0]}, "
            f"max |p_ref - p_cand| {parity.max_prob_diff:.2e}, "
            f"{parity.mask_diff_pixels} of {parity.pixels} mask pixels differ"
        )
    print(
        f"{len(panels)} tiles, {failed} beyond tolerance (prob <= {args.max_prob_diff:g}, "
        f"mask <= {args.max_mask_diff:g} of the pixels), model {reference.info.version}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
