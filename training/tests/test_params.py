"""params.yaml's sections read into their dataclasses (tilescan_training.params)."""

from pathlib import Path

import pytest
import yaml

from tilescan_training.params.evaluate import EvaluateParams
from tilescan_training.params.export import ExportParams
from tilescan_training.params.ingest import IngestParams
from tilescan_training.params.loading import ParamsError, load_section
from tilescan_training.params.promote import PromoteParams
from tilescan_training.params.split import SplitParams
from tilescan_training.params.train import TrainParams

REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"
SECTIONS = {
    "ingest": IngestParams,
    "split": SplitParams,
    "train": TrainParams,
    "export": ExportParams,
    "evaluate": EvaluateParams,
    "promote": PromoteParams,
}


def _write(tmp_path: Path, edit) -> Path:
    """The repository's params.yaml with ``edit(raw)`` applied, written to ``tmp_path``."""
    raw = yaml.safe_load(REPO_PARAMS.read_text())
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_repository_params_load_and_every_top_level_key_has_a_module():
    assert set(yaml.safe_load(REPO_PARAMS.read_text())) == set(SECTIONS)
    sections = {key: load_section(REPO_PARAMS, key, cls) for key, cls in SECTIONS.items()}
    assert sections["train"].crop_size[0] % 2 ** sections["train"].net.depth == 0
    assert sections["evaluate"].max_false_alarm_rate <= 1


def test_values_come_from_the_file(tmp_path):
    def edit(raw):
        raw["train"].update(epochs=3, crop_size=[64, 96])
        raw["train"]["net"]["depth"] = 2
        raw["promote"]["floor"] = 0.8

    path = _write(tmp_path, edit)
    train = load_section(path, "train", TrainParams)
    assert (train.epochs, train.net.depth, train.crop_size) == (3, 2, (64, 96))
    assert train.net.base_channels == yaml.safe_load(REPO_PARAMS.read_text())["train"]["net"]["base_channels"]
    assert load_section(path, "promote", PromoteParams).floor == 0.8


@pytest.mark.parametrize(
    ("section", "key"),
    [("promote", "floor"), ("promote", "guards"), ("train", "epochs"), ("ingest", "source")],
)
def test_a_missing_key_is_an_error_naming_it(tmp_path, section, key):
    path = _write(tmp_path, lambda raw: raw[section].pop(key))
    with pytest.raises(ParamsError, match=rf"^params\.yaml: missing key {section}\.{key}$"):
        load_section(path, section, SECTIONS[section])


def test_every_missing_key_of_a_section_is_named_and_a_missing_section_too(tmp_path):
    def edit(raw):
        del raw["train"]["net"]["depth"], raw["train"]["epochs"], raw["split"]

    path = _write(tmp_path, edit)
    with pytest.raises(ParamsError) as err:
        load_section(path, "train", TrainParams)
    assert str(err.value) == "params.yaml: missing key train.epochs; missing key train.net.depth"
    with pytest.raises(ParamsError, match=r"^params\.yaml: missing key split$"):
        load_section(path, "split", SplitParams)


def test_a_key_without_value_is_an_error(tmp_path):
    path = _write(tmp_path, lambda raw: raw["promote"].update(floor=None))
    with pytest.raises(ParamsError, match=r"key promote\.floor has no value"):
        load_section(path, "promote", PromoteParams)


def test_unknown_keys_are_errors(tmp_path):
    path = _write(tmp_path, lambda raw: raw["train"]["net"].update(dpeth=2))
    with pytest.raises(ParamsError, match=r"unknown key train\.net\.dpeth"):
        load_section(path, "train", TrainParams)


def test_a_section_that_is_not_a_mapping_is_an_error(tmp_path):
    path = _write(tmp_path, lambda raw: raw.update(promote=[1, 2]))
    with pytest.raises(ParamsError, match=r"promote must be a mapping"):
        load_section(path, "promote", PromoteParams)


@pytest.mark.parametrize(
    ("section", "path", "value", "options"),
    [
        ("train", ("loss", "dice_over"), "tiles", "'batch', 'tile'"),
        ("train", ("optimizer", "schedule"), "linear", "'onecycle', 'cosine', 'constant'"),
        ("export", ("int8", "calibration"), "magic", "'minmax', 'entropy', 'percentile'"),
    ],
)
def test_a_choice_outside_its_options_is_an_error_naming_them(tmp_path, section, path, value, options):
    path_to = _write(tmp_path, lambda raw: raw[section][path[0]].update({path[1]: value}))
    with pytest.raises(ParamsError) as err:
        load_section(path_to, section, SECTIONS[section])
    key = ".".join((section, *path))
    assert str(err.value) == f"params.yaml: key {key} must be one of {options}, not {value!r}"
