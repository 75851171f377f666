from __future__ import annotations

import pytest

from tilescan_training.params import PromoteParams
from tilescan_training.promotion import gate

RULES = PromoteParams(
    metrics_file="evaluation/metrics.json",
    model_file="models/tilescan.onnx",
    primary="dice",
    min_improvement=0.005,
    floor=0.5,
    guards={"false_alarm_rate": 0.02, "iou": 0.01},
    lower_is_better=("false_alarm_rate",),
)


def run_gate(capsys: pytest.CaptureFixture[str], base: str = "HEAD") -> tuple[int, str]:
    code = gate.main(["--base", base])
    return code, capsys.readouterr().out


@pytest.fixture
def baseline(repo):
    """A committed model with Dice 0.60, false-alarm rate 0.05, IoU 0.45."""
    repo.metrics(dice=0.60)
    repo.model("model A")
    repo.commit("model A")
    return repo


def test_better_model_is_promoted(baseline, capsys):
    baseline.metrics(dice=0.62, false_alarm_rate=0.06)
    baseline.model("model B")
    code, out = run_gate(capsys)
    assert code == 0
    assert "| dice improvement | >= BASE + 0.0050 | 0.6000 | 0.6200 | pass |" in out
    assert "| false_alarm_rate guard | <= BASE + 0.0200 | 0.0500 | 0.0600 | pass |" in out
    assert "**Verdict: promote**" in out


def test_worse_model_is_refused(baseline, capsys):
    baseline.metrics(dice=0.58)
    baseline.model("model B")
    code, out = run_gate(capsys)
    assert code == 1
    assert "| dice improvement | >= BASE + 0.0050 | 0.6000 | 0.5800 | **FAIL** |" in out
    assert "failed: dice improvement" in out


def test_guard_regression_blocks_a_better_dice(baseline, capsys):
    baseline.metrics(dice=0.70, false_alarm_rate=0.08)
    baseline.model("model B")
    code, out = run_gate(capsys)
    assert code == 1
    assert "failed: false_alarm_rate guard" in out


def test_equal_metrics_from_a_new_model_do_not_clear_the_minimum_improvement(baseline, capsys):
    baseline.model("model B, retrained")
    code, out = run_gate(capsys)
    assert code == 1
    assert "failed: dice improvement" in out


def test_identical_model_passes_so_code_changes_can_deploy(baseline, capsys):
    code, out = run_gate(capsys)
    assert code == 0
    assert "model identical to BASE's" in out


def test_first_model_is_judged_on_the_floor_alone(repo, capsys):
    repo.metrics(dice=0.55, false_alarm_rate=0.9)  # guards do not apply without a baseline
    repo.model("model A")
    code, out = run_gate(capsys)
    assert code == 0
    assert "first model" in out
    repo.metrics(dice=0.45)
    code, out = run_gate(capsys)
    assert code == 1
    assert "| dice floor | >= 0.5000 | - | 0.4500 | **FAIL** |" in out


def test_missing_workspace_metrics_fail_clearly(baseline, capsys):
    (baseline.root / "evaluation/metrics.json").unlink()
    code, out = run_gate(capsys)
    assert code == 1
    assert "evaluation/metrics.json not found" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[0.6]", "must hold a JSON object"),
        ('{"dice": 0.7, "false_alarm_rate": 0.05}', "metric 'iou' is missing"),
        ('{"dice": "0.7", "false_alarm_rate": 0.05, "iou": 0.5}', "metric 'dice' is '0.7'"),
    ],
)
def test_malformed_workspace_metrics_fail_clearly(baseline, capsys, content, message):
    baseline.write("evaluation/metrics.json", content)
    code, out = run_gate(capsys)
    assert code == 1
    assert message in out


def test_unreadable_baseline_is_an_error_not_a_first_model(repo, capsys):
    repo.write("evaluation/metrics.json", "{broken")
    repo.commit("broken metrics")
    repo.metrics(dice=0.9)
    code, out = run_gate(capsys)
    assert code == 1
    assert "at `HEAD` has no usable 'dice'" in out


def test_unknown_base_revision_is_an_error(baseline, capsys):
    code, out = run_gate(capsys, base="no-such-branch")
    assert code == 1
    assert "unknown Git revision" in out


def test_judge_applies_guard_directions():
    old = {"dice": 0.6, "false_alarm_rate": 0.05, "iou": 0.45}
    verdict = gate.judge("b", {"dice": 0.7, "false_alarm_rate": 0.03, "iou": 0.435}, old, RULES)
    assert [c.passed for c in verdict.checks] == [True, True, True, False]
    assert not verdict.promote
