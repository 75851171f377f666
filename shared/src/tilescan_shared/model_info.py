"""The metadata a tilescan ONNX file carries about itself: one reader, one writer, each the other's inverse.

``metadata_props`` keys: ``name``, ``version``, ``threshold``, ``min_region_area``, ``min_region_peak``,
``tile_threshold`` (absent for a model without a tile decision), ``review`` (JSON ``[low, high]``, the tile
scores looked at again; absent when none are), ``working_size`` (JSON
``[height, width]``) and the JSON documents ``train_params``, ``export_params``, ``metrics`` and
``variants`` (the reduced precisions that passed evaluation against fp32, each with its scores; see
:mod:`tilescan_shared.runtimes`) and ``reference`` (histograms of the training data's statistics in
the bins of :mod:`tilescan_shared.drift`, what the service's drift watch compares its inputs with).
Training's export and evaluate stages write them with :func:`stamp`; the service reads them with
:meth:`ModelInfo.from_props` (through :class:`~tilescan_shared.predictor.Predictor`).

Needs neither onnx nor onnxruntime: :func:`stamp` and :func:`read_info` take an ``onnx.ModelProto``
that the caller loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tilescan_shared.masks import DecisionRule

if TYPE_CHECKING:
    import onnx

REQUIRED = ("name", "version", "threshold", "working_size")
OPTIONAL_RULE = ("tile_threshold", "review")  # written only when set, so a stamp without it must remove it


@dataclass(frozen=True)
class ModelInfo:
    """What a model file says about itself in its ``metadata_props``."""

    name: str
    version: str
    rule: DecisionRule
    working_size: list[int]
    train_params: dict[str, Any] = field(default_factory=dict)
    export_params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    variants: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelInfo:
        missing = set(REQUIRED) - props.keys()
        if missing:
            raise ValueError(f"model metadata lacks {sorted(missing)}")
        return cls(
            name=props["name"],
            version=props["version"],
            rule=DecisionRule(
                threshold=float(props["threshold"]),
                min_region_area=int(props.get("min_region_area", "0")),
                min_region_peak=float(props.get("min_region_peak", "0")),
                tile_threshold=float(props["tile_threshold"]) if "tile_threshold" in props else None,
                review=tuple(map(float, json.loads(props["review"]))) if "review" in props else None,
            ),
            working_size=json.loads(props["working_size"]),
            train_params=json.loads(props.get("train_params", "{}")),
            export_params=json.loads(props.get("export_params", "{}")),
            metrics=json.loads(props.get("metrics", "{}")),
            variants=json.loads(props.get("variants", "{}")),
            reference=json.loads(props.get("reference", "{}")),
        )

    def to_props(self) -> dict[str, str]:
        """The ``metadata_props`` entries; ``ModelInfo.from_props(info.to_props()) == info``."""
        rule = self.rule
        tile = {} if rule.tile_threshold is None else {"tile_threshold": str(float(rule.tile_threshold))}
        review = {} if rule.review is None else {"review": json.dumps([float(v) for v in rule.review])}
        return {
            "name": self.name,
            "version": self.version,
            "threshold": str(float(rule.threshold)),
            "min_region_area": str(int(rule.min_region_area)),
            "min_region_peak": str(float(rule.min_region_peak)),
            **tile,
            **review,
            "working_size": json.dumps(list(self.working_size)),
            "train_params": json.dumps(self.train_params),
            "export_params": json.dumps(self.export_params),
            "metrics": json.dumps(self.metrics),
            "variants": json.dumps(self.variants),
            "reference": json.dumps(self.reference),
        }


def stamp(model: onnx.ModelProto, info: ModelInfo) -> None:
    """Write ``info`` into ``model.metadata_props``, replacing the entries it owns and keeping others."""
    kept = {p.key: p.value for p in model.metadata_props if p.key not in OPTIONAL_RULE}
    props = kept | info.to_props()
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def read_info(model: onnx.ModelProto) -> ModelInfo:
    """The :class:`ModelInfo` stamped into a loaded model."""
    return ModelInfo.from_props({p.key: p.value for p in model.metadata_props})
