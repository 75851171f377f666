from __future__ import annotations

from PIL import Image

from tilescan_shared.masks import DecisionRule
from tilescan_training.calibration import Option
from tilescan_training.promotion import report
from tilescan_training.stages.evaluate import write_options


def _option(review: tuple[float, float] | None, recall: float, looked_again: float) -> Option:
    scores = {
        "recall": recall,
        "false_alarm_rate": 0.05,
        "dice": 0.8,
        "per_class": {"blowhole": {"dice": 0.7}, "crack": {"dice": 0.9}},
        "looked_again": looked_again,
    }
    return Option(DecisionRule(0.02, 16, 0.8, 0.21, review), scores, [])


def test_report_compares_metrics_params_and_links_images(repo):
    repo.metrics(dice=0.60)
    repo.write("dvclive/metrics.json", '{"val": {"dice_best": 0.58}}')
    repo.model(0.6, version="A")
    repo.commit("model A")
    repo.model(0.9, version="B")
    repo.metrics(dice=0.65, false_alarm_rate=0.04)
    repo.write("params.yaml", (repo.root / "params.yaml").read_text().replace("[0.4, 0.5]", "[0.4, 0.6]"))
    for path in ("evaluation/plots/training_curves.png", "evaluation/examples/MT_Crack_exp1.png"):
        (repo.root / path).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(repo.root / path)

    options = [_option(None, 0.9, 0.0), _option((0.02, 0.98), 0.95, 0.19)]
    write_options(repo.root / "evaluation/plots/rule_options.csv", options, options[1])

    assert report.main(["--base", "HEAD", "--out", "out/report.md"]) == 0
    text = (repo.root / "out/report.md").read_text()

    assert "**Verdict: promote**" in text
    assert "| `evaluation/metrics.json` | dice | 0.6000 | 0.6500 | +0.0500 |" in text
    assert "| `dvclive/metrics.json` | val.dice_best | 0.5800 | 0.5800 | +0.0000 |" in text
    assert "| MT_Crack | 0.5000 | 0.5500 | +0.0500 | 0.3500 | 0.3500 | +0.0000 | 7 | 6 |" in text
    assert "per_class" not in text
    assert "| `params.yaml` | evaluate.thresholds | `[0.4, 0.5]` | `[0.4, 0.6]` |" in text
    # Relative to the report's folder, as CML needs to find and publish them.
    assert "![Training curves](../evaluation/plots/training_curves.png)" in text
    assert "![MT_Crack_exp1](../evaluation/examples/MT_Crack_exp1.png)" in text
    assert "`evaluation/plots/dice_vs_threshold.png` is missing" in text
    # The rules tried on val, the chosen one in bold.
    assert "| none | 0.210 | 0.02 / 16 / 0.8 | 0.900 | 0.050 | 0.800 | 0.700 | 0% |" in text
    assert "| **0.02-0.98** | **0.210** | **0.02 / 16 / 0.8** | **0.950** |" in text


def test_report_says_when_the_rule_options_are_missing(repo):
    repo.metrics(dice=0.60)
    repo.model(0.6, version="A")
    repo.commit("model A")
    assert report.main(["--base", "HEAD", "--out", "report.md"]) == 0
    assert "`evaluation/plots/rule_options.csv` is missing" in (repo.root / "report.md").read_text()


def test_report_without_metrics_fails(repo, capsys):
    assert report.main(["--base", "HEAD"]) == 1
    assert "evaluation/metrics.json not found" in capsys.readouterr().err
    assert not (repo.root / "report.md").exists()
