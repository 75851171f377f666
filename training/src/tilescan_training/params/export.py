"""``params.yaml``'s ``export:``: the ONNX graph and its int8 sibling (the export stage)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Int8Params:
    # How activation ranges are read from the calibration tiles.
    calibration: Literal["minmax", "entropy", "percentile"]
    calibration_tiles: int  # train tiles, spread over the classes
    keep_fp32: tuple[str, ...]  # ONNX node name prefixes left unquantized, e.g. [/net/decision]


@dataclass(frozen=True)
class ExportParams:
    name: str
    opset: int
    # Largest allowed |torch - onnxruntime| probability difference in the parity check.
    tolerance: float
    # Test-time augmentation inside the graph: average with the horizontally flipped prediction.
    flip_tta: bool
    int8: Int8Params  # the statically quantized sibling model (tilescan_training.quantization)
