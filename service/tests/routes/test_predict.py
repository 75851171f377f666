"""POST /predict: every output format, every accepted image kind, every bad input."""

from __future__ import annotations

import http.client
import io
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tilescan_service.body_limit import MULTIPART_OVERHEAD
from tilescan_service.config import Settings
from tilescan_service.main import create_app
from tilescan_service.testing import wait_ready
from tilescan_shared.masks import decode_rle
from tilescan_shared.testing import bright_square, mask_rows, write_tiny_model

RLE = "application/vnd.tilescan.rle+json"


def upload(data: bytes, name: str = "tile.png", field: str = "image") -> dict:
    return {"files": {field: (name, data, "application/octet-stream")}}


def read_png(data: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    assert img.mode == "L"
    return np.asarray(img)


def test_json_answer_is_the_full_resolution_mask_with_its_summary(
    client: TestClient, square_png: bytes, expected_mask: np.ndarray
) -> None:
    response = client.post("/predict", **upload(square_png))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert np.array_equal(np.array(body["pred"]), expected_mask)
    assert body["pred"] == mask_rows(expected_mask)
    assert (body["height"], body["width"]) == (40, 60)
    assert body["defect_pixels"] == 300
    assert body["defect_fraction"] == pytest.approx(300 / 2400)
    assert body["has_defect"] is True
    assert body["regions"] == [{"bbox": [10, 5, 30, 20], "area": 300}]
    assert (body["threshold"], body["min_region_area"], body["min_region_peak"]) == (0.5, 0, 0.0)
    assert body["model"] == {"name": "tilescan-tiny", "version": "tiny0001"}
    assert (body["tile_score"], body["tile_threshold"]) == (
        None,
        None,
    )  # no tile head: the pixel rule decides
    assert body["inference_ms"] >= 0


@pytest.fixture(scope="module")
def tile_head_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A model with a tile decision head: tile score = brightest pixel / 255, tile threshold 0.9."""
    model = write_tiny_model(tmp_path_factory.mktemp("tile") / "tile.onnx", tile_threshold=0.9)
    with TestClient(create_app(Settings(model_path=model, log_level="WARNING"))) as client:
        wait_ready(client.get)
        yield client


def test_the_tile_decision_says_has_defect_and_every_format_carries_its_score(
    tile_head_client: TestClient, encoder: Callable[..., bytes]
) -> None:
    tile = bright_square()  # brightest pixel 255: tile score 1.0 >= 0.9
    body = tile_head_client.post("/predict", **upload(encoder(tile))).json()
    png = tile_head_client.post("/predict?format=png", **upload(encoder(tile)))
    rle = tile_head_client.post("/predict?format=rle", **upload(encoder(tile))).json()
    card = tile_head_client.get("/model").json()

    assert body["has_defect"] is True
    assert (body["tile_score"], body["tile_threshold"]) == (1.0, 0.9)
    assert body["defect_pixels"] == 300
    assert (png.headers["x-tile-score"], png.headers["x-tile-threshold"]) == ("1.0", "0.9")
    assert (rle["tile_score"], rle["tile_threshold"]) == (1.0, 0.9)
    assert card["tile_threshold"] == 0.9


def test_a_tile_judged_defect_free_gets_an_empty_mask_whatever_its_pixels_say(
    tile_head_client: TestClient, encoder: Callable[..., bytes]
) -> None:
    tile = bright_square()
    tile[tile == 255] = 204  # pixels at 0.8 pass the pixel threshold 0.5, the tile score 0.8 < 0.9
    body = tile_head_client.post("/predict?format=rle", **upload(encoder(tile))).json()

    assert body["tile_score"] == pytest.approx(0.8)
    assert body["has_defect"] is False
    assert (body["defect_pixels"], body["regions"]) == (0, [])
    assert decode_rle(body["rle"]).sum() == 0


def test_an_uncertain_tile_is_answered_from_four_mirrored_views_and_says_so(
    tmp_path: Path, encoder: Callable[..., bytes]
) -> None:
    """The corner model scores a tile by its top-left pixel; the review band [0.1, 0.9] holds 0.2.
    (Regions of one pixel are dropped, so the bright corners stay out of the mask.)"""
    model = write_tiny_model(
        tmp_path / "corner.onnx", tile_threshold=0.5, review=(0.1, 0.9), corner_score=True, min_region_area=2
    )
    tile = bright_square()
    tile[0, 0], tile[0, -1], tile[-1, 0], tile[-1, -1] = 51, 204, 204, 204  # views: 0.2, 0.8, 0.8, 0.8
    with TestClient(create_app(Settings(model_path=model, log_level="WARNING"))) as client:
        wait_ready(client.get)
        body = client.post("/predict", **upload(encoder(tile))).json()
        png = client.post("/predict?format=png", **upload(encoder(tile)))
        card = client.get("/model").json()
        metrics = client.get("/metrics").text

    # Alone, 0.2 < 0.5 would be defect-free; the mean of the four views, 0.65, finds the square.
    assert (body["views"], body["has_defect"]) == (4, True)
    assert body["tile_score"] == pytest.approx(0.65, abs=1e-6) and body["defect_pixels"] == 300
    assert png.headers["x-views"] == "4"
    assert card["review"] == [0.1, 0.9]
    assert "tilescan_second_looks_total 2.0" in metrics


def test_png_and_rle_carry_the_same_mask_as_json(client: TestClient, square_png: bytes) -> None:
    pred = np.array(client.post("/predict?format=json", **upload(square_png)).json()["pred"])

    png = client.post("/predict?format=png", **upload(square_png))
    rle = client.post("/predict?format=rle", **upload(square_png))

    assert png.headers["content-type"] == "image/png"
    assert np.array_equal(read_png(png.content), pred * 255)
    assert png.headers["x-defect-pixels"] == "300"
    assert float(png.headers["x-defect-fraction"]) == pytest.approx(0.125)
    assert png.headers["x-has-defect"] == "true"
    assert png.headers["x-region-count"] == "1"
    assert png.headers["x-threshold"] == "0.5"
    assert png.headers["x-model-version"] == "tiny0001"
    assert rle.headers["content-type"] == RLE
    body = rle.json()
    assert "pred" not in body
    assert body["rle"]["size"] == [40, 60]
    assert np.array_equal(decode_rle(body["rle"]), pred)
    assert body["regions"] == [{"bbox": [10, 5, 30, 20], "area": 300}]


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("image/png", "image/png"),
        (RLE, RLE),
        ("application/json", "application/json"),
        ("image/png;q=0.5, application/json", "application/json"),
        ("text/html, image/png;q=0.9, */*;q=0.1", "image/png"),
        ("text/html", "application/json"),
        ("image/png;q=0", "application/json"),
        ("", "application/json"),
    ],
)
def test_accept_header_picks_the_format(
    client: TestClient, square_png: bytes, accept: str, content_type: str
) -> None:
    response = client.post("/predict", headers={"Accept": accept}, **upload(square_png))

    assert response.status_code == 200
    assert response.headers["content-type"] == content_type


def test_format_parameter_wins_over_accept(client: TestClient, square_png: bytes) -> None:
    response = client.post("/predict?format=rle", headers={"Accept": "image/png"}, **upload(square_png))

    assert response.headers["content-type"] == RLE


def test_threshold_parameter_overrides_the_models(client: TestClient, encoder: Callable[..., bytes]) -> None:
    # Left half at probability ~0.31, right half at ~0.71.
    tile = np.full((10, 20), 80, dtype=np.uint8)
    tile[:, 10:] = 180

    default = client.post("/predict", **upload(encoder(tile))).json()
    low = client.post("/predict?threshold=0.2", **upload(encoder(tile))).json()
    high = client.post("/predict?threshold=1", **upload(encoder(tile))).json()

    assert (default["threshold"], default["defect_pixels"]) == (0.5, 100)
    assert (low["threshold"], low["defect_pixels"]) == (0.2, 200)
    assert (high["threshold"], high["defect_pixels"], high["has_defect"]) == (1.0, 0, False)


def test_the_models_decision_rule_drops_small_and_faint_regions(
    tmp_path: Path, encoder: Callable[..., bytes]
) -> None:
    model = write_tiny_model(tmp_path / "rule.onnx", threshold=0.5, min_region_area=10, min_region_peak=0.9)
    tile = np.zeros((30, 40), dtype=np.uint8)
    tile[2:4, 2:4] = 255  # 4 pixels: too small
    tile[10:20, 10:20] = 255  # 100 pixels peaking at 1.0: kept
    tile[10:20, 25:35] = 200  # 100 pixels, but its peak 0.78 < 0.9: too faint

    with TestClient(create_app(Settings(model_path=model, log_level="WARNING"))) as client:
        wait_ready(client.get)
        body = client.post("/predict", **upload(encoder(tile))).json()
        model_card = client.get("/model").json()

    assert (body["min_region_area"], body["min_region_peak"]) == (10, 0.9)
    assert (model_card["min_region_area"], model_card["min_region_peak"]) == (10, 0.9)
    assert body["regions"] == [{"bbox": [10, 10, 20, 20], "area": 100}]
    pred = np.array(body["pred"])
    assert pred[2:4, 2:4].sum() == 0 and pred[10:20, 25:35].sum() == 0
    assert body["defect_pixels"] == 100


def test_a_clean_tile_has_no_defect(client: TestClient, encoder: Callable[..., bytes]) -> None:
    body = client.post("/predict", **upload(encoder(np.full((7, 9), 30, np.uint8)))).json()

    assert (body["has_defect"], body["regions"], body["defect_pixels"]) == (False, [], 0)
    assert np.array(body["pred"]).shape == (7, 9)


def test_analyze_answers_like_predict_and_is_not_documented(client: TestClient, square_png: bytes) -> None:
    predict = client.post("/predict?format=rle", **upload(square_png)).json()
    analyze = client.post("/analyze?format=rle", **upload(square_png)).json()

    assert {**analyze, "inference_ms": 0} == {**predict, "inference_ms": 0}
    assert "/analyze" not in client.get("/openapi.json").json()["paths"]


def _rgb(gray: np.ndarray) -> np.ndarray:
    return np.stack([gray] * 3, axis=-1)


def _kinds() -> dict[str, Callable[[np.ndarray], Image.Image]]:
    return {
        "gray8": lambda g: Image.fromarray(g),
        "gray16": lambda g: Image.fromarray(g.astype(np.uint16) * 257),
        "rgb": lambda g: Image.fromarray(_rgb(g)),
        "rgba": lambda g: Image.fromarray(np.dstack([_rgb(g), np.full(g.shape, 128, np.uint8)])),
        "gray_alpha": lambda g: Image.fromarray(np.dstack([g, np.full(g.shape, 128, np.uint8)]), mode="LA"),
        "palette": lambda g: Image.fromarray(_rgb(g)).quantize(colors=4),
    }


@pytest.mark.parametrize(
    ("fmt", "kind", "save_args"),
    [
        ("PNG", "gray8", {}),
        ("PNG", "gray16", {}),
        ("PNG", "rgb", {}),
        ("PNG", "rgba", {}),
        ("PNG", "gray_alpha", {}),
        ("PNG", "palette", {}),
        ("JPEG", "gray8", {"quality": 95}),
        ("JPEG", "rgb", {"quality": 95}),
        ("BMP", "gray8", {}),
        ("BMP", "rgb", {}),
        ("BMP", "palette", {}),
        ("TIFF", "gray8", {}),
        ("TIFF", "gray16", {}),
        ("TIFF", "rgb", {"compression": "tiff_lzw"}),
        ("WEBP", "rgb", {"lossless": True}),
        ("WEBP", "rgba", {"lossless": True}),
    ],
)
def test_each_accepted_image_kind_gives_the_same_mask(
    client: TestClient,
    square: np.ndarray,
    expected_mask: np.ndarray,
    encoder: Callable[..., bytes],
    fmt: str,
    kind: str,
    save_args: dict,
) -> None:
    data = encoder(_kinds()[kind](square), fmt, **save_args)

    response = client.post("/predict", **upload(data, name=f"tile.{fmt.lower()}"))

    assert response.status_code == 200, response.text
    assert np.array_equal(np.array(response.json()["pred"]), expected_mask)


def test_exif_orientation_is_applied(client: TestClient, encoder: Callable[..., bytes]) -> None:
    upright = bright_square(40, 60, (2, 2, 12, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    data = encoder(stored, "JPEG", quality=95, exif=exif)

    body = client.post("/predict", **upload(data, name="rotated.jpg")).json()

    assert (body["height"], body["width"]) == (40, 60)
    assert body["regions"] == [{"bbox": [2, 2, 12, 10], "area": 80}]


def _noise_png(size: int = 256) -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (size, size), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "PNG")
    return buf.getvalue()


def _huge_png() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buf, "PNG")  # 100 Mpx announced in a ~12 kB file
    return buf.getvalue()


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "GIF")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("request_args", "status", "error", "detail_has"),
    [
        ({"files": {"file": ("t.png", b"x")}}, 422, "validation_error", "field 'image' is missing"),
        ({"files": {"image": (None, "just text")}}, 422, "validation_error", "must be a file upload"),
        ({"json": {"image": "aGVsbG8="}}, 415, "unsupported_media_type", "multipart/form-data"),
        (
            {"content": b"\x89PNG", "headers": {"content-type": "image/png"}},
            415,
            "unsupported_media_type",
            "",
        ),
        ({}, 415, "unsupported_media_type", "multipart/form-data"),
        (
            {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data"}},
            400,
            "bad_request",
            "boundary",
        ),
        (upload(b""), 400, "empty_file", "empty"),
        (upload(b"GIF? no: plain text"), 400, "invalid_image", "not a readable image"),
        (upload(_noise_png()[:3000]), 400, "invalid_image", "truncated"),
        (upload(_huge_png()), 413, "image_too_large", "more than the limit of 2000000"),
        (upload(_gif(), name="t.gif"), 415, "unsupported_format", "GIF"),
        (
            {"files": [("image", ("a.png", b"a")), ("image", ("b.png", b"b"))]},
            400,
            "bad_request",
            "Too many files",
        ),
    ],
    ids=[
        "misnamed-field",
        "text-field",
        "json-body",
        "raw-image-body",
        "no-body",
        "malformed-multipart",
        "empty-file",
        "not-an-image",
        "truncated",
        "too-many-pixels",
        "unsupported-format",
        "two-files",
    ],
)
def test_bad_uploads_get_a_clear_4xx(
    client: TestClient, request_args: dict, status: int, error: str, detail_has: str
) -> None:
    response = client.post("/predict", **request_args)

    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert detail_has in body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("query", "detail_has"),
    [
        ("threshold=1.5", "threshold"),
        ("threshold=-0.1", "threshold"),
        ("threshold=nan", "threshold"),
        ("threshold=inf", "threshold"),
        ("threshold=half", "threshold"),
        ("format=gif", "format"),
    ],
)
def test_bad_parameters_get_422(client: TestClient, square_png: bytes, query: str, detail_has: str) -> None:
    response = client.post(f"/predict?{query}", **upload(square_png))

    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"
    assert f"query parameter '{detail_has}'" in response.json()["detail"]


def test_a_file_just_over_the_limit_is_refused_with_413(client: TestClient) -> None:
    limit = client.app.state.settings.max_upload_bytes  # type: ignore[attr-defined]

    response = client.post("/predict", **upload(b"\0" * (limit + 1)))

    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_a_body_over_the_limit_is_refused_with_413_even_when_chunked(client: TestClient) -> None:
    limit = client.app.state.settings.max_upload_bytes  # type: ignore[attr-defined]
    chunk = b"\0" * (1024 * 1024)

    def body() -> Iterator[bytes]:
        for _ in range((limit + MULTIPART_OVERHEAD) // len(chunk) + 2):
            yield chunk

    response = client.post(
        "/predict", content=body(), headers={"content-type": "multipart/form-data; boundary=b"}
    )

    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_an_announced_oversized_body_is_refused_before_it_is_sent(live_server: str) -> None:
    """The server answers 413 on the headers alone: the client never has to send the 100 MB."""
    host, port = urlsplit(live_server).hostname, urlsplit(live_server).port
    head = (
        "POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {100 * 1024 * 1024}\r\n\r\n"
    )
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(head.encode() + b"--b\r\n")
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        body = json.loads(answer.read())

    assert answer.status == 413
    assert body["error"] == "payload_too_large"


def test_service_keeps_serving_after_bad_input(client: TestClient, square_png: bytes) -> None:
    for data in (b"", b"junk", _noise_png()[:100]):
        client.post("/predict", **upload(data))

    assert client.post("/predict", **upload(square_png)).status_code == 200
