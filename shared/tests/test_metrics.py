import numpy as np
import pytest

from tilescan_shared.metrics import PixelCounts, detection_scores, pixel_counts


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
