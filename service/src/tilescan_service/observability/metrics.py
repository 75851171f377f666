"""Prometheus metrics, in a registry per app so that several apps (tests) never share counters."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

# Latency buckets around what a tile inference costs on CPU (tens of ms) up to a stalled queue.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PIXEL_BUCKETS = (1e4, 5e4, 1e5, 2.5e5, 5e5, 1e6, 4e6, 1.6e7, 4e7)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.requests = Counter(
            "tilescan_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tilescan_http_request_duration_seconds",
            "Time from request to the end of the response, by route template, method and status.",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "tilescan_http_requests_in_flight", "HTTP requests being served now.", registry=self.registry
        )
        self.inference = Histogram(
            "tilescan_inference_duration_seconds",
            "onnxruntime session time per image, by lane (solo: alone, all its threads; shared: one thread).",
            ["lane"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference_cpu = Counter(
            "tilescan_inference_cpu_seconds",
            "CPU time of the threads that called onnxruntime, during the runs, by lane: all of onnxruntime's "
            "CPU time where it runs one thread (the shared lane; the solo lane with intra_op_threads=1).",
            ["lane"],
            registry=self.registry,
        )
        self.second_looks = Counter(
            "tilescan_second_looks",
            "Predictions whose tile score fell in the model's review band: run again mirrored three ways "
            "and answered with the mean of the four views (four runs of the model instead of one).",
            registry=self.registry,
        )
        self.pixels = Histogram(
            "tilescan_image_pixels",
            "Pixels per decoded upload.",
            buckets=_PIXEL_BUCKETS,
            registry=self.registry,
        )
        self.queued = Gauge(
            "tilescan_inference_pending",
            "Predictions admitted and not finished (decoding, waiting for or running inference).",
            registry=self.registry,
        )
        self.rejected = Counter(
            "tilescan_inference_rejected",
            "Predictions refused with 503 because the queue was full.",
            registry=self.registry,
        )
        self.queue_timeouts = Counter(
            "tilescan_inference_queue_timeouts",
            "Predictions that left the line with 503: no inference turn within the queue timeout.",
            registry=self.registry,
        )
        self.reloads = Counter(
            "tilescan_model_reloads",
            "Replaced model files loaded (result=success, now serving) or refused (result=failure).",
            ["result"],
            registry=self.registry,
        )
        self.model = Gauge(
            "tilescan_model_info",
            "The model being served (value 1), where and at which precision it runs.",
            ["name", "version", "providers", "precision"],
            registry=self.registry,
        )
        self.runtime_timing = Gauge(
            "tilescan_runtime_inference_seconds",
            "Seconds per working-size tile at each precision timed at load (runtime_choice), by lane.",
            ["precision", "lane"],
            registry=self.registry,
        )
