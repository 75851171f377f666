"""Workspace-vs-revision numbers from DVC and git, as plain values the gate and the report can use."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class PromotionError(RuntimeError):
    """The comparison cannot be made: missing or malformed metrics, an unknown revision, a DVC failure."""


@dataclass(frozen=True)
class Change:
    """One value at the baseline revision (``old``) and in the workspace (``new``); ``None`` = absent."""

    old: Any
    new: Any

    @property
    def delta(self) -> float | None:
        if is_number(self.old) and is_number(self.new):
            return float(self.new) - float(self.old)
        return None


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _dvc(args: list[str], repo: Path) -> Any:
    # The interpreter's own dvc, so `make` and the workflows need no PATH set-up.
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args, "--json"], cwd=repo, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise PromotionError(f"`dvc {' '.join(args)}` failed: {proc.stderr.strip() or proc.stdout.strip()}")
    try:
        return json.loads(proc.stdout or "{}")
    except json.JSONDecodeError as err:
        raise PromotionError(f"`dvc {' '.join(args)}` printed no JSON: {proc.stdout[:200]!r}") from err


def _changes(raw: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Change]]:
    return {
        path: {name: Change(v.get("old"), v.get("new")) for name, v in sorted(values.items())}
        for path, values in raw.items()
    }


def metrics_diff(base: str, repo: Path, targets: list[str] | None = None) -> dict[str, dict[str, Change]]:
    """``{metrics file: {flattened metric name: Change}}`` for every metric, changed or not.

    Nested keys come flattened by DVC (``per_class.MT_Crack.dice``). A file that one side lacks, or
    cannot parse, shows up with ``None`` on that side: callers decide what that means.
    """
    args = ["metrics", "diff", base, "--all"]
    if targets:
        args += ["--targets", *targets]
    return _changes(_dvc(args, repo))


def params_diff(base: str, repo: Path) -> dict[str, dict[str, Change]]:
    """``{params file: {param: Change}}`` for the pipeline params that differ from ``base``."""
    return _changes(_dvc(["params", "diff", base], repo))


def _git(args: list[str], repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)


def exists_at(base: str, path: str, repo: Path) -> bool:
    """Whether ``path`` is committed at revision ``base``."""
    return _git(["cat-file", "-e", f"{base}:{path}"], repo).returncode == 0


def same_file_as(base: str, path: str, repo: Path) -> bool:
    """Whether the workspace's ``path`` is byte-identical to the one committed at ``base``."""
    committed = _git(["rev-parse", "--verify", "--quiet", f"{base}:{path}"], repo)
    if committed.returncode != 0 or not (repo / path).is_file():
        return False
    workspace = _git(["hash-object", "--", path], repo)
    return workspace.returncode == 0 and workspace.stdout.strip() == committed.stdout.strip()
