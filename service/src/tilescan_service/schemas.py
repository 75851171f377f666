"""Pydantic models of every JSON body the API sends, with the examples shown in ``/docs``."""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tilescan_service.errors.codes import ErrorCode
from tilescan_shared.masks import DecisionRule

RLE_MEDIA_TYPE = "application/vnd.tilescan.rle+json"


class OutputFormat(StrEnum):
    json = "json"
    png = "png"
    rle = "rle"


class RegionOut(BaseModel):
    bbox: list[int] = Field(
        min_length=4, max_length=4, description="[x0, y0, x1, y1] in pixels; x1 and y1 are exclusive"
    )
    area: int = Field(ge=1, description="defect pixels in the region")


class ModelRef(BaseModel):
    name: str
    version: str


_SUMMARY_EXAMPLE: dict[str, Any] = {
    "height": 4,
    "width": 5,
    "defect_pixels": 4,
    "defect_fraction": 0.2,
    "has_defect": True,
    "regions": [{"bbox": [1, 1, 3, 3], "area": 4}],
    "threshold": 0.5,
    "min_region_area": 0,
    "min_region_peak": 0.0,
    "tile_score": 0.97,
    "tile_threshold": 0.42,
    "review": [0.05, 0.95],
    "views": 1,
    "inference_ms": 41.7,
    "model": {"name": "tilescan", "version": "3f2a9c1e"},
}


class RuleFields(BaseModel):
    """The decision rule (:class:`tilescan_shared.masks.DecisionRule`) as answers and ``/model`` report it."""

    threshold: float = Field(
        ge=0, le=1, description="probability at or above which a pixel is defect (?threshold= overrides it)"
    )
    min_region_area: int = Field(ge=0, description="smaller regions are dropped from the mask")
    min_region_peak: float = Field(
        ge=0,
        le=1,
        description="regions whose highest probability is lower are dropped (when above threshold)",
    )
    tile_threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="tile_score at or above which the tile has a defect (null: no tile decision)",
    )
    review: list[float] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="[low, high]: a tile whose tile_score falls in it is looked at again, mirrored three "
        "ways, and answered with the mean of the four views (null: never)",
    )

    @staticmethod
    def of(rule: DecisionRule) -> dict[str, Any]:
        """The fields of ``rule``, to build a model that carries them."""
        return dataclasses.asdict(rule)


class PredictionSummary(RuleFields):
    """What the decision rule says about one tile."""

    height: int = Field(ge=1, description="image height in pixels; the mask has the same size")
    width: int = Field(ge=1)
    defect_pixels: int = Field(ge=0, description="pixels in the mask (regions kept by the decision rule)")
    defect_fraction: float = Field(ge=0, le=1, description="defect_pixels / (height * width)")
    has_defect: bool = Field(
        description="the tile decision: tile_score >= tile_threshold for a model with a tile score (the "
        "mask is then empty on a tile judged defect-free), else at least one region survives the rule"
    )
    regions: list[RegionOut] = Field(
        description="8-connected defect regions of at least min_region_area pixels"
    )
    tile_score: float | None = Field(
        None,
        ge=0,
        le=1,
        description="the model's probability that the tile has a defect (null: no tile head)",
    )
    views: int = Field(
        ge=1, description="runs of the model behind the answer: 4 when the tile fell in the review band"
    )
    inference_ms: float = Field(ge=0, description="onnxruntime time for this image (all its views)")
    model: ModelRef


class PredictionJson(PredictionSummary):
    """``format=json``: the summary plus the mask as rows of 0/1."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"pred": [[0] * 5, [0, 1, 1, 0, 0], [0, 1, 1, 0, 0], [0] * 5]} | _SUMMARY_EXAMPLE]
        }
    )

    pred: list[list[int]] = Field(description="the mask, one list of 0/1 ints per image row (1 = defect)")


class RleMask(BaseModel):
    size: list[int] = Field(min_length=2, max_length=2, description="[height, width]")
    counts: list[int] = Field(description="column-major run lengths, starting with a run of zeros (COCO)")


class PredictionRle(PredictionSummary):
    """``format=rle``: the summary plus the mask as COCO-style uncompressed RLE."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"rle": {"size": [4, 5], "counts": [5, 2, 2, 2, 9]}} | _SUMMARY_EXAMPLE]
        }
    )

    rle: RleMask


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: a stable machine code and a sentence for the person reading it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": ErrorCode.INVALID_IMAGE.value,
                    "detail": ErrorCode.INVALID_IMAGE.detail,
                    "request_id": "9b1d…",
                }
            ]
        }
    )

    error: ErrorCode = Field(description="machine-readable code (tilescan_service.errors.codes)")
    detail: str = Field(description="what is wrong, for a person")
    request_id: str = Field(description="also in the X-Request-ID header; quote it when reporting a problem")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ready", "detail": None}]})

    status: Literal["loading", "ready", "failed", "draining"]
    detail: str | None = Field(None, description="why the service is not ready")


class PrecisionTiming(BaseModel):
    precision: Literal["fp32", "bf16", "int8"]
    solo_ms: float = Field(description="one working-size tile, alone on every thread")
    shared_ms: float | None = Field(
        description="per tile, with every inference slot running side by side on one thread (null: one slot)"
    )


class RuntimeCard(BaseModel):
    """How the model runs on this machine, chosen by timing (tilescan_service.runtime_choice)."""

    precision: Literal["fp32", "bf16", "int8"] = Field(description="the precision served")
    reason: str = Field(description="why this precision, and why any other could not run here")
    side_by_side: bool = Field(
        description="waiting predictions share the CPUs one thread each (else one at a time)"
    )
    timings: list[PrecisionTiming] = Field(description="every precision timed at load")


class ModelCard(RuleFields):
    """The served model, from its ONNX metadata, and how it runs here."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "tilescan",
                    "version": "3f2a9c1e",
                    "threshold": 0.5,
                    "min_region_area": 32,
                    "min_region_peak": 0.9,
                    "tile_threshold": 0.42,
                    "review": [0.05, 0.95],
                    "working_size": [256, 256],
                    "metrics": {"test/dice": 0.71},
                    "train_params": {"epochs": 15},
                    "providers": ["OpenVINO CPU"],
                    "variants": {"bf16": {"passed": True, "test": {"dice": 0.896}}},
                    "runtime": {
                        "precision": "bf16",
                        "reason": "bf16: the fastest per tile (fp32 33.1 ms, bf16 17.5 ms, int8 19.0 ms)",
                        "side_by_side": True,
                        "timings": [{"precision": "fp32", "solo_ms": 38.0, "shared_ms": 33.1}],
                    },
                }
            ]
        }
    )

    name: str
    version: str
    working_size: list[int] = Field(
        description="[height, width] the network sees; masks come back at full size"
    )
    metrics: dict[str, Any] = Field(description="test-split metrics written by the evaluate stage")
    train_params: dict[str, Any]
    providers: list[str] = Field(
        description="where it runs: onnxruntime execution providers, or OpenVINO's device"
    )
    variants: dict[str, Any] = Field(
        description="reduced precisions that passed evaluation against fp32, with their val and test scores"
    )
    runtime: RuntimeCard
