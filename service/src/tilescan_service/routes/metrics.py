"""Prometheus scrape endpoint."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "Metrics."}
    },
)
async def metrics(request: Request) -> Response:
    """Prometheus text format: requests and latency by route and status, inference time, pixels, in flight."""
    # Rendering walks every series under the registry's locks: a worker thread's job, not the event loop's.
    body = await asyncio.to_thread(generate_latest, request.app.state.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
