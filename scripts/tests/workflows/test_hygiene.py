"""What the workflows promise, read from their files: pipefail, pinned tools, tokens only where needed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

WORKFLOWS = sorted((Path(__file__).resolve().parents[3] / ".github/workflows").glob("*.yml"))


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def steps(workflow: dict):
    for name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield name, step


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_shell_step_runs_with_pipefail(path):
    # GitHub's default `bash -e {0}` has no pipefail: `make gate | tee` would pass whatever the gate says.
    assert load(path)["defaults"]["run"]["shell"] == "bash"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_checkout_leaves_a_token_in_git_config(path):
    for job, step in steps(load(path)):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, f"{path.name}: {job}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_the_cml_version_is_pinned(path):
    for job, step in steps(load(path)):
        if step.get("uses", "").startswith("iterative/setup-cml@"):
            version = str(step["with"]["version"])
            assert version[0].isdigit() and version.count(".") == 2, f"{path.name}: {job}: {version}"


def test_only_the_steps_that_push_or_comment_get_a_token_in_the_train_job():
    train = load(Path(WORKFLOWS[0]).parent / "experiment.yml")["jobs"]["train"]
    assert "secrets." not in str(train.get("env", {}))
    with_token = [s["name"] for s in train["steps"] if "secrets." in str(s.get("env", {}))]
    assert with_token == [
        "Pull request into dev, with the report as its comment",
        "Merge automatically if the gate passes against dev",
    ]
