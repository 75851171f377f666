"""tilescan's model registry: GTO git tags over the ``tilescan`` artifact that ``dvc.yaml`` declares.

A version (``tilescan@v0.3.0``) is registered on the commit whose model passed dev; a stage assignment
(``tilescan#prod#7``) says which version a stage runs, the latest assignment winning, so a rollback is one
more assignment of an older version. The image of a version is the one that passed dev for its source
tree (``<image repo>:passed-dev-<tree>``), so a promotion or a rollback never rebuilds anything.

    model_registry.py show                          versions, stages and their test metrics (`make models`)
    model_registry.py register-dev [--push]         register HEAD's model (if new) and assign it to dev
    model_registry.py version-of-tree               the dev-passed version with HEAD's source tree
    model_registry.py stage-commit STAGE            the commit of the version STAGE runs now
    model_registry.py assign STAGE VERSION [--push] assign STAGE to an already registered VERSION
    model_registry.py image VERSION --image-repo R  the image that passed dev for VERSION
    model_registry.py passed-dev-image --image-repo R  the tag HEAD's image gets once it passed dev

The deploy workflows and ``scripts/rollback.sh`` call it; it needs only ``gto`` (its Python API) and git,
and ``show`` the light install (``make models``) to read each version's metrics from its model file.
``--push`` pushes the registry's tags to ``origin``; with ``GITHUB_TOKEN`` set, that one push carries the
token (as a git config entry in its environment, never written to .git/config).
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import gto.api
from gto.exceptions import GTOException

ARTIFACT = "tilescan"
METRICS = ("dice", "iou", "false_alarm_rate")


class RegistryError(RuntimeError):
    """The registry cannot answer: nothing registered, an unknown version, a git or gto failure."""


@dataclass
class Version:
    """One registered version, the commit it names and the stages assigned to it now."""

    name: str
    commit: str
    stages: list[str] = field(default_factory=list)


def _run(args: list[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RegistryError(f"`{' '.join(args)}` failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def _push_env() -> dict[str, str]:
    """The environment for a push: the workflow token as a one-off git config entry, never written."""
    env = dict(os.environ)
    token = env.get("GITHUB_TOKEN")
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env |= {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.https://github.com/.extraheader",
            "GIT_CONFIG_VALUE_0": f"AUTHORIZATION: basic {basic}",
        }
    return env


def git(*args: str) -> str:
    return _run(["git", *args]).strip()


def push_tags() -> None:
    """Push the registry's tags to origin with git itself (gto's own push would ignore the token)."""
    refspec = f"refs/tags/{ARTIFACT}*:refs/tags/{ARTIFACT}*"
    _run(["git", "push", "--quiet", "origin", refspec], env=_push_env())


def _stages() -> dict[str, str]:
    """``{stage: version}``: what each stage runs now (its latest assignment)."""
    return dict(gto.api.show(".").get(ARTIFACT, {}).get("stage", {}))


def versions() -> list[Version]:
    """Every registered, not deprecated version, newest first, with the stages it holds now."""
    if ARTIFACT not in gto.api.show("."):
        return []  # nothing registered yet (gto refuses to show an artifact without tags)
    found = [
        Version(v["version"], v["commit_hexsha"]) for v in gto.api.show(".", ARTIFACT) if v["registrations"]
    ]
    by_name = {v.name: v for v in found}
    for stage, holder in _stages().items():
        if holder in by_name:
            by_name[holder].stages.append(stage)
    return found


def _version(name: str) -> Version:
    for version in versions():
        if version.name == name:
            return version
    raise RegistryError(f"{ARTIFACT} has no registered version {name!r}: see `make models`")


def _tree(rev: str) -> str:
    return git("rev-parse", f"{rev}^{{tree}}")


def version_of_tree(rev: str = "HEAD") -> Version:
    """The registered version whose commit has ``rev``'s source tree and was assigned to dev."""
    tree = _tree(rev)
    for version in versions():
        if _tree(version.commit) == tree and _ever_in(version, "dev"):
            return version
    raise RegistryError(
        f"no version of {ARTIFACT} passed dev with the tree of {rev} ({tree}): "
        "change main only by merging dev"
    )


def _ever_in(version: Version, stage: str) -> bool:
    # gto puts each assignment tag on the version's commit, and a commit carries one version.
    return bool(git("tag", "--points-at", version.commit, "--list", f"{ARTIFACT}#{stage}#*"))


def register_dev(push: bool) -> str:
    """Register HEAD's model unless a version already names HEAD's commit; assign it to dev."""
    head = git("rev-parse", "HEAD")
    existing = [v for v in versions() if v.commit == head]
    name = existing[0].name if existing else gto.api.register(".", ARTIFACT, "HEAD").version
    assign("dev", name, push)
    return name


def assign(stage: str, version: str, push: bool) -> None:
    """Assign ``stage`` to ``version`` (already registered); a rollback is an assignment too."""
    _version(version)
    _after_last_assignment(stage)
    gto.api.assign(".", ARTIFACT, stage, version=version)
    if push:
        push_tags()


def _after_last_assignment(stage: str) -> None:
    """Wait until the clock is past the second of ``stage``'s latest assignment tag.

    gto resolves a stage to its latest assignment by the tags' dates, which have one-second
    resolution: two assignments in the same second would leave the order to chance.
    """
    dates = git("for-each-ref", "--format=%(taggerdate:unix)", f"refs/tags/{ARTIFACT}#{stage}#*").split()
    if dates:
        time.sleep(max(0.0, max(map(int, dates)) + 1 - time.time()))


def stage_commit(stage: str) -> str:
    holder = _stages().get(stage)
    if holder is None:
        raise RegistryError(f"no version of {ARTIFACT} is assigned to {stage}")
    return _version(holder).commit


def passed_dev_image(image_repo: str, rev: str = "HEAD") -> str:
    """The tag deploy-dev gives the image of ``rev``'s source tree once it passed dev: a merge of dev into
    main makes a new commit but, without other changes, the same tree, so prod finds that very image."""
    return f"{image_repo}:passed-dev-{_tree(rev)}"


def image(version: str, image_repo: str) -> str:
    """The image that passed dev for ``version``'s source tree."""
    found = _version(version)
    if not _ever_in(found, "dev"):
        raise RegistryError(f"{ARTIFACT} {version} never passed dev: there is no image to deploy")
    return passed_dev_image(image_repo, found.commit)


def _metrics_at(commit: str) -> dict[str, float]:
    """The test metrics that the artifact's model file at ``commit`` carries (stamped by evaluate)."""
    # Imported here: only `show` reads models; the workflows run the other commands with gto alone.
    import onnx
    import yaml
    from google.protobuf.message import DecodeError

    from tilescan_shared.model_info import read_info

    path = yaml.safe_load(Path("dvc.yaml").read_text())["artifacts"][ARTIFACT]["path"]
    proc = subprocess.run(["git", "show", f"{commit}:{path}"], capture_output=True)
    if proc.returncode != 0:
        return {}
    try:
        metrics = read_info(onnx.load_from_string(proc.stdout)).metrics
    except (DecodeError, ValueError):
        return {}
    return {name: metrics[name] for name in METRICS if isinstance(metrics.get(name), int | float)}


def table() -> str:
    """Markdown: one row per version, its stages now, commit and test metrics."""
    header = f"| version | stages | commit | {' | '.join(METRICS)} |"
    rows = [header, "| --- | --- | --- |" + " ---: |" * len(METRICS)]
    for version in versions():
        metrics = _metrics_at(version.commit)
        values = " | ".join(f"{metrics[m]:.4f}" if m in metrics else "-" for m in METRICS)
        stages = ", ".join(sorted(version.stages)) or "-"
        rows.append(f"| {version.name} | {stages} | {version.commit[:10]} | {values} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("show")
    sub.add_parser("register-dev").add_argument("--push", action="store_true")
    sub.add_parser("version-of-tree")
    sub.add_parser("stage-commit").add_argument("stage")
    assign_parser = sub.add_parser("assign")
    assign_parser.add_argument("stage")
    assign_parser.add_argument("version")
    assign_parser.add_argument("--push", action="store_true")
    image_parser = sub.add_parser("image")
    image_parser.add_argument("version")
    image_parser.add_argument("--image-repo", required=True)
    passed_parser = sub.add_parser("passed-dev-image")
    passed_parser.add_argument("--image-repo", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "show":
            print(table(), end="")
        elif args.command == "register-dev":
            print(register_dev(args.push))
        elif args.command == "version-of-tree":
            print(version_of_tree().name)
        elif args.command == "stage-commit":
            print(stage_commit(args.stage))
        elif args.command == "assign":
            assign(args.stage, args.version, args.push)
            print(f"{ARTIFACT} {args.version} -> {args.stage}")
        elif args.command == "passed-dev-image":
            print(passed_dev_image(args.image_repo))
        else:
            print(image(args.version, args.image_repo))
    except (RegistryError, GTOException) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
