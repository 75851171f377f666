"""The int8 sibling of an exported model: onnxruntime's static QDQ quantization, calibrated on train tiles.

Weights are quantized per channel (int8), activations per tensor (uint8) with ranges read from real
tiles at their native size, as the service sees them. The result keeps the fp32 model's contract
(``uint8`` image in, ``float32`` probabilities and tile score out: the graph's own normalisation and
sigmoid stay at its edges) and its metadata. Whether the service may run it is the evaluate stage's
call (:mod:`tilescan_training.variants`), never this module's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from tilescan_shared.model_info import read_info, stamp
from tilescan_shared.predictor import INPUT_NAME
from tilescan_training.manifest import Record
from tilescan_training.params.export import Int8Params

METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}


class _Tiles(CalibrationDataReader):
    """Feeds the calibration tiles one at a time, each at its own size."""

    def __init__(self, images: list[np.ndarray]) -> None:
        self._images: Iterator[np.ndarray] = iter(images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        image = next(self._images, None)
        return None if image is None else {INPUT_NAME: image[None, None]}


def calibration_records(records: list[Record], count: int) -> list[Record]:
    """``count`` records taken from every class in turn (in manifest order), so rare defects count too."""
    by_class: dict[str, list[Record]] = {}
    for record in records:
        by_class.setdefault(record.cls, []).append(record)
    queues = [iter(group) for _, group in sorted(by_class.items())]
    picked: list[Record] = []
    while len(picked) < count and queues:
        for queue in list(queues):
            record = next(queue, None)
            if record is None:
                queues.remove(queue)
            elif len(picked) < count:
                picked.append(record)
    return picked


def quantize_int8(fp32_path: Path, out_path: Path, images: list[np.ndarray], params: Int8Params) -> None:
    """Write the int8 QDQ model of ``fp32_path`` to ``out_path``, calibrated on ``images``."""
    if not images:
        raise ValueError("no calibration tiles")
    if params.calibration != "minmax":
        # onnxruntime's histogram calibrators stack every tile's activations into one array, so the
        # tiles must share a size: their common top-left window.
        height, width = min(i.shape[0] for i in images), min(i.shape[1] for i in images)
        images = [image[:height, :width] for image in images]
    fp32 = onnx.load(str(fp32_path))
    kept = [node.name for node in fp32.graph.node if node.name.startswith(tuple(params.keep_fp32))]
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Shape inference and graph clean-up first, as onnxruntime recommends before quantizing.
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out_path),
            _Tiles(images),
            quant_format=QuantFormat.QDQ,
            nodes_to_exclude=kept,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=METHODS[params.calibration],
        )
    model = onnx.load(str(out_path))
    stamp(model, read_info(fp32))
    onnx.save(model, str(out_path))
