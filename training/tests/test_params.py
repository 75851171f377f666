from pathlib import Path

import pytest
import yaml

from tilescan_training.params import ParamsError, load_params

REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def _write(tmp_path: Path, edit) -> Path:
    """The repository's params.yaml with ``edit(raw)`` applied, written to ``tmp_path``."""
    raw = yaml.safe_load(REPO_PARAMS.read_text())
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_repository_params_load():
    params = load_params(REPO_PARAMS)
    assert params.train.crop_size[0] % 2**params.train.net.depth == 0
    assert params.evaluate.max_false_alarm_rate <= 1


def test_values_come_from_the_file(tmp_path):
    def edit(raw):
        raw["train"].update(epochs=3, crop_size=[64, 96])
        raw["train"]["net"]["depth"] = 2
        raw["promote"]["floor"] = 0.8

    params = load_params(_write(tmp_path, edit))
    assert (params.train.epochs, params.train.net.depth, params.train.crop_size) == (3, 2, (64, 96))
    assert (
        params.train.net.base_channels
        == yaml.safe_load(REPO_PARAMS.read_text())["train"]["net"]["base_channels"]
    )
    assert params.promote.floor == 0.8


@pytest.mark.parametrize(
    ("section", "key"),
    [("promote", "floor"), ("promote", "guards"), ("train", "epochs"), ("ingest", "source")],
)
def test_a_missing_key_is_an_error_naming_it(tmp_path, section, key):
    path = _write(tmp_path, lambda raw: raw[section].pop(key))
    with pytest.raises(ParamsError, match=rf"^params\.yaml: missing key {section}\.{key}$"):
        load_params(path)


def test_missing_nested_keys_and_sections_are_all_named(tmp_path):
    def edit(raw):
        del raw["train"]["net"]["depth"], raw["split"]

    with pytest.raises(ParamsError) as err:
        load_params(_write(tmp_path, edit))
    assert str(err.value) == "params.yaml: missing key split; missing key train.net.depth"


def test_a_key_without_value_is_an_error(tmp_path):
    path = _write(tmp_path, lambda raw: raw["promote"].update(floor=None))
    with pytest.raises(ParamsError, match=r"key promote\.floor has no value"):
        load_params(path)


def test_unknown_keys_are_errors(tmp_path):
    path = _write(tmp_path, lambda raw: raw["train"]["net"].update(dpeth=2))
    with pytest.raises(ParamsError, match=r"unknown key train\.net\.dpeth"):
        load_params(path)


def test_a_section_that_is_not_a_mapping_is_an_error(tmp_path):
    path = _write(tmp_path, lambda raw: raw.update(promote=[1, 2]))
    with pytest.raises(ParamsError, match=r"promote must be a mapping"):
        load_params(path)
