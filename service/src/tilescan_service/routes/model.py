"""What is being served."""

from __future__ import annotations

from fastapi import APIRouter

from tilescan_service.deps import EngineDep
from tilescan_service.errors.docs import error_responses
from tilescan_service.schemas import ModelCard

router = APIRouter(tags=["operations"])


@router.get("/model", response_model=ModelCard, responses=error_responses(503))
async def model(engine: EngineDep) -> ModelCard:
    """Name, version, decision rule, working size and test metrics from the ONNX metadata, and providers."""
    predictor = engine.predictor
    info = predictor.info
    return ModelCard(
        name=info.name,
        version=info.version,
        **ModelCard.of(info.rule),
        working_size=info.working_size,
        metrics=info.metrics,
        train_params=info.train_params,
        providers=predictor.providers,
    )
