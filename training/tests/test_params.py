import pytest

from tilescan_training.params import UPSTREAM_ARCHIVE, load_params


def test_repository_params_load():
    params = load_params("params.yaml")
    assert params.train.crop_size[0] % 2**params.train.net.depth == 0
    assert params.evaluate.max_false_alarm_rate <= 1


def test_defaults_and_nested_values(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  epochs: 3\n  net:\n    depth: 2\n  crop_size: [64, 96]\n")
    params = load_params(path)
    assert params.ingest.source == UPSTREAM_ARCHIVE
    assert (params.train.epochs, params.train.net.depth, params.train.net.base_channels) == (3, 2, 16)
    assert params.train.crop_size == (64, 96)


def test_unknown_keys_are_errors(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  net:\n    dpeth: 2\n")
    with pytest.raises(ValueError, match=r"unknown params in params.train.net: \['dpeth'\]"):
        load_params(path)
