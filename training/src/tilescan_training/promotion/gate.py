"""``make gate BASE=<rev>``: may the workspace's model be promoted over the one committed at ``BASE``?

Exits 0 (promote) or 1 (keep ``BASE``'s model, or the comparison could not be made) and prints the
verdict as a Markdown table. The rules are ``promote:`` in ``params.yaml``:

* the primary metric (higher is better) must reach ``floor``, always;
* it must beat ``BASE``'s by at least ``min_improvement``, unless the model file is byte-identical to
  ``BASE``'s (a code-only change re-deploys the same model);
* each guard metric may regress by at most its tolerance (upwards for ``lower_is_better`` metrics).

A first model, with no metrics file at ``BASE``, is judged on the floor alone. Missing or malformed
metrics in the workspace, or a baseline file DVC cannot read, are errors rather than passes.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tilescan_training.params import PromoteParams, load_params
from tilescan_training.promotion.diff import (
    PromotionError,
    exists_at,
    is_number,
    metrics_diff,
    read_metrics,
    same_file_as,
)


@dataclass(frozen=True)
class Check:
    """One rule applied to one metric."""

    name: str
    rule: str
    old: float | None
    new: float
    passed: bool


@dataclass(frozen=True)
class Verdict:
    base: str
    checks: tuple[Check, ...] = ()
    note: str = ""
    error: str = ""

    @property
    def promote(self) -> bool:
        return not self.error and all(c.passed for c in self.checks)


def judge(
    base: str,
    new: dict[str, float],
    old: dict[str, float] | None,
    rules: PromoteParams,
    model_unchanged: bool = False,
) -> Verdict:
    """Apply the rules to workspace values ``new`` and baseline values ``old`` (``None``: first model)."""
    primary = rules.primary
    checks = [
        Check(f"{primary} floor", f">= {rules.floor:.4f}", None, new[primary], new[primary] >= rules.floor)
    ]
    if old is None:
        return Verdict(base, tuple(checks), note=f"first model: no metrics at `{base}`, judged on the floor")
    if model_unchanged:
        same = "model identical to BASE's"
        checks.append(Check(f"{primary} improvement", same, old[primary], new[primary], True))
    else:
        needed = old[primary] + rules.min_improvement
        checks.append(
            Check(
                f"{primary} improvement",
                f">= BASE + {rules.min_improvement:.4f}",
                old[primary],
                new[primary],
                new[primary] >= needed,
            )
        )
    for name, tolerance in rules.guards.items():
        if name in rules.lower_is_better:
            rule, passed = f"<= BASE + {tolerance:.4f}", new[name] <= old[name] + tolerance
        else:
            rule, passed = f">= BASE - {tolerance:.4f}", new[name] >= old[name] - tolerance
        checks.append(Check(f"{name} guard", rule, old[name], new[name], passed))
    note = "model file identical to BASE's" if model_unchanged else ""
    return Verdict(base, tuple(checks), note=note)


def _lookup(data: dict[str, Any], dotted: str) -> Any:
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def compare(base: str, rules: PromoteParams, repo: Path = Path()) -> Verdict:
    """Collect the numbers for ``judge``: the workspace's metrics file, ``BASE``'s through DVC."""
    wanted = [rules.primary, *rules.guards]
    path = rules.metrics_file
    workspace = read_metrics(repo / path)
    new: dict[str, float] = {}
    for name in wanted:
        value = _lookup(workspace, name)
        if not is_number(value):
            raise PromotionError(f"{path}: metric {name!r} is {'missing' if value is None else repr(value)}")
        new[name] = float(value)

    changes = metrics_diff(base, repo, targets=[path]).get(path, {})
    if not exists_at(base, path, repo):
        return judge(base, new, None, rules)
    old: dict[str, float] = {}
    for name in wanted:
        change = changes.get(name)
        if change is None or not is_number(change.old):
            raise PromotionError(
                f"{path} at `{base}` has no usable {name!r} (the file is committed there but DVC cannot "
                "read it, or it lacks the metric): fix the baseline or compare with another BASE"
            )
        old[name] = float(change.old)
    return judge(base, new, old, rules, model_unchanged=same_file_as(base, rules.model_file, repo))


def safe_compare(base: str, rules: PromoteParams, repo: Path = Path()) -> Verdict:
    """:func:`compare`, with a failure turned into a negative verdict that says why."""
    try:
        return compare(base, rules, repo)
    except PromotionError as err:
        return Verdict(base, error=str(err))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def to_markdown(verdict: Verdict) -> str:
    lines = [f"| check | rule | `{verdict.base}` | workspace | result |", "| --- | --- | ---: | ---: | --- |"]
    lines += [
        f"| {c.name} | {c.rule} | {_fmt(c.old)} | {_fmt(c.new)} | {'pass' if c.passed else '**FAIL**'} |"
        for c in verdict.checks
    ]
    table = "\n".join(lines) + "\n\n" if verdict.checks else ""
    if verdict.error:
        outcome = f"**Verdict: do not promote** — {verdict.error}"
    elif verdict.promote:
        outcome = "**Verdict: promote** — every check passes"
    else:
        failed = ", ".join(c.name for c in verdict.checks if not c.passed)
        outcome = f"**Verdict: do not promote** — failed: {failed}"
    note = f" ({verdict.note})" if verdict.note else ""
    return f"{table}{outcome}{note}.\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="git revision of the model to beat, e.g. origin/main")
    parser.add_argument("--params", default="params.yaml", type=Path)
    args = parser.parse_args(argv)
    verdict = safe_compare(args.base, load_params(args.params).promote)
    print(f"### Promotion gate: workspace vs `{args.base}`\n")
    print(to_markdown(verdict), end="")
    return 0 if verdict.promote else 1


if __name__ == "__main__":
    sys.exit(main())
