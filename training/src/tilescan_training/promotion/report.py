"""``make report BASE=<rev>``: ``report.md``, the workspace's model against the one committed at ``BASE``.

Sections: the gate's verdict, every metric with its change (``dvc metrics diff``), the per-class table,
the decision rules evaluate tried on val (the chosen one in bold), the params that changed (``dvc
params diff``), the training and Dice-vs-threshold curves and a few example predictions. The images
are the PNGs the evaluate stage renders offline, linked by paths relative to the report so that ``cml
comment create`` can publish them.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

from tilescan_training.params.loading import load_section
from tilescan_training.params.promote import PromoteParams
from tilescan_training.promotion.diff import Change, PromotionError, is_number, metrics_diff, params_diff
from tilescan_training.promotion.gate import safe_compare, to_markdown

CURVES = {
    "Training curves": "evaluation/plots/training_curves.png",
    "Dice vs threshold (val and test; the dotted line is the chosen threshold)": (
        "evaluation/plots/dice_vs_threshold.png"
    ),
    "Tile score: precision vs recall on test (the dot is the chosen tile threshold)": (
        "evaluation/plots/tile_pr.png"
    ),
}
RULE_OPTIONS = "evaluation/plots/rule_options.csv"
EXAMPLES_DIR = "evaluation/examples"
PER_CLASS = "per_class."


def _value(value: object) -> str:
    if value is None:
        return "-"
    if is_number(value):
        return f"{value:.4f}" if isinstance(value, float) else str(value)
    return f"`{value}`"


def _delta(change: Change) -> str:
    delta = change.delta
    return "" if delta is None else f"{delta:+.4f}"


def metrics_table(diff: dict[str, dict[str, Change]], base: str) -> str:
    """All metrics but the per-class ones, one row each, grouped by file."""
    rows = [
        f"| `{path}` | {name} | {_value(c.old)} | {_value(c.new)} | {_delta(c)} |"
        for path, changes in diff.items()
        for name, c in changes.items()
        if not name.startswith(PER_CLASS)
    ]
    header = f"| file | metric | `{base}` | workspace | change |\n| --- | --- | ---: | ---: | ---: |\n"
    return header + "\n".join(rows) + "\n"


def per_class_table(changes: dict[str, Change], base: str) -> str:
    """``per_class.<class>.<metric>`` entries as one row per class."""
    classes: dict[str, dict[str, Change]] = {}
    for name, change in changes.items():
        if name.startswith(PER_CLASS):
            cls, _, metric = name.removeprefix(PER_CLASS).rpartition(".")
            classes.setdefault(cls, {})[metric] = change
    if not classes:
        return "No per-class metrics.\n"
    header = (
        f"| class | Dice `{base}` | Dice | change | IoU `{base}` | IoU | change | test images | found |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    )
    rows = []
    for cls, m in sorted(classes.items()):
        dice, iou, images, found = m.get("dice"), m.get("iou"), m.get("images"), m.get("found")
        cells = []
        for c in (dice, iou):
            cells += ["-", "-", ""] if c is None else [_value(c.old), _value(c.new), _delta(c)]
        counts = [_value(c.new if c else None) for c in (images, found)]
        rows.append(f"| {cls} | {' | '.join(cells)} | {' | '.join(counts)} |")
    return header + "\n".join(rows) + "\n"


def rule_options_table(path: Path) -> str:
    """Evaluate's ``rule_options.csv``: each way of deciding tried on val, the chosen one in bold."""
    if not path.is_file():
        return f"*`{RULE_OPTIONS}` is missing.*\n"
    header = (
        "| review band | tile threshold | pixel rule (threshold / area / peak) | tile recall "
        "| false alarms | Dice | weakest class Dice | looked again |\n"
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |\n"
    )
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            tile = f"{float(r['tile_threshold']):.3f}" if r["tile_threshold"] else "-"
            cells = [
                r["review_band"],
                tile,
                f"{r['threshold']} / {r['min_region_area']} / {r['min_region_peak']}",
                *(f"{float(r[k]):.3f}" for k in ("recall", "false_alarm_rate", "dice", "weakest_class_dice")),
                f"{float(r['looked_again']):.0%}",
            ]
            if r["chosen"] == "True":
                cells = [f"**{c}**" for c in cells]
            rows.append("| " + " | ".join(cells) + " |")
    return header + "\n".join(rows) + "\n"


def params_table(diff: dict[str, dict[str, Change]], base: str) -> str:
    rows = [
        f"| `{path}` | {name} | {_value(c.old)} | {_value(c.new)} |"
        for path, changes in diff.items()
        for name, c in changes.items()
    ]
    if not rows:
        return f"No pipeline params differ from `{base}`.\n"
    return f"| file | param | `{base}` | workspace |\n| --- | --- | --- | --- |\n" + "\n".join(rows) + "\n"


def _image(title: str, path: Path, out_dir: Path) -> str:
    if not path.is_file():
        return f"*{title}: `{path}` is missing.*\n"
    return f"![{title}]({Path(os.path.relpath(path, out_dir)).as_posix()})\n"


def build_report(base: str, rules: PromoteParams, repo: Path, out: Path, examples: int = 4) -> str:
    """The Markdown text of the report written to ``out`` (image links are relative to its folder)."""
    metrics_path = repo / rules.metrics_file
    if not metrics_path.is_file():
        raise PromotionError(f"{rules.metrics_file} not found: nothing to report (run the pipeline first)")
    metrics = metrics_diff(base, repo)
    out_dir = out.parent.resolve()
    parts = [
        f"## tilescan model report: workspace vs `{base}`\n",
        "### Promotion gate\n",
        to_markdown(safe_compare(base, rules, repo)),
        "### Metrics\n",
        f"`{rules.metrics_file}`: the test split under the chosen rule (`val.*`: the val split); "
        "`dvclive/metrics.json`: the last training epoch.\n",
        metrics_table(metrics, base),
        "### Per class (test split, defect tiles)\n",
        per_class_table(metrics.get(rules.metrics_file, {}), base),
        "### Decision rule, chosen on val (the rule in bold; each band with its own thresholds)\n",
        rule_options_table(repo / RULE_OPTIONS),
        "### Changed params\n",
        params_table(params_diff(base, repo), base),
        "### Curves\n",
        *(_image(title, repo / path, out_dir) for title, path in CURVES.items()),
        "### Example predictions (test split: image | truth | prediction)\n",
    ]
    panels = sorted((repo / EXAMPLES_DIR).glob("*.png"))[:examples]
    parts += [_image(p.stem, p, out_dir) for p in panels] or [f"*No panels in `{EXAMPLES_DIR}`.*\n"]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="git revision to compare with, e.g. origin/dev")
    parser.add_argument("--params", default="params.yaml", type=Path)
    parser.add_argument("--out", default="report.md", type=Path)
    parser.add_argument("--examples", default=4, type=int, help="example panels to show")
    args = parser.parse_args(argv)
    try:
        rules = load_section(args.params, "promote", PromoteParams)
        text = build_report(args.base, rules, Path(), args.out, args.examples)
    except PromotionError as err:
        print(f"report: {err}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
