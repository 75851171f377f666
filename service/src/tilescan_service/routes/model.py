"""What is being served."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from tilescan_service.deps import EngineDep
from tilescan_service.errors.docs import error_responses
from tilescan_service.schemas import ModelCard, PrecisionTiming, RuntimeCard

router = APIRouter(tags=["operations"])


@router.get("/model", response_model=ModelCard, responses=error_responses(503))
async def model(engine: EngineDep) -> ModelCard:
    """Name, version, decision rule, working size, test metrics and passed precisions from the ONNX
    metadata; where it runs, at which precision, and the timings that chose it."""
    runtime = engine.runtime
    predictor = runtime.sessions.solo
    info = predictor.info
    return ModelCard(
        name=info.name,
        version=info.version,
        **ModelCard.of(info.rule),
        working_size=info.working_size,
        metrics=info.metrics,
        train_params=info.train_params,
        providers=predictor.providers,
        variants=info.variants,
        runtime=RuntimeCard(
            precision=runtime.precision.value,
            reason=runtime.reason,
            side_by_side=runtime.side_by_side,
            timings=[PrecisionTiming(**asdict(timing)) for timing in runtime.timings],
        ),
    )
