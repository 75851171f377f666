"""The network ``train:`` params describe, with its weights: random or ``init_weights`` (train stage),
or a Lightning checkpoint (export stage)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from tilescan_training.fetch import fetch
from tilescan_training.net import UNet
from tilescan_training.params.train import TrainParams


def build_net(params: TrainParams) -> UNet:
    """The network the params describe, with ``init_weights`` loaded when given.

    ``init_weights`` is a state_dict file: a path, a ``file://`` URL, or an http(s) URL whose sha256 must be
    ``init_weights_sha256`` (checked for the others when given; see :mod:`tilescan_training.fetch`).
    """
    net = UNet(base_channels=params.net.base_channels, depth=params.net.depth)
    for side in params.crop_size:
        if side % net.multiple:
            raise ValueError(f"crop_size {params.crop_size} must be multiples of {net.multiple}")
    if params.init_weights:
        with tempfile.TemporaryDirectory() as tmp:
            path = fetch(params.init_weights, params.init_weights_sha256, Path(tmp))
            # weights_only: tensors and plain containers, never arbitrary pickled objects
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net


def load_net(checkpoint: Path, params: TrainParams) -> UNet:
    """The trained network from a Lightning checkpoint written by the train stage."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    net = UNet(base_channels=params.net.base_channels, depth=params.net.depth)
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")})
    return net.eval()
