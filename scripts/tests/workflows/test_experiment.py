"""experiment.yml run by act: train, push, report, pull request, comment, then the gated auto-merge."""

from __future__ import annotations

import json
import re

import pytest
from ruamel.yaml import YAML

from tilescan_shared.testing import write_tiny_model
from tilescan_training.promotion.gate import load_test_split, model_scores

from .conftest import BETTER, WORSE

pytestmark = pytest.mark.slow


@pytest.fixture
def experiment(sandbox):
    """dev = main's model; an exp/ branch; the train job without its GPU container.

    act runs a job's `container:` only through a Docker daemon, which the tests do not have; every step
    of the job runs as written, on the host.
    """
    sandbox.git("checkout", "-q", "-b", "dev")
    sandbox.push("dev")
    sandbox.git("checkout", "-q", "-b", "exp/wider-net")
    yaml = YAML()
    path = sandbox.work / ".github/workflows/experiment.yml"
    workflow = yaml.load(path)
    assert workflow["jobs"]["train"].pop("container")["options"].startswith("--gpus all")
    yaml.dump(workflow, path)
    sandbox.write(
        "params.yaml",
        re.sub(
            r"base_channels: (\d+)",
            lambda m: f"base_channels: {2 * int(m.group(1))}",
            (sandbox.work / "params.yaml").read_text(),
        ),
    )
    sandbox.commit("exp: a wider net")
    sandbox.push("exp/wider-net")
    return sandbox


def trained(sandbox, version: str, threshold: float) -> None:
    """What `dvc exp run` (stood in) leaves in the workspace: the candidate model, its metrics, the lock
    file and the training curves (the files the pull request commits)."""
    out = sandbox.root / "trained"
    (out / "models").mkdir(parents=True)
    (out / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    (out / "dvclive").mkdir()
    (out / "dvclive/metrics.json").write_text('{"val": {"score": 0.9}}\n')
    write_tiny_model(out / "models/candidate.onnx", threshold=threshold, version=version)
    (out / "evaluation").mkdir()
    names = ["dice", "iou", "false_alarm_rate"]
    metrics, _ = model_scores(out / "models/candidate.onnx", names, load_test_split(sandbox.work))
    (out / "evaluation/metrics.json").write_text(json.dumps(metrics) + "\n")


def test_a_better_experiment_is_reported_and_merged_automatically(experiment):
    trained(experiment, "wider001", BETTER)
    run = experiment.act("push", "experiment.yml")
    assert run.returncode == 0, run.output[-4000:]
    assert run.called("setup-cml version=0.20.4")
    assert run.called("cml runner launch")
    order = [
        "dvc exp run",
        "dvc push",
        "cml pr create",
        "cml comment create --target=pr/7 --watermark-title=tilescan experiment exp/wider-net --update",
        "gh pr merge https://github.com/acme/tilescan/pull/7 --auto --merge",
    ]
    positions = [run.index(call) for call in order]
    assert positions == sorted(positions)
    assert run.step_index("Success - Main", "Report against dev") < run.step_index("Run Main", "Pull request")
    comment = run.calls[run.index("cml comment create")]
    assert comment.endswith("--no-publish report.md")  # no repository variable: no public image host
    report = (experiment.state / "comment.md").read_text()
    assert "**Verdict: promote**" in report
    assert "base_channels" in report
    assert not run.called("gh pr edit")
    assert "models/tilescan.onnx is now the candidate" in run.output  # make promote, before the PR
    assert "M\tmodels/tilescan.onnx" in (experiment.state / "pr-files.txt").read_text().splitlines()


def test_a_worse_experiment_is_labelled_and_commented_not_merged(experiment):
    trained(experiment, "wider002", WORSE)
    run = experiment.act("push", "experiment.yml", "--var", "CML_PUBLISH_URL=https://assets.acme.test")
    assert run.returncode == 0, run.output[-4000:]
    assert not run.called("gh pr merge")
    assert run.called("gh pr edit https://github.com/acme/tilescan/pull/7 --add-label gate-rejected")
    assert run.index("gh label create gate-rejected") < run.index("gh pr edit")
    assert run.calls[run.index("cml comment create")].endswith(
        "--publish-url=https://assets.acme.test report.md"
    )
    reason = (experiment.state / "gh-comment.md").read_text()
    assert (
        "Not merged automatically" in reason
        and "macro_dice improvement | >= BASE + 0.0050 | 0.7805 | 0.6154 | **FAIL**" in reason
    )
    assert "models/tilescan.onnx is unchanged" in run.output  # the served model stays dev's
