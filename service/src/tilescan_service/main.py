"""The app factory: ``create_app()`` wires settings, model, routes, middleware and error handling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from tilescan_service.admission import Admission, AdmissionMiddleware
from tilescan_service.body_limit import BodyLimitMiddleware
from tilescan_service.capture import Capturer
from tilescan_service.config import Settings, get_settings
from tilescan_service.engine import Engine
from tilescan_service.errors.handlers import install_error_handlers
from tilescan_service.model_watch import ModelWatcher
from tilescan_service.observability.logs import configure_logging
from tilescan_service.observability.metrics import ServiceMetrics
from tilescan_service.observability.middleware import RequestContextMiddleware
from tilescan_service.routes import health, metrics, model, page, predict
from tilescan_service.shadow import ShadowMirror


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the model in the background: /healthz answers at once, /readyz turns 200 after warm-up."""
    settings: Settings = app.state.settings
    if not settings.model_path.is_file():
        # A missing file is a deployment mistake; refuse to start rather than serve 503 forever.
        raise RuntimeError(f"model file {settings.model_path} does not exist (set TILESCAN_MODEL_PATH)")
    engine: Engine = app.state.engine
    watcher = ModelWatcher(engine, settings.model_path, settings.model_watch_interval)
    loading = asyncio.create_task(asyncio.to_thread(engine.load))
    watching = asyncio.create_task(watcher.run(loading)) if settings.model_watch_interval > 0 else None
    shadow: ShadowMirror | None = app.state.shadow
    if shadow is not None:
        await shadow.start()
    capturer: Capturer | None = app.state.capturer
    if capturer is not None:
        await capturer.start()
    yield
    if shadow is not None:
        await shadow.stop()
    if capturer is not None:
        await capturer.stop()
    if watching is not None:
        watching.cancel()
    await loading
    engine.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    # FastAPIOffline = FastAPI whose /docs loads Swagger UI from the package, not from a CDN.
    app = FastAPIOffline(
        redoc_url=None,
        static_url="/docs-assets",
        title="tilescan",
        summary="Finds surface defects on magnetic tiles: post a photo, get a full-resolution defect mask.",
        version="0.1.0",
        lifespan=lifespan,
        # One file field plus a few stray text fields at most; more is not a tilescan client.
        form_limits={"max_files": 1, "max_fields": 8},
    )
    service_metrics = ServiceMetrics()
    app.state.settings = settings
    app.state.metrics = service_metrics
    app.state.engine = Engine(settings, service_metrics)
    app.state.draining = False  # set on SIGTERM by tilescan_service.serve: /readyz answers 503
    app.state.shadow = ShadowMirror(settings, service_metrics.registry) if settings.shadow_url else None
    app.state.capturer = Capturer(settings, service_metrics.registry) if settings.capture_url else None

    for router in (predict.router, health.router, model.router, metrics.router, page.router):
        app.include_router(router)
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
    # Inside the body limit (a declared oversize upload is refused first, as cheaply), outside the app.
    app.add_middleware(
        AdmissionMiddleware,
        admission=Admission(
            settings.inference_slots + settings.max_queue, settings.retry_after_seconds, service_metrics
        ),
        settings=settings,
        paths=frozenset(route.path for route in predict.router.routes),
    )
    app.add_middleware(BodyLimitMiddleware, upload_limit=settings.max_upload_bytes)
    # Added last, so it is the outermost: it sees every response, CORS and errors included.
    app.add_middleware(RequestContextMiddleware, metrics=service_metrics)
    return app
