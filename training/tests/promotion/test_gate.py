"""``make gate``: both models re-scored on the workspace's test split (tilescan_training.testing's tiles).

Tiny models by pixel threshold: 0.9 finds the defects exactly (Dice 1.0), 0.6 adds a ring (Dice 0.780),
0.5 adds false alarms on every free tile, 0.4 both rings and false alarms (Dice 0.615).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tilescan_shared.masks import DecisionRule
from tilescan_training.manifest import Record
from tilescan_training.params.promote import PromoteParams
from tilescan_training.promotion import gate
from tilescan_training.scoring import Scored

RULES = PromoteParams(
    metrics_file="evaluation/metrics.json",
    candidate_file="models/candidate.onnx",
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
    """A committed model with Dice 0.780, no false alarm, every defect tile found."""
    repo.model(0.6, version="A")
    repo.commit("model A")
    return repo


def test_better_model_is_promoted(baseline, capsys):
    baseline.model(0.9, version="B")
    code, out = run_gate(capsys)
    assert code == 0
    assert "| dice improvement | >= BASE + 0.0050 | 0.7805 | 1.0000 | pass |" in out
    assert "| false_alarm_rate guard | <= BASE + 0.0200 | 0.0000 | 0.0000 | pass |" in out
    assert "| recall guard | >= BASE - 0.0200 | 1.0000 | 1.0000 | pass |" in out
    assert "**Verdict: promote**" in out


def test_the_verdict_says_how_well_the_test_tiles_resolve_the_dice_difference(baseline, capsys):
    _, out = run_gate(capsys)  # the same model: no draw of the tiles gives a difference
    assert "Test Dice, workspace - `HEAD`: +0.0000; 95% paired bootstrap over its 4 defect tiles" in out
    assert "[+0.0000, +0.0000]" in out
    baseline.model(0.9, version="B")  # every (alike) defect tile gains the same: so does every draw
    _, out = run_gate(capsys)
    assert (
        "workspace - `HEAD`: +0.2195; 95% paired bootstrap over its 4 defect tiles: [+0.2195, +0.2195]" in out
    )


def _answers(
    found: list[bool], classes: list[str] | None = None, sides: list[int] | None = None
) -> gate.Answers:
    """Tiles with a square defect each (``sides``, default 4 pixels; class ``crack`` unless ``classes``),
    answered exactly where ``found``, else not at all; one free tile."""
    scored = []
    for i, hit in enumerate([*found, False]):
        truth = np.zeros((8, 8), np.uint8)
        defect = i < len(found)
        side = sides[i] if defect and sides else 4
        if defect:
            truth[:side, :side] = 255
        cls = (classes[i] if classes else "crack") if defect else "free"
        record = Record(f"t{i}", cls, "", "", 8, 8, side * side if defect else 0, "", "")
        probability = (truth / 255.0 if hit else np.zeros((8, 8))).astype(np.float32)
        scored.append(Scored(record, truth, truth, probability, None))
    return gate.Answers(scored, DecisionRule(threshold=0.5))


def test_the_dice_interval_spans_what_other_draws_of_the_tiles_give():
    new, old = _answers([True, True, True, True]), _answers([True, False, True, False])
    resolution = gate.dice_difference(new, old)
    assert resolution.tiles == 4
    assert resolution.difference == pytest.approx(1 - 2 * 32 / (2 * 32 + 32))
    # Draws of mostly found tiles differ little, draws of mostly missed ones a lot.
    assert 0 <= resolution.low < resolution.difference < resolution.high <= 1
    assert gate.dice_difference(_answers([]), _answers([])) == gate.Resolution("dice", 0.0, 0.0, 0.0, 0)
    with pytest.raises(ValueError, match="different tiles"):
        gate.dice_difference(new, _answers([True, True, True]))


def test_the_macro_interval_weighs_each_class_the_same():
    """A big Uneven defect found by both, a small Blowhole found by one: micro Dice hardly moves."""
    classes, sides = ["uneven", "blowhole"], [8, 2]
    new, old = _answers([True, True], classes, sides), _answers([True, False], classes, sides)
    micro = gate.dice_difference(new, old)
    macro = gate.dice_difference(new, old, "macro_dice")
    assert micro.difference == pytest.approx(1 - 2 * 64 / (2 * 64 + 4))
    assert macro.metric == "macro_dice" and macro.difference == pytest.approx(0.5)
    # Every draw holds the Uneven tile or the Blowhole tile or both: 0, 0.5 or 1 gained.
    assert 0 <= macro.low <= 0.5 <= macro.high <= 1


def test_worse_model_is_refused(baseline, capsys):
    baseline.model(0.4, version="B")
    code, out = run_gate(capsys)
    assert code == 1
    assert "| dice improvement | >= BASE + 0.0050 | 0.7805 | 0.6154 | **FAIL** |" in out
    assert "failed: dice improvement, false_alarm_rate guard, iou guard" in out


def test_guard_regression_blocks_a_better_dice(baseline, capsys):
    baseline.model(0.9, version="B", tile_threshold=0.5)  # exact masks, but every free tile flagged
    code, out = run_gate(capsys)
    assert code == 1
    assert "| dice improvement | >= BASE + 0.0050 | 0.7805 | 1.0000 | pass |" in out
    assert "failed: false_alarm_rate guard" in out


def test_recorded_metrics_are_not_trusted(baseline, capsys):
    """A baseline that claims a high Dice is re-scored: the claim does not raise the bar."""
    baseline.write("evaluation/metrics.json", json.dumps({"dice": 0.99, "iou": 0.99, "false_alarm_rate": 0}))
    baseline.commit("claims")
    baseline.model(0.9, version="B")
    code, out = run_gate(capsys)
    assert code == 0
    assert "0.7805 | 1.0000 | pass" in out


def test_equal_scores_from_a_new_model_do_not_clear_the_minimum_improvement(baseline, capsys):
    baseline.model(0.6, version="A, retrained")
    code, out = run_gate(capsys)
    assert code == 1
    assert "failed: dice improvement" in out


def test_identical_model_passes_so_code_changes_can_deploy(baseline, capsys):
    code, out = run_gate(capsys)
    assert code == 0
    assert "the same network and rule as BASE's" in out


def test_first_model_is_judged_on_the_floor_alone(repo, capsys):
    repo.model(0.5)  # false alarms everywhere: guards do not apply without a baseline
    code, out = run_gate(capsys)
    assert code == 0
    assert "first model" in out
    repo.model(0.4, tile_threshold=1.01)  # every tile judged defect-free: no defect pixel found
    code, out = run_gate(capsys)
    assert code == 1
    assert "| dice floor | >= 0.5000 | - | 0.0000 | **FAIL** |" in out


def test_missing_workspace_model_fails_clearly(baseline, capsys):
    (baseline.root / "models/tilescan.onnx").unlink()
    code, out = run_gate(capsys)
    assert code == 1
    assert "models/tilescan.onnx not found" in out


def test_missing_test_split_fails_clearly(baseline, capsys):
    (baseline.root / "data/split.csv").unlink()
    code, out = run_gate(capsys)
    assert code == 1
    assert "run `make data`" in out


def test_unknown_base_revision_is_an_error(baseline, capsys):
    code, out = run_gate(capsys, base="no-such-branch")
    assert code == 1
    assert "unknown git revision 'no-such-branch'" in out


def test_judge_applies_guard_directions():
    old = {"dice": 0.6, "false_alarm_rate": 0.05, "iou": 0.45}
    verdict = gate.judge("b", {"dice": 0.7, "false_alarm_rate": 0.03, "iou": 0.435}, old, RULES)
    assert [c.passed for c in verdict.checks] == [True, True, True, False]
    assert not verdict.promote
