import numpy as np
import pytest

from tilescan_shared.metrics import PixelCounts, detection_scores, dice, pixel_counts, tile_curve


def test_pixel_counts_hand_computed():
    pred = np.array([[1, 1, 0], [0, 1, 0]])
    truth = np.array([[1, 0, 0], [1, 1, 0]])
    counts = pixel_counts(pred, truth)
    assert counts == PixelCounts(tp=2, fp=1, fn=1)
    assert counts.dice == pytest.approx(4 / 6)
    assert counts.iou == pytest.approx(2 / 4)


def test_counts_add_up_for_micro_averaging():
    total = PixelCounts(1, 2, 3) + PixelCounts(4, 0, 1)
    assert total == PixelCounts(5, 2, 4)
    assert total.dice == pytest.approx(10 / 16)


def test_empty_prediction_of_empty_truth_is_perfect():
    z = np.zeros((4, 4))
    assert pixel_counts(z, z).dice == 1.0 and pixel_counts(z, z).iou == 1.0


def test_dice_of_arrays_of_counts_is_each_one_s_dice():
    counts = [PixelCounts(3, 1, 2), PixelCounts(0, 0, 0), PixelCounts(0, 5, 0)]
    tp, fp, fn = (np.array([getattr(c, k) for c in counts]) for k in ("tp", "fp", "fn"))
    np.testing.assert_array_equal(dice(tp, fp, fn), [6 / 9, 1.0, 0.0])
    assert [c.dice for c in counts] == [6 / 9, 1.0, 0.0]


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        pixel_counts(np.zeros((2, 2)), np.zeros((2, 3)))


def test_detection_scores_hand_computed():
    predicted = [True, True, False, True, False]
    actual = [True, False, True, True, False]
    s = detection_scores(predicted, actual)
    assert s.precision == pytest.approx(2 / 3)
    assert s.recall == pytest.approx(2 / 3)
    assert s.false_alarm_rate == pytest.approx(1 / 2)


def test_tile_curve_hand_computed():
    # ranked: 0.9 (defect), 0.8 (free), 0.7 (defect), 0.7 (free), 0.1 (defect)
    scores = np.array([0.7, 0.1, 0.9, 0.8, 0.7])
    actual = np.array([True, True, True, False, False])
    curve = tile_curve(scores, actual)
    assert curve.thresholds.tolist() == [0.9, 0.8, 0.7, 0.1]
    np.testing.assert_allclose(curve.recall, [1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(curve.precision, [1, 1 / 2, 2 / 4, 3 / 5])
    assert curve.average_precision == pytest.approx(1 / 3 * 1 + 1 / 3 * 0.5 + 1 / 3 * 0.6)
    # pairs (defect, free) ranked right: 0.9 beats both, 0.7 beats 0.8? no, ties 0.7 (half); 0.1 none
    assert curve.roc_auc == pytest.approx((2 + 0.5 + 0) / 6)


def test_tile_curve_needs_both_kinds_of_tiles():
    with pytest.raises(ValueError, match="both"):
        tile_curve(np.array([0.2, 0.4]), np.array([True, True]))
