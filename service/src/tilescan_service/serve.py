"""``tilescan-serve``: run the API with uvicorn on the configured host and port."""

from __future__ import annotations

import uvicorn

from tilescan_service.config import get_settings
from tilescan_service.main import create_app


def main() -> None:
    settings = get_settings()
    # Our middleware writes one structured line per request; uvicorn's access log would repeat it.
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, access_log=False)


if __name__ == "__main__":
    main()
