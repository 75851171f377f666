"""``make check-served`` (run by ``.ci/run``): the served model may only have changed through the gate.

The baseline is the served model before its latest change: ``HEAD``'s file when the workspace's differs
from it (a swap not yet committed), else the file at the parent of the last commit that changed it. The
check is ``make gate`` against that revision, so a commit that swaps in a model the gate rejects fails
CI, whether it came through ``make promote`` or not. A model with no earlier version is judged on the
floor alone. Exits 0 when the served model passes, 1 when it does not or cannot be judged.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from tilescan_training.params.loading import load_section
from tilescan_training.params.promote import PromoteParams
from tilescan_training.promotion.diff import PromotionError, exists_at, same_file_as
from tilescan_training.promotion.gate import Verdict, safe_compare, to_markdown


def _git(args: list[str], repo: Path) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if done.returncode != 0:
        raise PromotionError(f"`git {' '.join(args)}` failed: {done.stderr.strip()}")
    return done.stdout.strip()


def baseline_revision(path: str, repo: Path = Path()) -> str:
    """The revision whose ``path`` the served model replaced (see the module docstring)."""
    if exists_at("HEAD", path, repo) and not same_file_as("HEAD", path, repo):
        return "HEAD"
    last = _git(["log", "-1", "--format=%h", "--", path], repo)
    if not last:
        raise PromotionError(f"{path} was never committed")
    if not _git(["rev-list", "--parents", "-n", "1", last], repo).split()[1:]:
        return last  # the root commit brought it: compared with itself, only the floor can fail
    return f"{last}^"


def check(repo: Path = Path(), params: Path = Path("params.yaml")) -> Verdict:
    rules = load_section(repo / params, "promote", PromoteParams)
    try:
        base = baseline_revision(rules.model_file, repo)
    except PromotionError as err:
        return Verdict("?", error=str(err))
    return safe_compare(base, rules, repo)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args(argv)
    verdict = check()
    print(f"### Served model vs the one it replaced (`{verdict.base}`), re-scored on the test split\n")
    print(to_markdown(verdict), end="")
    return 0 if verdict.promote else 1


if __name__ == "__main__":
    sys.exit(main())
