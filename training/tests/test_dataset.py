"""Training crops and validation tiles, on the ingested synthetic dataset."""

from dataclasses import replace

import pytest
import torch

from tilescan_training.dataset import TileDataset, _crop
from tilescan_training.manifest import read_records, read_split, records_in


@pytest.fixture(scope="module")
def records(ingested):
    return read_records(ingested / "ingested" / "manifest.csv")


def test_validation_tiles_are_whole_and_native(ingested, records):
    dataset = TileDataset(records, ingested / "ingested")
    for index, record in enumerate(records[:5]):
        image, mask = dataset[index]
        assert image.shape == mask.shape == (1, record.height, record.width)
        assert image.min() >= 0 and image.max() <= 1
        assert int((mask >= 0.5).sum()) == record.defect_pixels


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_training_crops_have_the_crop_size(ingested, records, repo_params, scale):
    augment = repo_params.train.augment
    dataset = TileDataset(records, ingested / "ingested", (32, 48), scale, augment)
    for index in range(len(records)):
        image, mask = dataset[index]
        assert image.shape == mask.shape == (1, 32, 48)
        assert mask.min() >= 0 and mask.max() <= 1


def test_defect_focus_puts_a_defect_in_every_crop(ingested, records, repo_params):
    augment = replace(repo_params.train.augment, defect_focus=1.0, hflip=False, vflip=False)
    defects = [r for r in records if r.defect_pixels > 0]
    dataset = TileDataset(defects, ingested / "ingested", (32, 32), 1.0, augment)
    torch.manual_seed(0)
    assert all(dataset[i][1].max() >= 0.5 for i in range(len(defects)) for _ in range(3))


def test_uniform_crops_often_miss_small_defects(ingested, records, repo_params):
    """The counterpart of the test above: without the focus, small defects leave most crops empty."""
    augment = replace(repo_params.train.augment, defect_focus=0.0, edge_focus=0.0)
    defects = [r for r in records if r.defect_pixels > 0]
    dataset = TileDataset(defects, ingested / "ingested", (16, 16), 1.0, augment)
    torch.manual_seed(0)
    hits = [bool(dataset[i][1].max() >= 0.5) for i in range(len(defects)) for _ in range(3)]
    assert sum(hits) < len(hits) / 2


def test_tiles_are_decoded_once_and_held_in_memory(ingested, records, repo_params, tmp_path):
    """Built from a copy of the data that is then deleted: every sample still comes from memory."""
    import shutil

    copy = tmp_path / "ingested"
    shutil.copytree(ingested / "ingested", copy)
    dataset = TileDataset(records, copy, (32, 32), 1.0, repo_params.train.augment)
    shutil.rmtree(copy)
    assert all(image.dtype == torch.uint8 for image in dataset.images)
    assert [dataset[i][0].shape for i in range(len(records))] == [(1, 32, 32)] * len(records)


def test_edge_focus_crops_a_corner():
    image = (torch.arange(100 * 80) % 251).to(torch.uint8).reshape(1, 100, 80)
    corners = {image[0, 0, 0], image[0, 0, 48], image[0, 68, 0], image[0, 68, 48]}
    torch.manual_seed(0)
    no_defects = torch.zeros((0, 2), dtype=torch.long)
    seen = {
        _crop(image, torch.zeros_like(image), no_defects, (32, 32), 0.0, 1.0)[0][0, 0, 0] for _ in range(40)
    }
    assert {int(v) for v in seen} == {int(v) for v in corners}


def test_a_tile_smaller_than_the_crop_is_padded_with_an_empty_mask():
    image = torch.randint(0, 256, (1, 20, 10), dtype=torch.uint8)
    mask = torch.ones(1, 20, 10, dtype=torch.uint8)
    crop, crop_mask = _crop(image, mask, torch.nonzero(mask[0]), (32, 16), 0.0, 0.0)
    assert crop.shape == crop_mask.shape == (1, 32, 16)
    assert (
        crop_mask[:, :20, :10].min() == 1 and crop_mask[:, 20:].max() == 0 and crop_mask[:, :, 10:].max() == 0
    )
    # replicate padding: the padded rows repeat the tile's last row
    torch.testing.assert_close(crop[:, 25, :10], image[:, 19, :10])


def test_splits_feed_disjoint_datasets(ingested, records):
    entries = read_split(ingested / "split.csv")
    train, val = records_in("train", records, entries), records_in("val", records, entries)
    assert train and val and not {r.id for r in train} & {r.id for r in val}
