"""The operator page: three static files, no build step, no CDN."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
# Served by name from this fixed list (not a StaticFiles mount), so no path can reach outside the
# folder and the metrics see one route template, /static/{name}.
_ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get("/static/{name}")
async def asset(name: str) -> FileResponse:
    if name not in _ASSETS:
        raise HTTPException(404, f"no static file {name!r}")
    return FileResponse(STATIC_DIR / name, media_type=_ASSETS[name])
