"""The DataModule: loaders at the right shapes, and the class-balanced sampler's weights."""

from collections import Counter

import pytest
import torch

from tilescan_training.datamodule import TileDataModule


@pytest.fixture
def data(ingested, repo_params):
    module = TileDataModule(
        ingested / "ingested",
        ingested / "split.csv",
        (32, 48),
        batch_size=4,
        augment=repo_params.train.augment,
        class_balance=1.0,
    )
    module.setup()
    return module


def test_train_batches_are_crops_and_val_batches_whole_tiles(data):
    images, masks = next(iter(data.train_dataloader()))
    assert images.shape == masks.shape == (4, 1, 32, 48)
    sizes = {(r.height, r.width) for r in data.val_set.records}
    for image, _ in data.val_dataloader():
        assert image.shape[0] == 1 and tuple(image.shape[-2:]) in sizes


def test_class_balance_one_draws_every_class_equally_often(data):
    sampler = data.train_dataloader().sampler
    counts = Counter(data.train_set.records[i].cls for i in range(len(data.train_set)))
    weights = sampler.weights
    per_class = Counter()
    for record, weight in zip(data.train_set.records, weights.tolist(), strict=True):
        per_class[record.cls] += weight
    assert len(set(counts.values())) > 1  # the classes really are unbalanced
    assert max(per_class.values()) == pytest.approx(min(per_class.values()))


def test_no_balance_means_plain_shuffling(ingested):
    module = TileDataModule(ingested / "ingested", ingested / "split.csv", (32, 32), batch_size=4)
    module.setup()
    loader = module.train_dataloader()
    assert isinstance(loader.sampler, torch.utils.data.RandomSampler)
