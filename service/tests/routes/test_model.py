from __future__ import annotations

from fastapi.testclient import TestClient


def test_model_describes_the_served_model_from_its_metadata(client: TestClient) -> None:
    response = client.get("/model")

    assert response.status_code == 200
    card = response.json()
    runtime = card.pop("runtime")
    assert runtime["precision"] == "fp32" and runtime["reason"].startswith("fp32: the only precision")
    assert [timing["precision"] for timing in runtime["timings"]] == ["fp32"]
    assert card == {
        "name": "tilescan-tiny",
        "version": "tiny0001",
        "threshold": 0.5,
        "min_region_area": 0,
        "min_region_peak": 0.0,
        "tile_threshold": None,
        "review": None,
        "working_size": [8, 8],
        "metrics": {"dice": 0.5, "iou": 0.33},
        "train_params": {"note": "test model"},
        "providers": ["CPUExecutionProvider"],
        "variants": {},
    }
