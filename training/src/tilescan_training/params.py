"""A typed view of ``params.yaml``: one dataclass per stage, named like the stage's top-level key.

``params.yaml`` is the only source of values: the dataclasses have no defaults, and :func:`load_params`
rejects a file that lacks a key or has one too many, naming it (``params.yaml: missing key promote.floor``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import yaml


@dataclass(frozen=True)
class IngestParams:
    # The upstream archive URL (http, https or file), a local .zip, or a folder with the upstream layout.
    source: str
    # sha256 of the archive: required for http(s) URLs, checked for local archives when given ("" = none).
    sha256: str
    # The plant tiles people labelled: one folder per batch (tilescan_shared.labelled), each `dvc add`ed.
    plant: str


@dataclass(frozen=True)
class SplitParams:
    seed: int
    val_fraction: float
    test_fraction: float
    # Defect-free tiles in the training split: -1 = all of the free class's training share, 0 = none.
    free_in_train: int


@dataclass(frozen=True)
class NetParams:
    base_channels: int
    depth: int


@dataclass(frozen=True)
class LossParams:
    bce_weight: float
    dice_weight: float
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
    # "onecycle", "cosine" or "constant"
    schedule: str


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
    # NHWC tensors: with bf16-mixed, ~3x faster convolutions on AVX-512 CPUs (oneDNN).
    channels_last: bool
    # torch.compile the training forward pass (inductor: about a minute to build on the CPU).
    compile: bool
    net: NetParams
    loss: LossParams
    augment: AugmentParams
    optimizer: OptimizerParams


@dataclass(frozen=True)
class Int8Params:
    # How activation ranges are read from the calibration tiles: minmax, entropy or percentile.
    calibration: str
    calibration_tiles: int  # train tiles, spread over the classes
    keep_fp32: tuple[str, ...]  # ONNX node name prefixes left unquantized, e.g. [/net/decision]


@dataclass(frozen=True)
class ExportParams:
    name: str
    opset: int
    # Largest allowed |torch - onnxruntime| probability difference in the parity check.
    tolerance: float
    # Test-time augmentation inside the graph: average with the horizontally flipped prediction.
    flip_tta: bool
    int8: Int8Params  # the statically quantized sibling model (tilescan_training.quantization)


@dataclass(frozen=True)
class EvaluateParams:
    thresholds: tuple[float, ...]
    min_region_areas: tuple[int, ...]
    # Hysteresis: a region is reported only if some pixel reaches this probability (0 = off).
    min_region_peaks: tuple[float, ...]
    # Threshold selection on val: best Dice among rules whose val false-alarm rate stays under this.
    max_false_alarm_rate: float
    # Among those, rules that keep every class's val Dice at or above this come first (0 = off).
    min_class_dice: float
    # Tile-score bands [low, high] tried for the second look (tilescan_shared.predictor), each against none.
    review_bands: tuple[tuple[float, float], ...]
    examples: int


@dataclass(frozen=True)
class PromoteParams:
    """Rules of ``make gate`` (promotion.gate); no pipeline stage reads them."""

    metrics_file: str
    # What `dvc repro` proposes (evaluate's output) and what is served; the second changes only through
    # `make promote`, which gates the first against it.
    candidate_file: str
    model_file: str
    # Higher is better; it must reach `floor` and beat the baseline by `min_improvement`.
    primary: str
    min_improvement: float
    floor: float
    # Metric -> largest allowed regression against the baseline.
    guards: dict[str, float]
    # Guards for which a rise is the regression.
    lower_is_better: tuple[str, ...]


@dataclass(frozen=True)
class Params:
    ingest: IngestParams
    split: SplitParams
    train: TrainParams
    export: ExportParams
    evaluate: EvaluateParams
    promote: PromoteParams


T = TypeVar("T")


class ParamsError(ValueError):
    """``params.yaml`` does not match the dataclasses; the message names every bad key."""


def _build(cls: type[T], raw: Any, where: str, errors: list[str]) -> T | None:
    """``cls`` from the mapping ``raw``; problems go to ``errors`` as dotted key paths."""
    if not isinstance(raw, dict):
        errors.append(f"{where or 'the file'} must be a mapping, not {raw!r}")
        return None
    types = get_type_hints(cls)
    prefix = f"{where}." if where else ""
    errors.extend(f"unknown key {prefix}{k}" for k in raw if k not in types)
    values: dict[str, Any] = {}
    for name, kind in types.items():
        key = f"{prefix}{name}"
        if name not in raw:
            errors.append(f"missing key {key}")
        elif raw[name] is None:
            errors.append(f"key {key} has no value")
        elif dataclasses.is_dataclass(kind):
            values[name] = _build(kind, raw[name], key, errors)  # type: ignore[arg-type]
        else:
            values[name] = tuple(raw[name]) if isinstance(raw[name], list) else raw[name]
    return None if errors else cls(**values)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read ``params.yaml``: every field must be there, and nothing else, so no value is ever guessed."""
    with open(path) as f:
        raw = yaml.safe_load(f)
    errors: list[str] = []
    params = _build(Params, raw, "", errors)
    if params is None:
        raise ParamsError(f"{Path(path).name}: " + "; ".join(errors))
    return params


def as_dict(params: Any) -> dict[str, Any]:
    """Plain JSON-able dict of a params dataclass (tuples become lists)."""
    return dataclasses.asdict(params)
