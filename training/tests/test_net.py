from dataclasses import replace

import pytest
import torch

from tilescan_training.losses import SegDecLoss, SegmentationLoss, tile_labels
from tilescan_training.net import UNet
from tilescan_training.params.train import LossParams


@pytest.mark.parametrize("depth", [2, 3])
def test_unet_keeps_size_and_scores_each_tile(depth):
    net = UNet(base_channels=4, depth=depth).eval()
    logits, tile = net(torch.rand(2, 1, 32, 64))
    assert logits.shape == (2, 1, 32, 64)
    assert tile.shape == (2,)


def test_tile_labels_mark_crops_that_hold_a_defect_pixel():
    masks = torch.zeros(3, 1, 8, 8)
    masks[1, 0, 7, 7] = 1
    masks[2, 0, 0, 0] = 0.4  # a soft edge below one half is no defect
    assert tile_labels(masks).tolist() == [0.0, 1.0, 0.0]


def test_the_tile_decision_does_not_train_the_mask_through_its_input():
    """The mask logits enter the head detached: the decision loss alone leaves the mask's head untouched."""
    net = UNet(base_channels=4, depth=2)
    _, tile = net(torch.rand(2, 1, 16, 16))
    tile.sum().backward()
    assert net.head.weight.grad is None or not net.head.weight.grad.any()
    assert net.decision.classify.weight.grad.abs().sum() > 0


def _loss_params(**changes: float | str) -> LossParams:
    """Plain BCE plus Dice over the batch, weights 1, with ``changes``."""
    base = LossParams(
        bce_weight=1.0,
        dice_weight=1.0,
        dice_over="batch",
        focal_gamma=0.0,
        pos_weight=1.0,
        decision_weight=1.0,
    )
    return replace(base, **changes)


def test_loss_prefers_the_right_answer_and_handles_empty_masks():
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:5, 2:5] = 1
    loss = SegmentationLoss(_loss_params(focal_gamma=2.0, pos_weight=2.0))
    good = loss((target * 2 - 1) * 6, target)
    bad = loss(-(target * 2 - 1) * 6, target)
    assert good < bad
    assert torch.isfinite(loss(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)))


def test_dice_per_tile_weighs_a_small_defect_as_much_as_a_big_one():
    """A big defect found and a 4x4 one missed: over the batch's pixels the miss hardly counts."""
    target = torch.zeros(3, 1, 16, 16)
    target[0, :, :12, :12] = 1
    target[1, :, 4:8, 4:8] = 1  # the third crop is defect-free: no Dice of its own
    logits = torch.full_like(target, -20.0)
    logits[0][target[0].bool()] = 20.0

    def dice_term(over: str) -> float:
        return SegmentationLoss(_loss_params(bce_weight=0.0, dice_over=over))(logits, target).item()

    # Per crop (soft Dice with +1 smoothing): 0 for the big one, 1 - 1/17 for the missed one.
    assert dice_term("tile") == pytest.approx((1 - 1 / 17) / 2, abs=1e-4)
    assert dice_term("batch") == pytest.approx(1 - 289 / 305, abs=1e-4)


def test_a_few_steps_reduce_the_joint_loss():
    torch.manual_seed(0)
    images = torch.rand(4, 1, 16, 16)
    masks = (images > 0.7).float()
    masks[:2] = 0  # two defect-free tiles for the decision head
    net = UNet(base_channels=4, depth=2)
    loss = SegDecLoss(_loss_params())
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        optimizer.zero_grad()
        value, _, _ = loss(*net(images), masks)
        first = first if first is not None else value.item()
        value.backward()
        optimizer.step()
    assert value.item() < 0.7 * first
