from __future__ import annotations

from pathlib import Path

import pytest

from tilescan_service.config import Settings


def test_defaults_serve_the_committed_model_on_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORT", raising=False)

    settings = Settings()

    assert settings.model_path == Path("models/tilescan.onnx")
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.provider_list == "auto"
    assert settings.max_upload_bytes == 20 * 1024 * 1024
    assert settings.cors_origins == []


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9123")
    monkeypatch.setenv("TILESCAN_MODEL_PATH", "/srv/model.onnx")
    monkeypatch.setenv("TILESCAN_PROVIDERS", "CUDAExecutionProvider, CPUExecutionProvider")
    monkeypatch.setenv("TILESCAN_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("TILESCAN_LOG_LEVEL", "debug")
    monkeypatch.setenv("TILESCAN_MAX_QUEUE", "4")

    settings = Settings()

    assert settings.port == 9123
    assert settings.model_path == Path("/srv/model.onnx")
    assert settings.provider_list == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.log_level == "DEBUG"
    assert settings.max_queue == 4


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILESCAN_INFERENCE_CONCURRENCY", "-1")

    with pytest.raises(ValueError, match="inference_concurrency"):
        Settings()


@pytest.mark.parametrize(
    ("share", "max_queue", "count"), [("0.5", "16", 8), ("0.5", "5", 3), ("0.1", "4", 1), ("0", "16", 0)]
)
def test_the_newest_first_share_is_a_count_of_waiting_requests(
    monkeypatch: pytest.MonkeyPatch, share: str, max_queue: str, count: int
) -> None:
    monkeypatch.setenv("TILESCAN_NEWEST_FIRST_SHARE", share)
    monkeypatch.setenv("TILESCAN_MAX_QUEUE", max_queue)

    assert Settings().newest_first_at == count
