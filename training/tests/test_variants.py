import shutil

import numpy as np

from tilescan_shared.masks import DecisionRule
from tilescan_shared.predictor import Predictor, Variant
from tilescan_shared.runtimes import variant_path
from tilescan_shared.testing import bright_square, write_tiny_model
from tilescan_training.manifest import Record
from tilescan_training.scoring import Scored, Tile
from tilescan_training.variants import disagreement, judge, score_variant, score_variants

FP32 = {"dice": 0.80, "iou": 0.67, "false_alarm_rate": 0.05, "recall": 0.94}


def test_a_variant_may_lose_a_little_dice_and_nothing_else():
    assert judge(FP32, {**FP32, "dice": 0.796}, 0.005) == []
    assert judge(FP32, {**FP32, "dice": 0.81, "recall": 0.96, "false_alarm_rate": 0.0}, 0.005) == []
    lost = judge(FP32, {**FP32, "dice": 0.79, "false_alarm_rate": 0.06, "recall": 0.92}, 0.005)
    assert [reason.split()[0] for reason in lost] == ["Dice", "false", "tile"]


def _tile(i: int, image: np.ndarray, truth: np.ndarray, cls: str) -> Tile:
    record = Record(f"{cls}/{i}", cls, f"{i}.png", f"{i}m.png", *image.shape, int(truth.sum()), "", "")
    return Tile(record, image, truth)


TILES = [
    _tile(0, bright_square(), (bright_square() > 128).astype(np.uint8), "blowhole"),
    _tile(1, np.full((40, 60), 20, np.uint8), np.zeros((40, 60), np.uint8), "free"),
]
RULE = DecisionRule(threshold=0.5)


def _scored(tiles: list[Tile], shift: float = 0.0) -> list[Scored]:
    return [Scored(t.record, t.image, t.truth, np.clip(t.image / 255 + shift, 0, 1), None) for t in tiles]


def test_disagreement_counts_mask_pixels_and_the_largest_change():
    same = disagreement(_scored(TILES), _scored(TILES), RULE)
    assert same == {"mask_disagreement": 0.0, "max_probability_change": 0.0}
    shifted = disagreement(_scored(TILES), _scored(TILES, 0.45), RULE)  # dark pixels reach 0.53
    assert shifted["mask_disagreement"] > 0.5 and abs(shifted["max_probability_change"] - 0.45) < 1e-6


def test_a_variant_that_answers_like_fp32_passes(tmp_path):
    model = write_tiny_model(tmp_path / "m.onnx")
    shutil.copyfile(model, variant_path(model, Variant.INT8))
    fp32 = {"test": _scored(TILES)}
    report = score_variant(Predictor(model, variant=Variant.INT8), fp32, {"test": TILES}, RULE, 0.005)
    assert report["passed"] and report["test"]["dice"] == 1.0 and report["test"]["mask_disagreement"] == 0.0


def test_a_variant_that_flags_a_good_tile_is_rejected(tmp_path):
    model = write_tiny_model(tmp_path / "m.onnx")
    shutil.copyfile(model, variant_path(model, Variant.INT8))
    spotted = _tile(2, bright_square(box=(1, 1, 9, 9)), np.zeros((40, 60), np.uint8), "free")  # no defect
    tiles = [*TILES, spotted]
    # fp32's answers: right on every tile, the spot on the good tile left dark
    fp32 = [Scored(t.record, t.image, t.truth, t.truth.astype(np.float32), None) for t in tiles]
    report = score_variant(
        Predictor(model, variant=Variant.INT8), {"test": fp32}, {"test": tiles}, RULE, 0.005
    )
    assert not report["passed"] and report["test"]["false_alarm_rate"] == 0.5
    assert report["why"].startswith("test: false alarms 0.5000 > fp32 0.0000")


def test_variants_that_cannot_run_are_reported_not_passed(tmp_path):
    model = write_tiny_model(tmp_path / "m.onnx")  # no int8 sibling
    reports = score_variants(
        model, {"test": _scored(TILES)}, {"test": TILES}, RULE, 0.005, (Variant.INT8,), log=lambda _: None
    )
    assert reports["int8"] == {"passed": False, "why": "not scored here: m.int8.onnx is not beside the model"}
