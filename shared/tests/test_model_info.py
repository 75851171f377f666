from dataclasses import replace

import onnx
import pytest
from onnx import helper

from tilescan_shared.masks import DecisionRule
from tilescan_shared.model_info import ModelInfo, read_info, stamp
from tilescan_shared.testing import write_tiny_model

INFO = ModelInfo(
    name="tilescan",
    version="0123456789ab",
    rule=DecisionRule(threshold=0.15, min_region_area=32, min_region_peak=0.9),
    working_size=[256, 320],
    train_params={"epochs": 70, "net": {"depth": 4}},
    export_params={"opset": 17, "flip_tta": False},
    metrics={"dice": 0.88, "per_class": {"crack": {"dice": 0.7, "images": 12}}},
)


def test_to_props_is_the_inverse_of_from_props():
    props = INFO.to_props()
    assert all(isinstance(v, str) for v in props.values())
    assert ModelInfo.from_props(props) == INFO
    assert ModelInfo.from_props(props).to_props() == props


def test_the_tile_threshold_round_trips_and_a_stamp_without_one_removes_it(tmp_path):
    with_tile = replace(INFO, rule=replace(INFO.rule, tile_threshold=0.42))
    assert ModelInfo.from_props(with_tile.to_props()) == with_tile
    assert "tile_threshold" not in INFO.to_props()
    model = onnx.load(str(write_tiny_model(tmp_path / "tiny.onnx")))
    stamp(model, with_tile)
    stamp(model, INFO)
    assert read_info(model).rule.tile_threshold is None


def test_missing_required_keys_are_named():
    props = INFO.to_props()
    del props["version"], props["threshold"]
    with pytest.raises(ValueError, match=r"lacks \['threshold', 'version'\]"):
        ModelInfo.from_props(props)


def test_stamp_round_trips_through_a_saved_file(tmp_path):
    model = onnx.load(str(write_tiny_model(tmp_path / "tiny.onnx")))
    helper.set_model_props(model, {p.key: p.value for p in model.metadata_props} | {"author": "kept"})
    stamp(model, INFO)
    onnx.save(model, str(tmp_path / "stamped.onnx"))
    saved = onnx.load(str(tmp_path / "stamped.onnx"))
    assert read_info(saved) == INFO
    props = {p.key: p.value for p in saved.metadata_props}
    assert props == INFO.to_props() | {"author": "kept"}
    assert len(saved.metadata_props) == len(props)  # each key once, stamped values replaced in place


def test_a_review_band_round_trips_and_a_model_without_one_has_none():
    info = ModelInfo("m", "v1", DecisionRule(0.5, 0, 0.0, 0.4, (0.05, 0.95)), [8, 8])
    assert ModelInfo.from_props(info.to_props()) == info
    plain = replace(info, rule=DecisionRule(0.5, 0, 0.0, 0.4))
    assert "review" not in plain.to_props() and ModelInfo.from_props(plain.to_props()) == plain
