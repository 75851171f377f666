"""The GTO model registry on a throwaway repository with real gto: `make models` and rollbacks."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import BETTER, IMAGE_REPO, PROJECT

pytestmark = pytest.mark.slow


def passed_dev(sandbox, version: str | None = None, threshold: float | None = None) -> str:
    """What deploy-dev does once the dev app's smoke test passed: mark the image, register, assign dev."""
    if version is not None and threshold is not None:
        sandbox.model(version, threshold)
        sandbox.commit(f"model {version}")
    tree = sandbox.git("rev-parse", "HEAD^{tree}")
    sandbox.add_image(f"{IMAGE_REPO}:passed-dev-{tree}")
    return registry(sandbox, "register-dev", "--push").stdout.strip()


def registry(sandbox, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sandbox.venv / "bin/python", "scripts/model_registry.py", *args],
        cwd=sandbox.work,
        env=sandbox.env,
        capture_output=True,
        text=True,
        check=check,
    )


@pytest.fixture
def two_versions(sandbox):
    """v0.0.1 (the first model) and v0.0.2 (a better one) passed dev; prod runs v0.0.2."""
    assert passed_dev(sandbox) == "v0.0.1"
    assert passed_dev(sandbox, "second01", BETTER) == "v0.0.2"
    registry(sandbox, "assign", "prod", "v0.0.2", "--push")
    sandbox.add_image(f"{IMAGE_REPO}:prod")
    return sandbox


def test_make_models_prints_versions_stages_and_metrics(two_versions):
    table = two_versions.models()
    assert "| v0.0.2 | dev, prod |" in table
    assert "| 1.0000 | 1.0000 | 0.0000 |" in table
    assert "| v0.0.1 | - |" in table
    assert "| 0.7805 | 0.6400 | 0.0000 |" in table


def test_dvc_yaml_declares_the_registered_model_as_a_dvc_artifact():
    from dvc.repo import Repo

    artifact = Repo(str(PROJECT)).artifacts.read()["dvc.yaml"]["tilescan"]
    assert (artifact.type, artifact.path) == ("model", "models/tilescan.onnx")
    assert artifact.desc and "segmentation" in artifact.labels


def test_local_rollback_redeploys_the_earlier_image_and_reassigns_prod(two_versions, serve):
    box = two_versions
    first_tree = box.git("rev-parse", "HEAD~1^{tree}")
    # The prod app, once the rollback released v0.0.1's image: the service running v0.0.1's model.
    first_model = box.root / "first.onnx"
    first_model.write_bytes(box.show("HEAD~1:models/tilescan.onnx"))
    url = serve(first_model)
    proc = box.make(
        "rollback",
        "VERSION=v0.0.1",
        env={
            "HEROKU_APP": "tilescan-prod",
            "IMAGE_REPO": IMAGE_REPO,
            "HEROKU_API_KEY": "k",
            "STANDIN_APP_URL": url,
        },
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = box.calls()
    image = f"{IMAGE_REPO}:passed-dev-{first_tree}"
    assert f"docker pull --quiet {image}" in calls
    assert any(c.startswith("heroku release tilescan-prod") for c in calls)
    assert not any(c.startswith("build-push") for c in calls)
    assert "ok: /model version base0001" in proc.stdout
    prod = (box.registry / f"{IMAGE_REPO}:prod".replace("/", "_").replace(":", "_")).read_text().strip()
    assert prod == image
    assert "| v0.0.1 | prod |" in box.models()
    assert "refs/tags/tilescan#prod#4" in box.git("ls-remote", "--tags", "origin")


def test_a_version_that_never_passed_dev_cannot_be_rolled_back_to(sandbox):
    gto = [sandbox.venv / "bin/gto", "register", "tilescan", "HEAD"]
    subprocess.run(gto, cwd=sandbox.work, check=True, capture_output=True)
    proc = registry(sandbox, "image", "v0.0.1", "--image-repo", IMAGE_REPO, check=False)
    assert proc.returncode == 1
    assert "never passed dev" in proc.stderr
    proc = sandbox.make("rollback", "VERSION=v0.0.9", env={"HEROKU_APP": "a", "IMAGE_REPO": IMAGE_REPO})
    assert proc.returncode != 0
    assert "no registered version 'v0.0.9'" in proc.stderr


def test_rollback_by_workflow_dispatch(two_versions, serve, tmp_path):
    box = two_versions
    first_model = tmp_path / "first.onnx"
    first_model.write_bytes(box.show("HEAD~1:models/tilescan.onnx"))
    box.app_url = serve(first_model)
    run = box.act("workflow_dispatch", "deploy-prod.yml", "--input", "rollback_to=v0.0.1")
    assert run.returncode == 0, run.output[-4000:]
    assert "Job 'gate'" not in run.output and "[deploy-prod/gate]" not in run.output
    assert run.called("heroku release tilescan-prod")
    assert not run.called("build-push")
    box.git("fetch", "-q", "--tags", "origin")
    assert "| v0.0.1 | prod |" in box.models()
