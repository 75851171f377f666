"""Service settings, read from ``TILESCAN_*`` environment variables (and ``PORT``)."""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, AnyHttpUrl, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tilescan_shared.runtimes import OPENVINO_CACHE_CAPACITY

MiB = 1024 * 1024


class Settings(BaseSettings):
    """Every knob of the service; docs/operations.md's settings table lists them with their variables."""

    model_config = SettingsConfigDict(env_prefix="TILESCAN_", populate_by_name=True, extra="ignore")

    model_path: Path = Path("models/tilescan.onnx")
    # "auto" = CUDA when onnxruntime offers it, else CPU; or a comma-separated provider list
    providers: str = "auto"
    intra_op_threads: Annotated[int, Field(ge=0)] = 0  # 0 = onnxruntime's default (all cores)
    inter_op_threads: Annotated[int, Field(ge=0)] = 0
    # "auto" = time fp32 and the reduced precisions the model passed evaluation with, serve the fastest
    # (tilescan_service.runtime_choice); or pin one (falls back to fp32 where it cannot run)
    precision: Literal["auto", "fp32", "bf16", "int8"] = "auto"
    # bf16: what OpenVINO keeps prepared of the tile shapes it ran, per lane and stream (about 15
    # entries and 4.5 MB a shape; a shape seen before runs in half the time); 0 = nothing kept
    openvino_cache_capacity: Annotated[int, Field(ge=0)] = OPENVINO_CACHE_CAPACITY

    # Seconds between checks of the model file for a replacement (hot swap); 0 = never check.
    model_watch_interval: Annotated[float, Field(ge=0)] = 2.0

    max_upload_bytes: Annotated[int, Field(ge=1)] = 20 * MiB
    # A native-resolution model's memory and time grow with the area: 2 Mpx (7x the largest tile)
    # keeps one image within a replica's memory and the request deadline (docs/benchmarks.md, "Memory").
    max_image_pixels: Annotated[int, Field(ge=1)] = 2_000_000
    # Inferences run side by side, one thread each, when requests wait (tilescan_service.scheduling);
    # a request alone runs on intra_op_threads. 0 = as many as the threads a lone inference uses.
    inference_concurrency: Annotated[int, Field(ge=0)] = 0
    # Requests allowed to wait for an inference slot; beyond that the service answers 503.
    max_queue: Annotated[int, Field(ge=0)] = 16
    retry_after_seconds: Annotated[int, Field(ge=1)] = 1
    # Once this share of the queue's places waits, the newest request starts first (adaptive LIFO:
    # tilescan_service.scheduling); 0 = always in arrival order.
    newest_first_share: Annotated[float, Field(ge=0, le=1)] = 0.5

    # Time limits against slow or stuck clients and stuck work (seconds).
    header_timeout_seconds: Annotated[float, Field(gt=0)] = 10  # request line + headers, per request
    body_timeout_seconds: Annotated[float, Field(gt=0)] = 20  # the whole upload, from its headers
    request_timeout_seconds: Annotated[float, Field(gt=0)] = 30  # from arrival to the answer's start
    # Waiting for an inference turn, after decoding; past it 503 + Retry-After. A request may wait this
    # many times what the work queued ahead of it (its pixels, at the rate timed at start-up) should
    # take (0: no such limit) ...
    queue_wait_ratio: Annotated[float, Field(ge=0)] = 1.25
    # ... or this many times, while the line stands (newest first): the requests overtaken then leave
    # within what a full line takes at its pace, keeping an overload's p99 within (queue places + 1)
    # single requests, where a line that is not standing keeps room for second looks ahead ...
    standing_wait_ratio: Annotated[float, Field(ge=0)] = 1.0
    # ... and at most this long (0: no fixed limit).
    queue_timeout_seconds: Annotated[float, Field(ge=0)] = 0
    # Open connections served; beyond it uvicorn answers 503 (its limit_concurrency).
    max_connections: Annotated[int, Field(ge=1)] = 256
    # SIGTERM: /readyz turns 503 at once; requests are served for drain_seconds more (load balancers
    # need that long to stop sending), then in-flight and queued ones get up to shutdown_timeout_seconds.
    drain_seconds: Annotated[float, Field(ge=0)] = 5
    shutdown_timeout_seconds: Annotated[float, Field(gt=0)] = 30

    cors_origins: Annotated[list[str], NoDecode] = []
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"

    host: str = "127.0.0.1"
    port: Annotated[
        int, Field(ge=1, le=65535, validation_alias=AliasChoices("port", "PORT", "TILESCAN_PORT"))
    ] = 8000

    # Shadow comparison (tilescan_service.shadow): mirror a share of /predict to another service.
    shadow_url: AnyHttpUrl | None = None  # its base URL; unset = no mirroring
    shadow_sample_rate: Annotated[float, Field(ge=0, le=1)] = 1.0
    shadow_queue_size: Annotated[int, Field(ge=1)] = 8  # mirrored uploads held in memory at most
    shadow_timeout_seconds: Annotated[float, Field(gt=0)] = 5.0
    shadow_concurrency: Annotated[int, Field(ge=1)] = 2

    # Drift watch (tilescan_service.drift_watch): the last tiles compared with the training reference.
    drift_window: Annotated[int, Field(ge=0)] = 500  # tiles in the rolling window; 0 = histograms only

    # Capture (tilescan_service.capture): keep uncertain tiles for labelling. Unset URL = no capture.
    capture_url: str | None = None  # a directory or an fsspec URL, e.g. s3://bucket/captures
    capture_band: Annotated[float, Field(ge=0, le=1)] = 0.1  # |score - threshold| at most this: uncertain
    capture_sample_rate: Annotated[float, Field(ge=0, le=1)] = 0.0  # share of the other tiles kept
    capture_queue_size: Annotated[int, Field(ge=1)] = 64  # captures waiting to be written at most
    capture_max_bytes_per_day: Annotated[int, Field(ge=0)] = 1024 * MiB  # image bytes kept per UTC day

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        """Accept ``https://a.example,https://b.example`` from the environment."""
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def inference_slots(self) -> int:
        """``inference_concurrency``, with 0 resolved: ``intra_op_threads``, else the usable CPUs."""
        if self.inference_concurrency:
            return self.inference_concurrency
        return self.intra_op_threads or len(os.sched_getaffinity(0))

    @property
    def newest_first_at(self) -> int:
        """``newest_first_share`` as a count of waiting requests (0: never)."""
        return max(1, math.ceil(self.newest_first_share * self.max_queue)) if self.newest_first_share else 0

    @property
    def provider_list(self) -> str | list[str]:
        """``providers`` in the form :class:`tilescan_shared.predictor.Predictor` takes."""
        if self.providers.strip() == "auto":
            return "auto"
        return [p.strip() for p in self.providers.split(",") if p.strip()]


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
