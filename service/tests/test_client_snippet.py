"""The existing plant client, verbatim, against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import requests
from PIL import Image


def test_existing_client_snippet_works_unchanged(
    live_server: str, tmp_path: Path, square: np.ndarray, expected_mask: np.ndarray
) -> None:
    file_path = tmp_path / "tile.jpg"
    Image.fromarray(square).save(file_path, quality=95)
    url = f"{live_server}/predict"

    # --- the client's code, unchanged ---
    files = {"image": (str(file_path), open(file_path, "rb"), "image/jpeg")}  # noqa: SIM115
    response = requests.post(url, files=files)
    pred = np.array(json.loads(response.content)["pred"])
    # ---
    files["image"][1].close()

    assert np.array_equal(pred, expected_mask)
