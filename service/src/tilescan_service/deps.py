"""Dependencies shared by the routes, with their ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tilescan_service.config import Settings
from tilescan_service.engine import Engine


# async, though they do not await: FastAPI runs a plain ``def`` dependency in a worker thread, a
# hop that cost more event-loop time than the rest of the dependencies together (py-spy, issue 9).
async def get_app_settings(request: Request) -> Settings:
    """The settings this app was built with (``create_app`` may be given other than the environment's)."""
    return request.app.state.settings


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
