"""Test helpers for code built on tilescan_shared (needs the ``onnx`` package, a test dependency)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np

from tilescan_shared.masks import DecisionRule
from tilescan_shared.model_info import ModelInfo, stamp


def write_tiny_model(
    path: str | Path,
    threshold: float = 0.5,
    min_region_area: int = 0,
    version: str = "tiny0001",
    min_region_peak: float = 0.0,
    tile_threshold: float | None = None,
    review: tuple[float, float] | None = None,
    corner_score: bool = False,
    metrics: dict[str, float] | None = None,
    variants: dict[str, dict] | None = None,
    reference: dict[str, list[int]] | None = None,
) -> Path:
    """Write a model with the tilescan contract whose probability is simply ``pixel / 255``.

    Bright pixels are "defects", so tests can draw the answer they expect. With ``tile_threshold``,
    the model also has a tile decision head: its tile score is the brightest pixel's probability, or with
    ``corner_score`` the top-left pixel's (so each mirrored view of a second look scores another corner);
    ``review``: the rule's review band.
    ``metrics``: the test metrics stamped in its metadata, as evaluate would (default: made up);
    ``variants``: the reduced precisions it lists as passed (their files are the caller's to write);
    ``reference``: its drift reference histograms (:mod:`tilescan_shared.drift`).
    """
    import onnx
    from onnx import TensorProto, helper

    from tilescan_shared.predictor import INPUT_NAME, OUTPUT_NAME, TILE_OUTPUT_NAME

    scale = helper.make_tensor("scale", TensorProto.FLOAT, [], [255.0])
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["as_float", "scale"], [OUTPUT_NAME]),
    ]
    outputs = [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 1, "H", "W"])]
    initializers = [scale]
    if tile_threshold is not None and corner_score:
        initializers += [
            helper.make_tensor(name, TensorProto.INT64, [3], values)
            for name, values in (("starts", [0, 0, 0]), ("ends", [1, 1, 1]), ("axes", [1, 2, 3]))
        ]
        initializers.append(helper.make_tensor("flat", TensorProto.INT64, [1], [-1]))
        nodes += [
            helper.make_node("Slice", [OUTPUT_NAME, "starts", "ends", "axes"], ["corner"]),
            helper.make_node("Reshape", ["corner", "flat"], [TILE_OUTPUT_NAME]),
        ]
    elif tile_threshold is not None:
        nodes.append(
            helper.make_node("ReduceMax", [OUTPUT_NAME], [TILE_OUTPUT_NAME], axes=[1, 2, 3], keepdims=0)
        )
    if tile_threshold is not None:
        outputs.append(helper.make_tensor_value_info(TILE_OUTPUT_NAME, TensorProto.FLOAT, ["N"]))
    graph = helper.make_graph(
        nodes,
        f"tiny_tilescan_{version}",  # as in an exported model, another version is another network
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["N", 1, "H", "W"])],
        outputs,
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    info = ModelInfo(
        name="tilescan-tiny",
        version=version,
        rule=DecisionRule(threshold, min_region_area, min_region_peak, tile_threshold, review),
        working_size=[8, 8],
        train_params={"note": "test model"},
        metrics=metrics or {"dice": 0.5, "iou": 0.33},
        variants=variants or {},
        reference=reference or {},
    )
    stamp(model, info)
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, path)
    return path


def bright_square(
    height: int = 40, width: int = 60, box: tuple[int, int, int, int] = (10, 5, 30, 20)
) -> np.ndarray:
    """A dark ``uint8`` image with one white rectangle ``box = (x0, y0, x1, y1)``, exclusive ends."""
    img = np.full((height, width), 20, dtype=np.uint8)
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = 255
    return img


def mask_rows(mask: np.ndarray) -> list[list[int]]:
    """The mask as a list of rows of 0/1 ints: what the JSON answer's ``pred`` must hold."""
    return (mask > 0).astype(np.uint8).tolist()


@contextmanager
def openvino_cache_capacities() -> Iterator[list[str]]:
    """The ``CPU_RUNTIME_CACHE_CAPACITY`` of every model OpenVINO compiles inside the block, in order."""
    import openvino as ov

    asked: list[str] = []
    compile_model = ov.Core.compile_model

    def recording(core: ov.Core, graph: object, device: str, config: dict[str, str]) -> object:
        asked.append(config["CPU_RUNTIME_CACHE_CAPACITY"])
        return compile_model(core, graph, device, config)

    with mock.patch.object(ov.Core, "compile_model", recording):
        yield asked
