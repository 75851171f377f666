"""deploy-prod.yml run by act: only an image that passed dev is promoted, and without a rebuild."""

from __future__ import annotations

import pytest

from .conftest import BETTER, IMAGE_REPO

pytestmark = pytest.mark.slow


def merge_dev_into_main(sandbox) -> None:
    sandbox.git("checkout", "-q", "main")
    sandbox.git("merge", "-q", "--no-ff", "-m", "merge dev", "dev")
    sandbox.push("main")


def test_an_image_that_never_passed_dev_is_refused(sandbox):
    sandbox.git("checkout", "-q", "-b", "dev")
    sandbox.model("better01", BETTER)
    sha = sandbox.commit("model better01")
    sandbox.push("dev")
    # Built by deploy-dev, but its smoke test never passed: a candidate, not marked.
    sandbox.add_image(f"{IMAGE_REPO}:sha-{sha}")
    merge_dev_into_main(sandbox)
    run = sandbox.act("push", "deploy-prod.yml")
    assert run.returncode != 0
    assert "Failure - Main Find the image that passed dev and the version prod runs" in run.output
    assert "no image passed dev for this tree" in run.output
    assert not run.called("heroku")
    assert not sandbox.image_exists(f"{IMAGE_REPO}:prod")


def test_the_image_that_passed_dev_is_promoted_without_a_rebuild(sandbox, serve):
    sandbox.git("checkout", "-q", "-b", "dev")
    sandbox.model("better01", BETTER)
    sandbox.commit("model better01")
    sandbox.push("dev")
    sandbox.app_url = serve(sandbox.work / "models/tilescan.onnx")
    assert sandbox.act("push", "deploy-dev.yml").returncode == 0
    tree = sandbox.git("rev-parse", "HEAD^{tree}")
    merge_dev_into_main(sandbox)

    run = sandbox.act("push", "deploy-prod.yml")
    assert run.returncode == 0, run.output[-4000:]
    assert not run.called("build-push")
    passed = f"{IMAGE_REPO}:passed-dev-{tree}"
    assert run.index(f"docker pull --quiet {passed}") < run.index("heroku release tilescan-prod")
    mark = run.index(f"docker buildx imagetools create --tag {IMAGE_REPO}:prod")
    assert run.index("heroku release tilescan-prod") < mark
    assert "**Verdict: promote**" in run.output
    assert sandbox.image_exists(f"{IMAGE_REPO}:prod")
    sandbox.git("fetch", "-q", "--tags", "origin")
    assert "| v0.0.1 | dev, prod |" in sandbox.models()
