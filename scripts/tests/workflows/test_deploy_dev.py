"""deploy-dev.yml run by act: the gate blocks; an image is marked "passed dev" only after its smoke test."""

from __future__ import annotations

import pytest

from .conftest import BETTER, IMAGE_REPO, WORSE

pytestmark = pytest.mark.slow


def push_dev(sandbox, version: str, threshold: float) -> str:
    sandbox.git("checkout", "-q", "-b", "dev")
    sandbox.model(version, threshold)
    sha = sandbox.commit(f"model {version}")
    sandbox.push("dev")
    return sha


def test_a_worse_model_fails_at_the_gate_and_nothing_is_built_or_released(sandbox):
    push_dev(sandbox, "worse001", WORSE)
    run = sandbox.act("push", "deploy-dev.yml")
    assert run.returncode != 0
    assert "Failure - Main Gate against main's model" in run.output
    assert "| macro_dice improvement | >= BASE + 0.0050 | 0.7805 | 0.6154 | **FAIL** |" in run.output
    assert not run.called("build-push")
    assert not run.called("heroku")
    assert not run.called("docker")
    assert list(sandbox.registry.iterdir()) == []


def test_a_better_model_is_built_released_smoke_tested_then_marked(sandbox, serve):
    sha = push_dev(sandbox, "better01", BETTER)
    sandbox.app_url = serve(sandbox.work / "models/tilescan.onnx")
    run = sandbox.act("push", "deploy-dev.yml")
    assert run.returncode == 0, run.output[-4000:]
    tree = sandbox.git("rev-parse", "HEAD^{tree}")
    # build -> release -> smoke test -> mark, in that order
    assert run.index("build-push") < run.index("heroku release tilescan-dev") < run.index("docker buildx")
    assert f"tags={IMAGE_REPO}:sha-{sha}" in run.calls[run.index("build-push")]
    smoke_passed = run.step_index("Success - Main", "Smoke test the live app")
    assert smoke_passed < run.step_index("Run Main", "Mark the image as passed dev")
    assert "ok: /model version better01" in run.output
    assert sandbox.image_exists(f"{IMAGE_REPO}:passed-dev-{tree}")
    assert sandbox.image_exists(f"{IMAGE_REPO}:dev")
    # the registry: a version on this commit, assigned to dev, pushed to origin
    tags = sandbox.git("ls-remote", "--tags", "origin")
    assert "refs/tags/tilescan@v0.0.1" in tags
    assert "refs/tags/tilescan#dev#1" in tags


def test_a_failing_smoke_test_leaves_no_mark(sandbox, serve, tmp_path):
    from tilescan_shared.testing import write_tiny_model

    push_dev(sandbox, "better01", BETTER)
    # The dev app answers with another model than the one this commit carries.
    sandbox.app_url = serve(write_tiny_model(tmp_path / "stale.onnx", version="stale001"))
    run = sandbox.act("push", "deploy-dev.yml")
    assert run.returncode != 0
    assert run.called("heroku release tilescan-dev")
    assert "Failure - Main Smoke test the live app" in run.output
    assert "/model reports version 'stale001'" in run.output
    assert not run.called("docker buildx")
    assert not any(p.name.endswith(("_dev",)) or "passed-dev" in p.name for p in sandbox.registry.iterdir())
    assert "tilescan" not in sandbox.git("ls-remote", "--tags", "origin")


def test_a_failed_release_fails_the_run_before_the_smoke_test(sandbox, serve):
    """The release's exit status is not lost in `echo "url=$(...)"`: the step fails, nothing is marked."""
    push_dev(sandbox, "better01", BETTER)
    sandbox.app_url = serve(sandbox.work / "models/tilescan.onnx")
    run = sandbox.act("push", "deploy-dev.yml", "--env", "STANDIN_RELEASE_FAILS=1")
    assert run.returncode != 0
    assert run.called("heroku release tilescan-dev")
    assert "Failure - Main Release" in run.output
    assert "Smoke test the live app" not in run.output
    assert not run.called("docker buildx")
