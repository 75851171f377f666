"""``make promote`` and ``make check-served``: the served model changes only through the gate."""

from __future__ import annotations

import pytest

from tilescan_training.promotion import promote, served

INT8_PASSED = {"int8": {"passed": True}}


def test_a_better_candidate_becomes_the_served_model(repo, capsys):
    repo.model(0.6, version="A")
    repo.candidate(0.9, version="B")
    assert promote.main([]) == 0
    assert (repo.root / "models/tilescan.onnx").read_bytes() == (
        repo.root / "models/candidate.onnx"
    ).read_bytes()
    assert "models/tilescan.onnx is now the candidate" in capsys.readouterr().out


def test_the_int8_sibling_is_promoted_with_its_model_and_never_left_stale(repo):
    served_int8 = repo.root / "models/tilescan.int8.onnx"
    candidate_int8 = repo.root / "models/candidate.int8.onnx"
    repo.model(0.4, version="A")
    repo.model(0.4, version="A", path="models/tilescan.int8.onnx")
    repo.candidate(0.6, version="B")
    repo.model(0.6, version="B", path="models/candidate.int8.onnx")
    assert promote.main([]) == 0
    assert not served_int8.exists()  # not A's, and B's int8 failed evaluation: B does not list it
    repo.candidate(0.9, version="C", variants=INT8_PASSED)
    repo.model(0.9, version="C", path="models/candidate.int8.onnx", variants=INT8_PASSED)
    assert promote.main([]) == 0
    assert served_int8.read_bytes() == candidate_int8.read_bytes()


def test_a_worse_candidate_leaves_the_served_model_alone(repo, capsys):
    repo.model(0.6, version="A")
    before = (repo.root / "models/tilescan.onnx").read_bytes()
    repo.candidate(0.4, version="B")
    assert promote.main([]) == 1
    assert (repo.root / "models/tilescan.onnx").read_bytes() == before
    out = capsys.readouterr().out
    assert "failed: dice improvement" in out
    assert "models/tilescan.onnx is unchanged" in out


def test_without_a_candidate_nothing_is_promoted(repo, capsys):
    repo.model(0.6, version="A")
    assert promote.main([]) == 1
    assert "models/candidate.onnx not found" in capsys.readouterr().out


@pytest.fixture
def history(repo):
    """A served model A, then a code-only commit on top."""
    repo.model(0.6, version="A")
    repo.commit("model A")
    repo.write("README.md", "code only")
    repo.commit("docs")
    return repo


def test_check_served_passes_a_model_promoted_through_the_gate(history, capsys):
    history.model(0.9, version="B")
    history.commit("model B")
    history.write("README.md", "more code")
    history.commit("docs again")  # the baseline is the model before B, however many commits ago
    assert served.main([]) == 0
    out = capsys.readouterr().out
    assert "| dice improvement | >= BASE + 0.0050 | 0.7805 | 1.0000 | pass |" in out


def test_check_served_fails_a_commit_that_swaps_in_a_worse_model(history, capsys):
    history.model(0.4, version="B")
    history.commit("a worse model, committed by hand")
    assert served.main([]) == 1
    assert "failed: dice improvement" in capsys.readouterr().out


def test_check_served_judges_an_uncommitted_swap_against_head(history, capsys):
    history.model(0.5, version="B")  # same Dice, false alarms everywhere
    assert served.main([]) == 1
    out = capsys.readouterr().out
    assert "`HEAD`" in out and "failed: dice improvement, false_alarm_rate guard" in out


def test_check_served_judges_the_first_model_on_the_floor(repo, capsys):
    repo.model(0.6, version="A")
    repo.commit("model A")
    assert served.main([]) == 0
    assert "first model: no `models/tilescan.onnx`" in capsys.readouterr().out
