"""The precisions a tilescan model runs at, and the runtime that runs each one.

* ``fp32``: the model file on onnxruntime (CUDA or CPU execution provider);
* ``int8``: its statically quantized sibling (``tilescan.int8.onnx``, QDQ, written by training's
  export stage) on onnxruntime's CPU provider: 4x the fp32 peak with AVX-512 VNNI, slower than fp32
  on CPUs without it (onnxruntime issues #6695, #12854), which is why the service times it first;
* ``bf16``: the model file on OpenVINO's CPU plugin with ``INFERENCE_PRECISION_HINT`` bf16, where the
  CPU has bf16 instructions (OpenVINO would silently run fp32 elsewhere, so it is refused there).

Every variant is the same ONNX contract (:mod:`tilescan_shared.predictor`); the evaluate stage scores
each against fp32 and the model's metadata lists the ones that passed (``ModelInfo.variants``).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
OPENVINO_CPU = "OpenVINO CPU"
# OpenVINO's CPU_RUNTIME_CACHE_CAPACITY per stream, by default (OpenVinoSession): about 66 padded tile
# shapes of the served model, ~300 MB when full
OPENVINO_CACHE_CAPACITY = 1000


class Variant(enum.StrEnum):
    FP32 = "fp32"
    BF16 = "bf16"
    INT8 = "int8"


REDUCED = (Variant.BF16, Variant.INT8)  # the precisions judged against fp32


def variant_path(model_path: str | Path, variant: Variant) -> Path:
    """The file a variant runs: the int8 sibling (``x.onnx`` -> ``x.int8.onnx``) or the model itself."""
    path = Path(model_path)
    return path.with_suffix(".int8.onnx") if variant is Variant.INT8 else path


def resolve_providers(requested: str | Sequence[str] = "auto") -> list[str]:
    """Turn ``"auto"`` or an explicit list into onnxruntime execution providers.

    ``auto`` means CUDA when this onnxruntime build offers it, then CPU as the fallback.
    """
    available = ort.get_available_providers()
    if requested == "auto":
        return [CUDA, CPU] if CUDA in available else [CPU]
    wanted = [requested] if isinstance(requested, str) else list(requested)
    unknown = [p for p in wanted if p not in available]
    if unknown:
        raise ValueError(f"execution providers {unknown} are not available; this build offers {available}")
    return wanted


def unavailable(variant: Variant, model_path: str | Path, providers: Sequence[str]) -> str | None:
    """Why ``variant`` cannot run here, or None when it can."""
    if variant is Variant.FP32:
        return None
    if CUDA in providers:
        return "reduced precision runs on the CPU only; a GPU host serves fp32"
    if variant is Variant.INT8:
        path = variant_path(model_path, variant)
        return None if path.is_file() else f"{path.name} is not beside the model"
    try:
        import openvino as ov
    except ImportError:
        return "OpenVINO is not installed"
    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return "this CPU has no bf16 instructions"
    return None


class Session(Protocol):
    """What :class:`~tilescan_shared.predictor.Predictor` needs of a runtime."""

    metadata: dict[str, str]  # the model file's metadata_props
    output_names: list[str]
    providers: list[str]

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...


class OnnxRuntimeSession:
    """An onnxruntime session; concurrent ``run`` calls are safe (each runs on its caller's thread)."""

    def __init__(
        self, path: Path, providers: str | Sequence[str], intra_op_threads: int, inter_op_threads: int
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        # onnxruntime's CPU arena keeps the peak of the largest image ever seen for the session's
        # life; without it that memory goes back at once, and a typical tile runs as fast
        # (docs/benchmarks.md, "Memory").
        options.enable_cpu_mem_arena = False
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=resolve_providers(providers)
        )
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.output_names = [output.name for output in self.session.get_outputs()]
        self.providers = self.session.get_providers()  # CUDA may have fallen back to CPU

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(names, feeds)


class OpenVinoSession:
    """The model file compiled by OpenVINO for the CPU in bf16.

    ``parallel_runs`` streams of ``intra_op_threads`` threads each (0: OpenVINO's choice), so that
    many ``run`` calls proceed side by side; each calling thread keeps its own infer request.

    Preparing the graph for an input shape (shape inference, kernels, buffers) costs OpenVINO about as
    much as running it. Each stream keeps what it prepared, up to ``cache_capacity`` entries (OpenVINO's
    ``CPU_RUNTIME_CACHE_CAPACITY``; the served model takes about 15 entries and 4.5 MB a shape; 0
    prepares every run afresh and holds nothing). Plant tiles come in many sizes (1,048 among the
    dataset's 1,138 tiles), but the network inside the graph runs on the tile padded to its stride, so
    what was prepared for one tile serves the next one that pads alike (128 such shapes among those
    tiles): the kept entries make a busy service answer about 1.4x the tiles a second on such a stream
    (docs/benchmarks.md, "Keeping what OpenVINO prepared").
    """

    def __init__(
        self,
        path: Path,
        intra_op_threads: int,
        parallel_runs: int = 1,
        cache_capacity: int = OPENVINO_CACHE_CAPACITY,
    ) -> None:
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(path))
        framework = model.get_rt_info("framework")  # the ONNX file's metadata_props
        self.metadata = {key: value.astype(str) for key, value in framework.astype(dict).items()}
        config = {
            "INFERENCE_PRECISION_HINT": "bf16",
            "NUM_STREAMS": str(parallel_runs),
            "CPU_RUNTIME_CACHE_CAPACITY": str(cache_capacity),
        }
        if intra_op_threads:
            config["INFERENCE_NUM_THREADS"] = str(intra_op_threads * parallel_runs)
        self.compiled = core.compile_model(model, "CPU", config)
        self.output_names = [name for output in self.compiled.outputs for name in output.get_names()]
        self.providers = [OPENVINO_CPU]
        self._local = threading.local()

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        results = request.infer(feeds)
        # infer() returns views of the request's buffers, which its next call overwrites
        return [np.array(results[self.compiled.output(name)]) for name in names]


def open_session(
    model_path: str | Path,
    variant: Variant,
    providers: str | Sequence[str],
    intra_op_threads: int,
    inter_op_threads: int,
    parallel_runs: int,
    cache_capacity: int,
) -> Session:
    """``variant`` of the model at ``model_path`` on its runtime (``cache_capacity``: OpenVINO's)."""
    path = variant_path(model_path, variant)
    if variant is Variant.BF16:
        return OpenVinoSession(path, intra_op_threads, parallel_runs, cache_capacity)
    if variant is Variant.INT8:
        providers = [CPU]
    return OnnxRuntimeSession(path, providers, intra_op_threads, inter_op_threads)
