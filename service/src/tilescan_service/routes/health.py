"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from tilescan_service.deps import EngineDep
from tilescan_service.schemas import Health, Readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive and answering (says nothing about the model)."""
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        503: {
            "model": Readiness,
            "description": "The model is loading or failed to load, or the process is shutting down.",
        }
    },
)
async def readyz(request: Request, engine: EngineDep) -> JSONResponse:
    """200 once the model is loaded and its warm-up inference passed, else 503 (also from SIGTERM on)."""
    if request.app.state.draining:
        body = Readiness(status="draining", detail="the service is shutting down")
        return JSONResponse(body.model_dump(), status_code=503)
    body = Readiness(status=engine.status, detail=engine.error)
    return JSONResponse(body.model_dump(), status_code=200 if engine.ready else 503)
