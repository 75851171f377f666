"""``params.yaml``'s ``train:``: the network, its loss, augmentation and optimizer (the train stage;
export builds the same network)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class NetParams:
    base_channels: int
    depth: int


@dataclass(frozen=True)
class LossParams:
    bce_weight: float
    dice_weight: float
    # "batch": one soft Dice over the batch's pixels (big defects weigh most); "tile": the mean of each
    # defect crop's own soft Dice, so a blowhole's few pixels weigh as much as an Uneven patch.
    dice_over: Literal["batch", "tile"]
    # Focal modulation of the BCE term (0 = plain BCE) and positive-class weight for it.
    focal_gamma: float
    pos_weight: float
    # Weight of the tile decision's BCE beside the mask loss (the segmentation-decision network's head).
    decision_weight: float


@dataclass(frozen=True)
class AugmentParams:
    hflip: bool
    vflip: bool
    # Share of training crops placed over a defect pixel (tiles with defects only; 0 = uniform crops).
    defect_focus: float
    # Share of the other crops placed in a random corner of the tile (0 = uniform crops).
    edge_focus: float
    brightness: float
    contrast: float


@dataclass(frozen=True)
class OptimizerParams:
    lr: float
    weight_decay: float
    schedule: Literal["onecycle", "cosine", "constant"]


@dataclass(frozen=True)
class TrainParams:
    seed: int
    # Training window [height, width] (multiples of 2**net.depth), cut after scaling; inference runs
    # on whole tiles.
    crop_size: tuple[int, int]
    # One fixed resize factor for every tile, in training and in the exported graph (1 = native pixels).
    scale: float
    epochs: int
    batch_size: int
    num_workers: int
    # Draw training tiles with weight count(class)**-class_balance: 0 = as they come, 1 = classes equally.
    class_balance: float
    val_every: int
    # A state_dict path or URL to start from instead of random weights ("" = from scratch).
    init_weights: str
    # sha256 of the init_weights file: required for http(s) URLs, checked for local files when given.
    init_weights_sha256: str
    accelerator: str
    devices: Any
    # Machines for multi-node DDP (torchrun or SLURM sets the ranks; see README, Scaling out).
    num_nodes: int
    strategy: str
    precision: str
    # NHWC tensors (oneDNN's preferred layout for some nets; measured slower for this one: params.yaml).
    channels_last: bool
    # torch.compile the training forward pass (inductor: about a minute to build on the CPU).
    compile: bool
    net: NetParams
    loss: LossParams
    augment: AugmentParams
    optimizer: OptimizerParams
