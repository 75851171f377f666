"""The Prometheus alert rules in deploy/prometheus are valid and fire when they should (promtool)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("no promtool: `make test` installs prometheus (scripts/ensure_debian_packages.sh)")
    return found


def test_the_rules_are_valid(promtool: str) -> None:
    checked = subprocess.run(
        [promtool, "check", "rules", str(RULES / "alerts.yml")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rules found" in checked.stdout + checked.stderr


def test_the_drift_alert_fires_after_30_minutes_of_a_large_window_only(promtool: str) -> None:
    tested = subprocess.run(
        [promtool, "test", "rules", "alerts.test.yml"], cwd=RULES, capture_output=True, text=True
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout + tested.stderr
