import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from tilescan_shared.masks import DecisionRule, Region, decode_rle, encode_png, encode_rle, segment
from tilescan_shared.testing import mask_rows


def test_segment_thresholds_and_drops_small_regions():
    prob = np.zeros((10, 12), dtype=np.float32)
    prob[1:4, 1:5] = 0.9  # 12 px region
    prob[7, 9] = 0.8  # 1 px speck
    prob[8, 8] = 0.4  # below threshold
    seg = segment(prob, DecisionRule(threshold=0.5, min_region_area=2))
    assert seg.has_defect
    assert seg.defect_pixels == 12 == int(seg.mask.sum())
    assert [(r.bbox, r.area) for r in seg.regions] == [((1, 1, 5, 4), 12)]


def test_regions_need_a_confident_peak():
    prob = np.zeros((10, 12), dtype=np.float32)
    prob[1:4, 1:5] = 0.4
    prob[2, 2] = 0.95  # one confident pixel carries the whole low-threshold region
    prob[7:9, 7:11] = 0.6  # large enough, but never confident
    seg = segment(prob, DecisionRule(threshold=0.3, min_region_peak=0.9))
    assert [(r.bbox, r.area) for r in seg.regions] == [((1, 1, 5, 4), 12)]
    assert seg.mask[7:9, 7:11].sum() == 0


def test_diagonal_pixels_form_one_region():
    prob = np.eye(5, dtype=np.float32)
    seg = segment(prob, DecisionRule(threshold=0.5))
    assert len(seg.regions) == 1 and seg.regions[0].area == 5


def test_empty_map_has_no_defect():
    seg = segment(np.zeros((3, 3), np.float32), DecisionRule(0.5, 0))
    assert not seg.has_defect and seg.mask.sum() == 0


def test_the_tile_decision_overrides_the_pixel_rule_either_way():
    prob = np.zeros((6, 6), np.float32)
    prob[1:3, 1:3] = 0.9
    rule = DecisionRule(threshold=0.5, tile_threshold=0.7)
    below = segment(prob, rule, tile_score=0.6)
    assert not below.has_defect and below.mask.sum() == 0 and below.regions == []
    above = segment(prob, rule, tile_score=0.7)
    assert above.has_defect and above.mask.sum() == 4 and above.tile_score == 0.7
    # A tile judged defective keeps has_defect even when no region survives the pixel rule.
    assert segment(np.zeros((6, 6), np.float32), rule, tile_score=0.95).has_defect


def test_without_a_score_or_a_tile_threshold_the_pixel_rule_decides():
    prob = np.zeros((6, 6), np.float32)
    prob[1:3, 1:3] = 0.9
    assert segment(prob, DecisionRule(threshold=0.5, tile_threshold=0.7)).has_defect
    assert segment(prob, DecisionRule(threshold=0.5), tile_score=0.1).has_defect
    assert segment(prob, DecisionRule(threshold=0.5), tile_score=0.1).tile_decision is None


def test_rle_is_column_major_and_round_trips():
    mask = np.array([[0, 1, 1], [0, 0, 1]], dtype=np.uint8)
    rle = encode_rle(mask)
    # column-major: 0,0 | 1,0 | 1,1  -> runs: 2 zeros, 1 one, 1 zero, 2 ones
    assert rle == {"size": [2, 3], "counts": [2, 1, 1, 2]}
    np.testing.assert_array_equal(decode_rle(rle), mask)


def test_rle_starting_with_defect_begins_with_zero_run():
    mask = np.ones((2, 2), dtype=np.uint8)
    assert encode_rle(mask)["counts"] == [0, 4]
    np.testing.assert_array_equal(decode_rle(encode_rle(mask)), mask)


def test_png_and_rows_match_mask():
    rng = np.random.default_rng(1)
    mask = (rng.random((17, 23)) > 0.7).astype(np.uint8)
    png = np.asarray(Image.open(io.BytesIO(encode_png(mask))))
    assert png.dtype == np.uint8 and set(np.unique(png)) <= {0, 255}
    np.testing.assert_array_equal(png // 255, mask)
    assert np.array_equal(np.array(mask_rows(mask)), mask)


def _reference_segment(probability: np.ndarray, rule: DecisionRule) -> tuple[np.ndarray, list[Region]]:
    """The decision rule written the obvious way, with scipy's per-label functions."""
    labels, _ = ndimage.label(probability >= rule.threshold, structure=np.ones((3, 3), bool))
    mask = np.zeros(probability.shape, dtype=np.uint8)
    regions = []
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        inside = labels == label
        area = int(inside.sum())
        if area >= max(rule.min_region_area, 1) and probability[inside].max() >= rule.min_region_peak:
            mask[inside] = 1
            regions.append(Region(bbox=(box[1].start, box[0].start, box[1].stop, box[0].stop), area=area))
    return mask, regions


@pytest.mark.parametrize("smoothing", [0, 1, 3])
@pytest.mark.parametrize(
    "rule",
    [
        DecisionRule(0.5),
        DecisionRule(0.3, 5, 0.9),
        DecisionRule(0.05, 96, 0.98),
        DecisionRule(0.999),
        DecisionRule(0.2, 0, 1.5),  # candidates, but no peak high enough: nothing to label
    ],
)
def test_segment_matches_the_per_label_reference(smoothing: int, rule: DecisionRule) -> None:
    raw = ndimage.gaussian_filter(np.random.default_rng(smoothing).random((61, 83)), smoothing)
    probability = ((raw - raw.min()) / (raw.max() - raw.min())).astype(np.float32)

    seg = segment(probability, rule)

    mask, regions = _reference_segment(probability, rule)
    assert seg.mask.dtype == np.uint8
    assert np.array_equal(seg.mask, mask)
    assert seg.regions == regions
