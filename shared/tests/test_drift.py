import numpy as np
import pytest

from tilescan_shared import drift


def test_tile_stats_are_mean_spread_and_size():
    tile = np.array([[0, 100], [100, 200]], dtype=np.uint8)
    assert drift.tile_stats(tile) == pytest.approx(
        {"mean_intensity": 100.0, "contrast": 70.7107, "pixels": 4.0}
    )


def test_values_land_in_the_bin_below_their_upper_edge_and_the_last_bin_is_open():
    assert drift.bin_of("tile_score", 0.0) == 0 and drift.bin_of("tile_score", 0.05) == 0
    assert drift.bin_of("tile_score", 0.06) == 1 and drift.bin_of("tile_score", 1.0) == 10
    assert drift.histogram("mean_intensity", [10, 50, 50, 250]) == [1, 2, 0, 0, 0, 0, 0, 0, 0, 1]
    assert set(drift.reference({"pixels": [1e5]})) == {"pixels"}


def test_the_index_is_zero_for_the_same_shares_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    before = drift.histogram("mean_intensity", rng.normal(110, 15, 2000))
    same = drift.histogram("mean_intensity", rng.normal(110, 15, 500))
    brighter = drift.histogram("mean_intensity", rng.normal(150, 15, 500))
    assert drift.psi(before, before) == 0.0
    assert drift.psi(before, same) < 0.1
    assert drift.psi(before, brighter) > drift.DRIFTED
    assert drift.psi(before, [0] * len(before)) == 0.0  # an empty window says nothing
    with pytest.raises(ValueError, match="bins"):
        drift.psi(before, before[:-1])
