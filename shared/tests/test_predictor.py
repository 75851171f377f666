import numpy as np
import pytest

from tilescan_shared.masks import DecisionRule
from tilescan_shared.predictor import Predictor, most_views, resolve_providers
from tilescan_shared.testing import bright_square, write_tiny_model


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    path = write_tiny_model(
        tmp_path_factory.mktemp("model") / "tiny.onnx", threshold=0.4, min_region_area=3, min_region_peak=0.8
    )
    return Predictor(path, providers="auto")


def test_metadata_is_read(predictor):
    info = predictor.info
    assert (info.name, info.version) == ("tilescan-tiny", "tiny0001")
    assert info.rule == DecisionRule(threshold=0.4, min_region_area=3, min_region_peak=0.8)
    assert info.working_size == [8, 8] and info.metrics["dice"] == 0.5


def test_predict_keeps_full_size(predictor):
    img = bright_square(37, 91)
    inference = predictor.predict(img)
    prob = inference.probability
    assert prob.shape == (37, 91) and prob.dtype == np.float32
    np.testing.assert_allclose(prob, img / 255.0, atol=1e-6)
    assert inference.tile_score is None and predictor.outputs == ["probability"]


def test_a_model_with_a_tile_head_gives_one_score_per_image(tmp_path):
    predictor = Predictor(write_tiny_model(tmp_path / "tile.onnx", tile_threshold=0.9))
    batch = np.stack([bright_square(), np.full((40, 60), 51, np.uint8)])[:, None]
    probability, scores = predictor.predict_batch(batch)
    assert probability.shape == batch.shape and predictor.outputs == ["probability", "tile_score"]
    np.testing.assert_allclose(scores, [1.0, 0.2], atol=1e-6)
    assert predictor.predict(bright_square()).tile_score == pytest.approx(1.0)
    assert predictor.info.rule.tile_threshold == 0.9


def test_predict_rejects_wrong_dtype(predictor):
    with pytest.raises(ValueError, match="uint8"):
        predictor.predict(np.zeros((4, 4), dtype=np.float32))


def test_cpu_is_always_resolved():
    assert resolve_providers("auto")[-1] == "CPUExecutionProvider"
    assert resolve_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="not available"):
        resolve_providers(["NoSuchExecutionProvider"])


def test_a_tile_in_the_review_band_is_answered_by_the_mean_of_its_four_views(tmp_path):
    """The corner model scores a tile by its top-left pixel: each mirrored view scores another corner."""
    path = write_tiny_model(
        tmp_path / "corner.onnx", tile_threshold=0.5, review=(0.1, 0.9), corner_score=True
    )
    predictor = Predictor(path)
    image = bright_square(30, 40)
    image[0, 0], image[0, -1], image[-1, 0], image[-1, -1] = 51, 102, 153, 204
    rule = predictor.info.rule
    assert rule.review == (0.1, 0.9)
    alone = predictor.predict(image)
    assert alone.views == 1 and alone.tile_score == pytest.approx(0.2)
    looked = predictor.predict(image, rule)
    assert looked.views == most_views(rule) == 4
    assert looked.tile_score == pytest.approx((51 + 102 + 153 + 204) / 4 / 255)
    # Every view is mapped back before the mean: this model's map is the image, whatever the mirror.
    np.testing.assert_allclose(looked.probability, image / 255.0, atol=1e-6)
    image[0, 0] = 20  # 0.078: outside the band, one run
    assert predictor.predict(image, rule).views == 1
    assert most_views(DecisionRule(threshold=0.5)) == most_views(None) == 1  # no band: never more
