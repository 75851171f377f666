"""The deploy smoke test against the real service, started on a free port with a tiny model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tilescan_service import smoke
from tilescan_shared.testing import write_tiny_model
from tilescan_training.plots import example_panel


@pytest.fixture
def examples(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A panel drawn by the evaluate stage's own function, and the tile it shows."""
    rng = np.random.default_rng(0)
    tile = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    truth = np.zeros_like(tile)
    truth[5:9, 7:12] = 1
    folder = tmp_path / "examples"
    example_panel(tile, truth, truth, "MT_Crack/exp1_num_1", folder / "MT_Crack_exp1_num_1.png")
    return folder, tile


def test_tile_is_cut_out_of_an_example_panel_pixel_for_pixel(examples):
    folder, tile = examples
    cut = smoke.tile_from_panel(folder / "MT_Crack_exp1_num_1.png")
    assert np.array_equal(np.asarray(cut), tile)


def test_a_picture_that_is_not_a_panel_is_refused(tmp_path):
    path = tmp_path / "photo.png"
    Image.new("RGB", (100, 40), (200, 10, 10)).save(path)
    with pytest.raises(smoke.SmokeError, match="layout"):
        smoke.tile_from_panel(path)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``tilescan-serve`` on a free port with a tiny model; yields its URL and the model file."""
    pytest.importorskip("tilescan_service")
    from tilescan_service.testing import serve_process

    model = write_tiny_model(tmp_path / "tiny.onnx", version="smoke001")
    with serve_process(model) as served:
        yield served.url, model


def test_smoke_passes_against_the_real_service(service, examples, capsys):
    url, model = service
    folder, tile = examples
    assert smoke.main([url, "--model", str(model), "--examples", str(folder), "--wait", "30"]) == 0
    out = capsys.readouterr().out
    assert "ok: /model version smoke001" in out
    assert f"ok: /predict {tile.shape[1]}x{tile.shape[0]} mask" in out


def test_smoke_fails_when_the_service_runs_another_model(service, examples, tmp_path, capsys):
    url, _ = service
    folder, _ = examples
    other = write_tiny_model(tmp_path / "other.onnx", version="other002")
    assert smoke.main([url, "--model", str(other), "--examples", str(folder), "--wait", "30"]) == 1
    assert "/model reports version 'smoke001'" in capsys.readouterr().err


def test_smoke_fails_when_nothing_answers(examples, tmp_path, capsys):
    folder, _ = examples
    model = write_tiny_model(tmp_path / "tiny.onnx")
    args = ["http://127.0.0.1:9", "--model", str(model), "--examples", str(folder), "--wait", "0"]
    assert smoke.main(args) == 1
    assert "/readyz not 200" in capsys.readouterr().err
