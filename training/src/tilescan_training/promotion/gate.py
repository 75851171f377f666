"""``make gate BASE=<rev>``: may the workspace's served model replace the one committed at ``BASE``?

Both models are scored here, on the same tiles: the workspace's test split (``data/``, which ``make data``
rebuilds from the dataset or ``dvc pull`` fetches), each with the decision rule stamped in its own
metadata, through the code the service runs. ``BASE``'s recorded metrics are never trusted: a changed
split, or metrics copied by hand, must not look like progress. ``make promote`` applies the same rules
to the pipeline's candidate against the served model (:mod:`tilescan_training.promotion.promote`), and
``make check-served`` to the served model against the one it replaced (``.ci/run``).

Exits 0 (promote) or 1 (keep ``BASE``'s model, or the comparison could not be made) and prints the
verdict as a Markdown table. The rules are ``promote:`` in ``params.yaml``:

* the primary metric (higher is better) must reach ``floor``, always;
* it must beat ``BASE``'s by at least ``min_improvement``, unless it answers as ``BASE``'s does (the same
  graph, weights and decision rule; other metadata may differ): a code-only change re-deploys the same
  model;
* each guard metric may regress by at most its tolerance (upwards for ``lower_is_better`` metrics);
* each reduced precision the model lists (``variants`` in its metadata) is scored again beside its
  fp32 answers and must still pass :mod:`tilescan_training.variants`' rules (where this machine can
  run it; otherwise the verdict says it was not checked).

Beside the verdict it prints how well the test split resolves the difference in the primary metric (or
in micro Dice, for a primary other than a Dice): a paired bootstrap interval over its defect tiles
(:func:`dice_difference`). It informs the reader and decides nothing.

A first model, with no model file at ``BASE``, is judged on the floor alone. A missing model or test
split is an error rather than a pass.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from tilescan_shared.masks import DecisionRule, segment
from tilescan_shared.metrics import dice, pixel_counts
from tilescan_shared.model_info import read_info
from tilescan_shared.predictor import CPU, Predictor, Variant
from tilescan_shared.runtimes import unavailable
from tilescan_training.manifest import read_records, read_split, records_in
from tilescan_training.params.loading import load_section
from tilescan_training.params.promote import PromoteParams
from tilescan_training.promotion.diff import PromotionError
from tilescan_training.scoring import Scored, Tile, load_tiles, predict_all, score
from tilescan_training.variants import score_variant

DATA_DIR = Path("data/ingested")
SPLIT_CSV = Path("data/split.csv")
BOOTSTRAP_RESAMPLES = 2000
# The metrics dice_difference resamples, as the verdict names them.
RESOLVED = {"dice": "Dice", "macro_dice": "Dice averaged over the classes"}


@dataclass(frozen=True)
class Check:
    """One rule applied to one metric."""

    name: str
    rule: str
    old: float | None
    new: float
    passed: bool


@dataclass(frozen=True)
class Resolution:
    """The workspace's test Dice (micro or macro) minus ``BASE``'s, and its 95% paired bootstrap interval."""

    metric: str  # "dice" or "macro_dice"
    difference: float
    low: float
    high: float
    tiles: int  # the defect tiles drawn from


@dataclass(frozen=True)
class Verdict:
    base: str
    checks: tuple[Check, ...] = ()
    note: str = ""
    error: str = ""
    resolution: Resolution | None = None

    @property
    def promote(self) -> bool:
        return not self.error and all(c.passed for c in self.checks)


def judge(
    base: str,
    new: dict[str, float],
    old: dict[str, float] | None,
    rules: PromoteParams,
    model_unchanged: bool = False,
    variant_checks: tuple[Check, ...] = (),
    variant_note: str = "",
) -> Verdict:
    """Apply the rules to workspace values ``new`` and baseline values ``old`` (``None``: first model)."""
    primary = rules.primary
    checks = [
        Check(f"{primary} floor", f">= {rules.floor:.4f}", None, new[primary], new[primary] >= rules.floor)
    ]
    if old is None:
        return Verdict(base, tuple(checks), note="first model: judged on the floor")
    if model_unchanged:
        same = "answers as BASE's model"
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
    notes = ["the same network and rule as BASE's"] if model_unchanged else []
    notes += [variant_note] if variant_note else []
    return Verdict(base, (*checks, *variant_checks), note="; ".join(notes))


def load_test_split(repo: Path = Path()) -> list[Tile]:
    """``repo``'s test split, decoded once for both models."""
    manifest, split_csv = repo / DATA_DIR / "manifest.csv", repo / SPLIT_CSV
    if not manifest.is_file() or not split_csv.is_file():
        raise PromotionError(f"{manifest} or {split_csv} not found: run `make data` (or `dvc pull`) first")
    records = records_in("test", read_records(manifest), read_split(split_csv))
    if not records:
        raise PromotionError(f"{split_csv} puts no tile in the test split")
    return load_tiles(records, repo / DATA_DIR)


@dataclass(frozen=True)
class Answers:
    """A model's answers to the test tiles under its own decision rule."""

    scored: list[Scored]
    rule: DecisionRule


def model_scores(model: Path, names: list[str], tiles: list[Tile]) -> tuple[dict[str, float], Answers]:
    """``names`` from scoring ``model`` (fp32) with its own rule on ``tiles`` on the CPU, and its answers."""
    if not model.is_file():
        raise PromotionError(f"{model} not found: nothing to judge")
    predictor = Predictor(model, providers=[CPU])
    scored = predict_all(predictor, tiles, predictor.info.rule)
    result = score(scored, predictor.info.rule)
    return {name: float(result[name]) for name in names}, Answers(scored, predictor.info.rule)


def _defect_counts(scored: list[Scored], rule: DecisionRule) -> np.ndarray:
    """``[tiles, 3]``: true positive, false positive and false negative pixels of each defect tile."""
    rows = []
    for tile in scored:
        if tile.record.has_defect:
            c = pixel_counts(segment(tile.probability, rule, tile.tile_score).mask, tile.truth)
            rows.append((c.tp, c.fp, c.fn))
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


def _dice_of(counts: np.ndarray, classes: np.ndarray, metric: str) -> np.ndarray:
    """Dice of each resample: ``counts`` is ``[..., tiles, 3]``, ``classes`` the tiles' one-hot
    ``[..., tiles, classes]``. Macro: the mean over the classes a resample holds."""
    if metric == "dice":
        return dice(*np.moveaxis(counts.sum(axis=-2), -1, 0))
    per_class = np.einsum("...tk,...tc->...ck", counts, classes)  # [..., classes, 3]
    present = classes.sum(axis=-2) > 0
    class_dice = dice(*np.moveaxis(per_class, -1, 0))
    return (class_dice * present).sum(axis=-1) / present.sum(axis=-1)


def dice_difference(new: Answers, old: Answers, metric: str = "dice", seed: int = 0) -> Resolution:
    """``new``'s Dice minus ``old``'s on the same tiles, with a 95% paired bootstrap interval.

    ``metric``: ``dice`` (micro, over all defect pixels) or ``macro_dice`` (the mean of the classes'
    Dice, as :func:`tilescan_training.scoring.score`). The defect tiles are drawn with replacement, the
    same draw for both models, so what both answer alike cancels out. On about fifty defect tiles the
    interval is a few hundredths wide, far wider than ``min_improvement``: a model can pass or fail by
    the luck of which tiles the split holds.
    """
    if [t.record.id for t in new.scored] != [t.record.id for t in old.scored]:
        raise ValueError("the two models were scored on different tiles")
    a, b = _defect_counts(new.scored, new.rule), _defect_counts(old.scored, old.rule)
    if not len(a):  # no defect tile to draw: both Dice are 1 (no defect pixel anywhere)
        return Resolution(metric, 0.0, 0.0, 0.0, 0)
    names = [t.record.cls for t in new.scored if t.record.has_defect]
    classes = np.array([[name == c for c in sorted(set(names))] for name in names], dtype=np.float64)
    draws = np.random.default_rng(seed).integers(0, len(a), size=(BOOTSTRAP_RESAMPLES, len(a)))
    differences = _dice_of(a[draws], classes[draws], metric) - _dice_of(b[draws], classes[draws], metric)
    low, high = np.percentile(differences, [2.5, 97.5])
    difference = _dice_of(a, classes, metric) - _dice_of(b, classes, metric)
    return Resolution(metric, float(difference), float(low), float(high), len(a))


def check_variants(
    model: Path, fp32: list[Scored], tiles: list[Tile], rules: PromoteParams
) -> tuple[tuple[Check, ...], str]:
    """The reduced precisions ``model`` lists, each scored again against its fp32 answers on ``tiles``."""
    predictor = Predictor(model, providers=[CPU])
    checks, skipped = [], []
    for name in predictor.info.variants:
        variant = Variant(name)
        reason = unavailable(variant, model, [CPU])
        if reason is not None:
            skipped.append(f"{name} not checked here: {reason}")
            continue
        report = score_variant(
            Predictor(model, providers=[CPU], variant=variant),
            {"test": fp32},
            {"test": tiles},
            predictor.info.rule,
            rules.min_improvement,
        )
        rule = f"vs fp32: Dice >= fp32 - {rules.min_improvement:.4f}, no more false alarms, no lower recall"
        fp32_dice = score(fp32, predictor.info.rule)["dice"]
        checks.append(Check(f"{name} variant", rule, fp32_dice, report["test"]["dice"], report["passed"]))
    return tuple(checks), "; ".join(skipped)


def same_answers(a: Path, b: Path) -> bool:
    """Whether two model files hold the same graph, weights and decision rule (other metadata may differ)."""
    model_a, model_b = onnx.load(str(a)), onnx.load(str(b))
    same_graph = model_a.graph.SerializeToString() == model_b.graph.SerializeToString()
    return same_graph and read_info(model_a).rule == read_info(model_b).rule


def compare_models(
    model: Path, base_model: Path | None, base: str, rules: PromoteParams, repo: Path = Path()
) -> Verdict:
    """Judge ``model`` against ``base_model`` (``None``: first model), both scored on the same tiles."""
    names, tiles = [rules.primary, *rules.guards], load_test_split(repo)
    new, answers = model_scores(model, names, tiles)
    variant_checks, variant_note = check_variants(model, answers.scored, tiles, rules)
    if base_model is None:
        verdict = judge(base, new, None, rules)
        note = "; ".join(filter(None, [verdict.note, variant_note]))
        return Verdict(base, (*verdict.checks, *variant_checks), note=note)
    old, old_answers = model_scores(base_model, names, tiles)
    unchanged = same_answers(model, base_model)
    verdict = judge(base, new, old, rules, unchanged, variant_checks, variant_note)
    metric = rules.primary if rules.primary in RESOLVED else "dice"
    return dataclasses.replace(verdict, resolution=dice_difference(answers, old_answers, metric))


def committed_file(rev: str, path: str, repo: Path = Path()) -> bytes | None:
    """The bytes of ``path`` at git revision ``rev``, or ``None`` when it is not committed there."""
    known = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=repo, capture_output=True
    )
    if known.returncode != 0:
        raise PromotionError(f"unknown git revision {rev!r}")
    shown = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=repo, capture_output=True)
    return shown.stdout if shown.returncode == 0 else None


def compare(base: str, rules: PromoteParams, repo: Path = Path(), model: str | None = None) -> Verdict:
    """The workspace's ``model`` (default: the served model) against the served one at ``base``."""
    model_path = repo / (model or rules.model_file)
    blob = committed_file(base, rules.model_file, repo)
    if blob is None:
        verdict = compare_models(model_path, None, base, rules, repo)
        return Verdict(base, verdict.checks, note=f"first model: no `{rules.model_file}` at `{base}`")
    with tempfile.TemporaryDirectory() as tmp:
        base_model = Path(tmp) / "base.onnx"
        base_model.write_bytes(blob)
        return compare_models(model_path, base_model, base, rules, repo)


def safe_compare(base: str, rules: PromoteParams, repo: Path = Path(), model: str | None = None) -> Verdict:
    """:func:`compare`, with a failure turned into a negative verdict that says why."""
    try:
        return compare(base, rules, repo, model)
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
    resolution = ""
    if r := verdict.resolution:
        resolution = (
            f"\n\nTest {RESOLVED[r.metric]}, workspace - `{verdict.base}`: {r.difference:+.4f}; 95% paired "
            f"bootstrap over its {r.tiles} defect tiles: [{r.low:+.4f}, {r.high:+.4f}] (how far another "
            "draw of such tiles could move it; it decides nothing)"
        )
    return f"{table}{outcome}{note}.{resolution}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="git revision of the model to beat, e.g. origin/main")
    parser.add_argument("--params", default="params.yaml", type=Path)
    parser.add_argument("--model", help="the workspace model to judge (default: the served model file)")
    args = parser.parse_args(argv)
    verdict = safe_compare(args.base, load_section(args.params, "promote", PromoteParams), model=args.model)
    print(f"### Promotion gate: workspace vs `{args.base}` (both re-scored on the workspace's test split)\n")
    print(to_markdown(verdict), end="")
    return 0 if verdict.promote else 1


if __name__ == "__main__":
    sys.exit(main())
