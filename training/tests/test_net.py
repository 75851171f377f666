import pytest
import torch

from tilescan_training.losses import SegmentationLoss
from tilescan_training.net import UNet
from tilescan_training.params import LossParams


@pytest.mark.parametrize("depth", [2, 3])
def test_unet_keeps_size(depth):
    net = UNet(base_channels=4, depth=depth).eval()
    out = net(torch.rand(2, 1, 32, 64))
    assert out.shape == (2, 1, 32, 64)


def test_loss_prefers_the_right_answer_and_handles_empty_masks():
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:5, 2:5] = 1
    loss = SegmentationLoss(LossParams(bce_weight=1.0, dice_weight=1.0, focal_gamma=2.0, pos_weight=2.0))
    good = loss((target * 2 - 1) * 6, target)
    bad = loss(-(target * 2 - 1) * 6, target)
    assert good < bad
    assert torch.isfinite(loss(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)))


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    images = torch.rand(4, 1, 16, 16)
    masks = (images > 0.7).float()
    net = UNet(base_channels=4, depth=2)
    loss = SegmentationLoss(LossParams(bce_weight=1.0, dice_weight=1.0, focal_gamma=0.0, pos_weight=1.0))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        optimizer.zero_grad()
        value = loss(net(images), masks)
        first = first if first is not None else value.item()
        value.backward()
        optimizer.step()
    assert value.item() < 0.7 * first
