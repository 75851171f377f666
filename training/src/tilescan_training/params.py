"""A typed view of ``params.yaml``: one dataclass per stage, named like the stage's top-level key."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

UPSTREAM_ARCHIVE = "https://github.com/abin24/Magnetic-tile-defect-datasets./archive/refs/heads/master.zip"


@dataclass(frozen=True)
class IngestParams:
    # The upstream archive URL (http, https or file), a local .zip, or a folder with the upstream layout.
    source: str = UPSTREAM_ARCHIVE


@dataclass(frozen=True)
class SplitParams:
    seed: int = 42
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    # Defect-free tiles in the training split: -1 = all of the free class's training share, 0 = none.
    free_in_train: int = -1


@dataclass(frozen=True)
class NetParams:
    base_channels: int = 16
    depth: int = 4


@dataclass(frozen=True)
class LossParams:
    bce_weight: float = 1.0
    dice_weight: float = 1.0
    # Focal modulation of the BCE term (0 = plain BCE) and positive-class weight for it.
    focal_gamma: float = 0.0
    pos_weight: float = 1.0


@dataclass(frozen=True)
class AugmentParams:
    hflip: bool = True
    vflip: bool = True
    # Share of training crops placed over a defect pixel (tiles with defects only; 0 = uniform crops).
    defect_focus: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0


@dataclass(frozen=True)
class OptimizerParams:
    lr: float = 1e-3
    weight_decay: float = 1e-4
    # "onecycle", "cosine" or "constant"
    schedule: str = "onecycle"


@dataclass(frozen=True)
class TrainParams:
    seed: int = 42
    # Training window [height, width] (multiples of 2**net.depth), cut after scaling; inference runs
    # on whole tiles.
    crop_size: tuple[int, int] = (256, 256)
    # One fixed resize factor for every tile, in training and in the exported graph (1 = native pixels).
    scale: float = 1.0
    epochs: int = 30
    batch_size: int = 8
    num_workers: int = 1
    # Draw training tiles with weight count(class)**-class_balance: 0 = as they come, 1 = classes equally.
    class_balance: float = 0.0
    val_every: int = 1
    # A state_dict path or URL to start from instead of random weights ("" = from scratch).
    init_weights: str = ""
    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: str = "auto"
    precision: str = "32-true"
    # NHWC tensors: with bf16-mixed, ~3x faster convolutions on AVX-512 CPUs (oneDNN).
    channels_last: bool = False
    net: NetParams = field(default_factory=NetParams)
    loss: LossParams = field(default_factory=LossParams)
    augment: AugmentParams = field(default_factory=AugmentParams)
    optimizer: OptimizerParams = field(default_factory=OptimizerParams)


@dataclass(frozen=True)
class ExportParams:
    name: str = "tilescan"
    opset: int = 17
    # Largest allowed |torch - onnxruntime| probability difference in the parity check.
    tolerance: float = 1e-4
    # Test-time augmentation inside the graph: average with the horizontally flipped prediction.
    flip_tta: bool = False


@dataclass(frozen=True)
class EvaluateParams:
    thresholds: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7)
    min_region_areas: tuple[int, ...] = (0, 16, 64)
    # Hysteresis: a region is reported only if some pixel reaches this probability (0 = off).
    min_region_peaks: tuple[float, ...] = (0.0,)
    # Threshold selection on val: best Dice among rules whose val false-alarm rate stays under this.
    max_false_alarm_rate: float = 0.1
    examples: int = 6


@dataclass(frozen=True)
class PromoteParams:
    """Rules of ``make gate`` (promotion.gate); no pipeline stage reads them."""

    metrics_file: str = "evaluation/metrics.json"
    model_file: str = "models/tilescan.onnx"
    # Higher is better; it must reach `floor` and beat the baseline by `min_improvement`.
    primary: str = "dice"
    min_improvement: float = 0.0
    floor: float = 0.0
    # Metric -> largest allowed regression against the baseline.
    guards: dict[str, float] = field(default_factory=dict)
    # Guards for which a rise is the regression.
    lower_is_better: tuple[str, ...] = ("false_alarm_rate",)


@dataclass(frozen=True)
class Params:
    ingest: IngestParams = field(default_factory=IngestParams)
    split: SplitParams = field(default_factory=SplitParams)
    train: TrainParams = field(default_factory=TrainParams)
    export: ExportParams = field(default_factory=ExportParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    promote: PromoteParams = field(default_factory=PromoteParams)


T = TypeVar("T")


def _build(cls: type[T], raw: dict[str, Any] | None, where: str) -> T:
    raw = raw or {}
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(raw) - set(fields)
    if unknown:
        raise ValueError(f"unknown params in {where}: {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        nested = fields[name].default_factory  # type: ignore[misc]
        if dataclasses.is_dataclass(nested):
            value = _build(nested, value, f"{where}.{name}")  # type: ignore[arg-type]
        elif isinstance(value, list):
            value = tuple(value)
        values[name] = value
    return cls(**values)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read ``params.yaml``; unknown keys are errors so a typo never silently falls back to a default."""
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    return _build(Params, raw, "params")


def as_dict(params: Any) -> dict[str, Any]:
    """Plain JSON-able dict of a params dataclass (tuples become lists)."""
    return dataclasses.asdict(params)
