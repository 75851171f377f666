from dataclasses import replace

import numpy as np
import pytest

from tilescan_shared.masks import DecisionRule
from tilescan_shared.predictor import Inference
from tilescan_training.calibration import choose_rule, choose_tile_threshold, describe
from tilescan_training.manifest import Record
from tilescan_training.params.evaluate import EvaluateParams
from tilescan_training.scoring import Looked, Scored, Tile, reference_protocol, score, tile_ranking


def _tile(cls: str, defect: bool, speck: float = 0.0, tile_score: float | None = None) -> Scored:
    truth = np.zeros((20, 20), np.uint8)
    prob = np.zeros((20, 20), np.float32)
    if defect:
        truth[5:10, 5:10] = 1
        prob[5:10, 5:10] = 0.7
    if speck:
        prob[15:17, 15:20] = speck  # a 10-pixel blob of low confidence
    record = Record(f"{cls}/x", cls, "", "", 20, 20, int(truth.sum()), "", "")
    return Scored(record, np.zeros((20, 20), np.uint8), truth, prob, tile_score)


def _looked(tiles: list[Scored], mirrored_scores: list[float] | None = None) -> list[Looked]:
    """``tiles`` as their looks: each mirrored view answers the same map, scored ``mirrored_scores[i]``
    (default: the tile's own score, i.e. a second look that changes nothing)."""
    looked = []
    for i, t in enumerate(tiles):
        views = [] if t.tile_score is None else [mirrored_scores[i] if mirrored_scores else t.tile_score] * 3
        first = Inference(t.probability, t.tile_score)
        mirrored = [Inference(t.probability, s) for s in views]
        looked.append(Looked(Tile(t.record, t.image, t.truth), first, mirrored))
    return looked


def _choose(val: list[Looked], params: EvaluateParams) -> tuple[DecisionRule, dict, list[Scored]]:
    best, _ = choose_rule(val, params)
    return best.rule, best.scores, best.answers


def _params(
    thresholds: tuple[float, ...],
    min_region_peaks: tuple[float, ...] = (0.0,),
    max_false_alarm_rate: float = 0.1,
    review_bands: tuple[tuple[float, float], ...] = (),
    min_region_areas: tuple[int, ...] = (0,),
    min_class_dice: float = 0.0,
) -> EvaluateParams:
    return EvaluateParams(
        thresholds=thresholds,
        min_region_areas=min_region_areas,
        min_region_peaks=min_region_peaks,
        max_false_alarm_rate=max_false_alarm_rate,
        min_class_dice=min_class_dice,
        review_bands=review_bands,
        examples=0,
    )


def test_score_hand_computed():
    tiles = [_tile("crack", True, speck=0.9), _tile("free", False), _tile("free", False, speck=0.9)]
    metrics = score(tiles, DecisionRule(threshold=0.5))
    # crack: tp 25, fp 10 -> dice 50/60
    assert metrics["dice"] == pytest.approx(50 / 60)
    assert metrics["iou"] == pytest.approx(25 / 35)
    assert metrics["false_alarm_rate"] == 0.5
    assert metrics["precision"] == 0.5 and metrics["recall"] == 1.0
    assert metrics["per_class"] == {
        "crack": {
            "dice": pytest.approx(50 / 60),
            "iou": pytest.approx(25 / 35),
            "images": 1,
            "found": 1,
            "recall": 1.0,
        }
    }
    assert metrics["looked_again"] == 0.0


def test_macro_dice_weighs_each_class_the_same():
    # crack: 25 true pixels, 10 false (Dice 50/60); blowhole: 25 true pixels missed (Dice 0)
    missed = _tile("blowhole", True)
    missed.probability[:] = 0.0
    tiles = [_tile("crack", True, speck=0.9), missed]
    metrics = score(tiles, DecisionRule(threshold=0.5))
    assert metrics["dice"] == pytest.approx(50 / 85)
    assert metrics["macro_dice"] == pytest.approx((50 / 60 + 0) / 2)
    assert score([_tile("free", False)], DecisionRule())["macro_dice"] == 1.0


def test_min_region_area_removes_small_false_alarms():
    tiles = [_tile("crack", True, speck=0.9), _tile("free", False, speck=0.9)]
    metrics = score(tiles, DecisionRule(threshold=0.5, min_region_area=11))
    assert metrics["dice"] == 1.0 and metrics["false_alarm_rate"] == 0.0


def test_peak_filter_is_part_of_the_rule_search():
    val = [_tile("crack", True), _tile("free", False, speck=0.45)]
    params = _params(thresholds=(0.4,), min_region_peaks=(0.0, 0.3, 0.6), max_false_alarm_rate=0.0)
    rule, scores, _ = _choose(_looked(val), params)
    # the 0.45 speck passes threshold 0.4 but never reaches peak 0.6; peak 0.3 <= threshold is skipped
    assert rule == DecisionRule(0.4, 0, 0.6) and scores["dice"] == 1.0


def test_rule_is_chosen_within_the_false_alarm_budget():
    val = [_tile("crack", True), _tile("free", False, speck=0.45), _tile("free", False)]
    params = _params(thresholds=(0.4, 0.6))
    rule, scores, _ = _choose(_looked(val), params)
    assert rule == DecisionRule(0.6, 0) and scores["false_alarm_rate"] == 0.0
    # With no rule inside the budget, the fewest false alarms wins.
    noisy = [_tile("crack", True), _tile("free", False, speck=0.9)]
    rule, _, _ = _choose(_looked(noisy), _params(thresholds=(0.4, 0.95)))
    assert rule.threshold == 0.95


def test_the_rule_search_keeps_every_class_at_the_dice_floor_where_a_rule_can():
    """A region filter that drops a stray blob on a big defect tile also drops the only defect of a
    blowhole tile: it has the better micro Dice (the big tile's pixels), but with a class floor the
    search keeps the blowhole."""
    big = _tile("break", False)
    big.truth[2:12, 2:12] = 1
    big.probability[2:12, 2:12] = 0.7
    big.probability[15:17, 15:18] = 0.7  # a 6-pixel blob, no defect there
    small = _tile("blowhole", False)
    small.truth[5:7, 5:7] = 1
    small.probability[5:7, 5:7] = 0.7  # the whole defect: 4 pixels
    looked = _looked([big, small, _tile("free", False)])
    params = _params(thresholds=(0.5,), min_region_areas=(0, 8))
    rule, scores, _ = _choose(looked, params)
    assert rule.min_region_area == 8 and scores["per_class"]["blowhole"]["dice"] == 0.0
    assert scores["dice"] == pytest.approx(200 / 204)
    rule, scores, _ = _choose(looked, replace(params, min_class_dice=0.75))
    assert rule.min_region_area == 0 and scores["per_class"]["blowhole"]["dice"] == 1.0
    assert scores["dice"] == pytest.approx(208 / 214)


def test_the_band_whose_rule_keeps_every_class_at_the_floor_wins():
    """A second look finds a blowhole's faint pixels and adds a stray blob on a big defect tile: fewer
    Dice points than no second look, which loses the blowhole; with the floor the band wins."""
    big = _tile("break", False, tile_score=0.9)
    big.truth[2:12, 2:12] = 1
    big.probability[2:12, 2:12] = 0.7
    small = _tile("blowhole", False, tile_score=0.9)
    small.truth[5:7, 5:7] = 1
    small.probability[5:7, 5:7] = 0.4  # below the threshold in one view
    looked = _looked([big, small, _tile("free", False, tile_score=0.01)])
    blob = big.probability.copy()
    blob[15:17, 15:18] = 0.7  # mean of four views 0.525: a 6-pixel false region
    faint = small.probability.copy()
    faint[5:7, 5:7] = 0.7  # mean of four views 0.625: found
    looked[0] = replace(looked[0], mirrored=[Inference(blob, 0.9)] * 3)
    looked[1] = replace(looked[1], mirrored=[Inference(faint, 0.9)] * 3)
    params = _params(thresholds=(0.5,), max_false_alarm_rate=0.0, review_bands=((0.5, 0.95),))
    rule, scores, _ = _choose(looked, params)
    assert rule.review is None and scores["dice"] == pytest.approx(200 / 204)
    rule, scores, _ = _choose(looked, replace(params, min_class_dice=0.75))
    assert rule.review == (0.5, 0.95) and scores["dice"] == pytest.approx(208 / 214)
    assert scores["per_class"]["blowhole"]["dice"] == 1.0


def test_the_class_floor_holds_for_a_val_split_without_defect_tiles():
    rule, _, _ = _choose(_looked([_tile("free", False)]), _params(thresholds=(0.5,), min_class_dice=0.75))
    assert rule.threshold == 0.5


def test_reference_protocol_scores_the_centre_crop_of_defect_tiles_only():
    size = 300  # the 224 centre crop spans rows/cols 38..261
    truth = np.zeros((size, size), np.uint8)
    prob = np.zeros((size, size), np.float32)
    truth[100:110, 100:110] = 1  # inside the crop: found
    prob[100:110, 100:110] = 0.9
    truth[0:10, 0:10] = 1  # outside the crop: missed, but not counted
    prob[150:155, 150:160] = 0.9  # inside the crop: 50 false pixels
    record = Record("crack/x", "crack", "", "", size, size, int(truth.sum()), "", "")
    crack = Scored(record, np.zeros((size, size), np.uint8), truth, prob, None)
    free_record = Record("free/y", "free", "", "", size, size, 0, "", "")
    noisy_free = Scored(free_record, np.zeros((size, size), np.uint8), np.zeros_like(truth), prob, None)
    result = reference_protocol([crack, noisy_free], DecisionRule(threshold=0.5))
    assert result == {"dice": pytest.approx(200 / 250), "crop": 224, "images": 1}


def _scored(defect_scores: list[float], free_scores: list[float]) -> list[Scored]:
    return [_tile("crack", True, tile_score=s) for s in defect_scores] + [
        _tile("free", False, speck=0.9, tile_score=s) for s in free_scores
    ]


def test_tile_threshold_finds_the_most_defects_within_the_false_alarm_budget():
    val = _scored(defect_scores=[0.95, 0.9, 0.6, 0.3], free_scores=[0.8, 0.5, 0.2, 0.1])
    # No false alarm allowed: above the free 0.8, halfway (in logits) to the defect 0.9 above it.
    threshold = choose_tile_threshold(val, 0.0)
    assert 0.8 < threshold < 0.9
    # One of four allowed (25%): the free 0.8 may pass; above the free 0.5, below the defect 0.6.
    assert 0.5 < choose_tile_threshold(val, 0.25) < 0.6


def test_the_tile_decision_comes_first_then_the_pixel_rule():
    """The free tiles' specks would be false alarms for any pixel rule; the tile score rejects them."""
    val = _scored(defect_scores=[0.9, 0.8], free_scores=[0.2, 0.1])
    rule, scores, _ = _choose(_looked(val), _params(thresholds=(0.5,), max_false_alarm_rate=0.0))
    assert 0.2 < rule.tile_threshold < 0.8
    assert scores["false_alarm_rate"] == 0.0 and scores["recall"] == 1.0 and scores["dice"] == 1.0
    assert tile_ranking(val) == {"roc_auc": 1.0, "average_precision": 1.0}


def test_models_without_a_tile_score_keep_the_pixel_rule_alone():
    val = [_tile("crack", True), _tile("free", False)]
    rule, _, _ = _choose(_looked(val), _params(thresholds=(0.5,), review_bands=((0.0, 1.0),)))
    assert rule.tile_threshold is None
    assert tile_ranking(val) is None


def test_a_review_band_is_chosen_when_the_second_look_finds_more_defect_tiles():
    """A defect tile scored below a defect-free one cannot be found within a zero budget; mirrored,
    the defect tile scores high and the free one low, and their means tell them apart."""
    val = _scored(defect_scores=[0.9, 0.3], free_scores=[0.6, 0.1])
    mirrored = [0.9, 0.9, 0.1, 0.1]  # means: defect 0.9 and 0.75, free 0.225 and 0.1
    params = _params(thresholds=(0.5,), max_false_alarm_rate=0.0, review_bands=((0.2, 0.7), (0.05, 0.95)))
    plain_rule, plain, _ = _choose(_looked(val), replace(params, review_bands=()))
    assert plain_rule.review is None and plain["recall"] == 0.5
    rule, scores, answers = _choose(_looked(val, mirrored), params)
    # Both bands find both defect tiles; (0.2, 0.7) looks again at two tiles, (0.05, 0.95) at three.
    assert rule.review == (0.2, 0.7) and 0.225 < rule.tile_threshold < 0.75
    assert scores["recall"] == 1.0 and scores["false_alarm_rate"] == 0.0 and scores["looked_again"] == 0.5
    assert [a.views for a in answers] == [1, 4, 4, 1]


def test_no_review_band_when_the_second_look_changes_nothing():
    val = _scored(defect_scores=[0.9, 0.3], free_scores=[0.6, 0.1])
    rule, scores, _ = _choose(_looked(val), _params(thresholds=(0.5,), review_bands=((0.0, 1.0),)))
    assert rule.review is None and scores["looked_again"] == 0.0


def test_each_review_band_is_judged_with_its_own_pixel_rule():
    """A confident defect tile's first view holds a stray blob its mirrored views do not: only a band
    reaching 1 looks at it again, and only its own pixel rule (the higher threshold) keeps the blob's
    mean out of the mask; under the one-look rule's threshold the band would gain nothing."""
    defect, free = _tile("crack", True, speck=0.6, tile_score=0.99), _tile("free", False, tile_score=0.01)
    clean = defect.probability.copy()
    clean[15:17, 15:20] = 0.0
    looked = _looked([defect, free])
    looked[0] = replace(looked[0], mirrored=[Inference(clean, 0.99)] * 3)
    bands = ((0.05, 0.95), (0.05, 1.0))
    plain_rule, plain, _ = _choose(looked, _params(thresholds=(0.1, 0.5), max_false_alarm_rate=0.0))
    assert plain_rule.threshold == 0.1 and plain["dice"] == pytest.approx(50 / 60)
    params = _params(thresholds=(0.1, 0.5), max_false_alarm_rate=0.0, review_bands=bands)
    rule, scores, answers = _choose(looked, params)
    assert rule.review == (0.05, 1.0) and rule.threshold == 0.5
    assert scores["dice"] == 1.0 and [a.views for a in answers] == [4, 1]


def test_the_rule_comes_with_every_option_it_was_chosen_from():
    val = _scored(defect_scores=[0.9, 0.3], free_scores=[0.6, 0.1])
    mirrored = [0.9, 0.9, 0.1, 0.1]
    params = _params(thresholds=(0.5,), max_false_alarm_rate=0.0, review_bands=((0.2, 0.7),))
    best, options = choose_rule(_looked(val, mirrored), params)
    rows = [describe(o) for o in options]
    assert [r["review_band"] for r in rows] == ["none", "0.2-0.7"] and best is options[1]
    assert [r["recall"] for r in rows] == [0.5, 1.0] and [r["looked_again"] for r in rows] == [0.0, 0.5]
    assert rows[1]["threshold"] == 0.5 and rows[1]["false_alarm_rate"] == 0.0
    assert rows[1]["weakest_class_dice"] == 1.0
    # A model without a tile score has one way to decide: the pixel rule alone.
    best, options = choose_rule(_looked([_tile("crack", True), _tile("free", False)]), params)
    assert options == [best] and describe(best)["tile_threshold"] is None
