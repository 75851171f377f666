from collections import Counter

import pytest

from tilescan_training.manifest import Record
from tilescan_training.params.split import SplitParams
from tilescan_training.stages.split import split


def _records(counts: dict[str, int]) -> list[Record]:
    return [
        Record(f"{cls}/t{i}", cls, "", "", 1, 1, 0 if cls == "free" else 1, "", "")
        for cls, n in counts.items()
        for i in range(n)
    ]


def _params(seed: int = 42, val: float = 0.15, test: float = 0.15, free_in_train: int = -1) -> SplitParams:
    return SplitParams(seed=seed, val_fraction=val, test_fraction=test, free_in_train=free_in_train)


COUNTS = {"blowhole": 40, "crack": 20, "free": 100}


def test_split_is_deterministic_and_order_independent():
    records = _records(COUNTS)
    params = _params(seed=7)
    assert split(records, params) == split(list(reversed(records)), params)
    assert split(records, params) != split(records, _params(seed=8))


def test_split_is_stratified_by_class():
    entries = split(_records(COUNTS), _params(val=0.2, test=0.1))
    counts = Counter((e.cls, e.split) for e in entries)
    for cls, n in COUNTS.items():
        assert counts[(cls, "test")] == round(0.1 * n)
        assert counts[(cls, "val")] == round(0.2 * n)
        assert counts[(cls, "train")] == n - round(0.1 * n) - round(0.2 * n)
    assert len({e.id for e in entries}) == sum(COUNTS.values())


@pytest.mark.parametrize(("free_in_train", "expected"), [(-1, 70), (0, 0), (25, 25), (1000, 70)])
def test_free_tiles_in_training_are_a_param(free_in_train, expected):
    entries = split(_records(COUNTS), _params(free_in_train=free_in_train))
    counts = Counter((e.cls, e.split) for e in entries)
    assert counts[("free", "train")] == expected
    assert counts[("free", "unused")] == 70 - expected
    assert counts[("free", "test")] == counts[("free", "val")] == 15


def _plant(n: int, cls: str = "crack") -> list[Record]:
    return [
        Record(f"{cls}/plant-{i:016x}", cls, "", "", 1, 1, 1, "", "", origin="plant/b1") for i in range(n)
    ]


def test_plant_tiles_leave_the_public_split_as_it_was():
    public = _records(COUNTS)
    params = _params()
    alone = split(public, params)
    with_plant = split(public + _plant(200), params)
    assert [e for e in with_plant if not e.id.split("/")[1].startswith("plant-")] == alone


def test_plant_tiles_get_a_test_split_of_their_own_and_keep_their_split():
    params = _params(val=0.2, test=0.1)
    first = {e.id: e.split for e in split(_plant(300), params)}
    assert set(first.values()) == {"train", "val", "plant_test"}
    counts = Counter(first.values())
    assert 15 <= counts["plant_test"] <= 45 and 40 <= counts["val"] <= 80  # 30 and 60 expected
    later = {e.id: e.split for e in split(_plant(600), params)}  # a later batch arrives
    assert all(later[id_] == name for id_, name in first.items())
