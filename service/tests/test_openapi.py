"""/docs and /openapi.json document every answer, and the running API conforms to them."""

from __future__ import annotations

from pathlib import Path

import httpx
import jsonschema
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tilescan_service.config import Settings
from tilescan_service.main import create_app


def test_docs_page_is_served_without_a_cdn(client: TestClient) -> None:
    response = client.get("/docs")

    assert response.status_code == 200
    assert "/openapi.json" in response.text
    assert "cdn.jsdelivr.net" not in response.text
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200


def test_predict_documents_formats_examples_and_every_error(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    predict = spec["paths"]["/predict"]["post"]
    responses = predict["responses"]

    assert set(responses) == {"200", "400", "408", "413", "415", "422", "503", "504"}
    assert set(responses["200"]["content"]) == {
        "application/json",
        "image/png",
        "application/vnd.tilescan.rle+json",
    }
    for status in ("400", "408", "413", "415", "422", "503", "504"):
        content = responses[status]["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
        assert content["examples"], status
    assert "Retry-After" in responses["503"]["headers"]
    params = {p["name"]: p for p in predict["parameters"]}
    assert params["format"]["schema"]["anyOf"][0] == {"$ref": "#/components/schemas/OutputFormat"}
    assert params["threshold"]["schema"]["anyOf"][0] == {"type": "number", "maximum": 1.0, "minimum": 0.0}
    form_ref = predict["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    assert spec["components"]["schemas"][form_ref.split("/")[-1]]["required"] == ["image"]
    for name in ("PredictionJson", "ModelCard", "ErrorBody"):
        assert spec["components"]["schemas"][name]["examples"], name
    assert responses["200"]["content"]["application/vnd.tilescan.rle+json"]["schema"]["examples"]
    assert {"/healthz", "/readyz", "/model", "/metrics", "/predict"} <= set(spec["paths"])


# The schema the app serves (building it loads no model); requests go to a live server below.
# (schemathesis' lazy from_fixture loader does not work with this pytest version.)
schema = schemathesis.openapi.from_dict(create_app(Settings(model_path=Path("unused.onnx"))).openapi())


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case, live_server: str) -> None:
    """No 5xx, documented statuses, content types, headers and bodies, for generated requests."""
    # The schema can say "a file" but not "a file that decodes as an image": random bytes are
    # schema-valid yet rightly refused with 400, which this one check would call a failure.
    case.call_and_validate(base_url=live_server, excluded_checks=[positive_data_acceptance])


def _validator(spec: dict, schema: dict) -> jsonschema.Draft202012Validator:
    """A validator for one schema of the spec, its ``#/components/...`` references resolved in the spec."""
    return jsonschema.Draft202012Validator({**schema, "components": spec["components"]})


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/predict", "application/json"),
        ("/predict?format=rle", "application/vnd.tilescan.rle+json"),
        ("/predict?threshold=0.99", "application/json"),  # no region: empty lists validate too
        ("/model", "application/json"),
    ],
)
def test_real_answers_validate_against_the_documented_schema(
    live_server: str, square_png: bytes, path: str, media_type: str
) -> None:
    with httpx.Client(base_url=live_server, timeout=10) as http:
        spec = http.get("/openapi.json").json()
        if path == "/model":
            response = http.get(path)
            operation = spec["paths"]["/model"]["get"]
        else:
            response = http.post(path, files={"image": ("t.png", square_png)})
            operation = spec["paths"]["/predict"]["post"]

    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    schema = operation["responses"]["200"]["content"][media_type]["schema"]
    errors = list(_validator(spec, schema).iter_errors(response.json()))
    assert not errors, [error.message for error in errors]
    if path.startswith("/predict"):
        documented = operation["responses"]["200"]["headers"]
        assert response.headers["x-model-version"] and "X-Model-Version" in documented
