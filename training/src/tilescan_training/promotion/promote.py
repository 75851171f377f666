"""``make promote``: gate the pipeline's candidate against the served model; serve it only if it passes.

``dvc repro`` ends with ``models/candidate.onnx`` (the exported graph stamped with the rule chosen on val,
its test metrics and the reduced precisions that passed) and its int8 sibling; the files the service, the
images and every deployment load are ``models/tilescan.onnx`` and, when the model lists int8 among the
precisions that passed, ``models/tilescan.int8.onnx``.
This is the one way from the first to the second: both are scored on the workspace's test split with the
rules of :mod:`tilescan_training.promotion.gate`, and the candidate is copied over the served model only
when the verdict is "promote". Exits 0 when it was promoted, 1 when the served model stays.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import onnx

from tilescan_shared.model_info import read_info
from tilescan_shared.runtimes import Variant, variant_path
from tilescan_training.params.loading import load_section
from tilescan_training.params.promote import PromoteParams
from tilescan_training.promotion.diff import PromotionError
from tilescan_training.promotion.gate import Verdict, compare_models, to_markdown


def promote(rules: PromoteParams, repo: Path = Path()) -> Verdict:
    """Judge the candidate against the served model and, if it passes, make it the served model."""
    candidate, served = repo / rules.candidate_file, repo / rules.model_file
    try:
        verdict = compare_models(candidate, served if served.exists() else None, "served", rules, repo)
    except PromotionError as err:
        return Verdict("served", error=str(err))
    if verdict.promote:
        # The int8 sibling first: a service watching the main file reloads both once that one changes.
        # One the candidate does not list as passed (it failed evaluation, or an older pipeline made
        # none) is never served, and the old model's must not be left beside it.
        passed = read_info(onnx.load(str(candidate))).variants
        for variant in (Variant.INT8, Variant.FP32):
            source, target = variant_path(candidate, variant), variant_path(served, variant)
            if variant != Variant.FP32 and (variant.value not in passed or not source.exists()):
                target.unlink(missing_ok=True)
                continue
            staged = target.with_name(target.name + ".promoting")
            shutil.copyfile(source, staged)
            os.replace(staged, target)  # atomic: a service watching the file never reads half of it
    return verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml", type=Path)
    args = parser.parse_args(argv)
    rules = load_section(args.params, "promote", PromoteParams)
    verdict = promote(rules)
    print(f"### Promotion: `{rules.candidate_file}` vs the served `{rules.model_file}` (test split)\n")
    print(to_markdown(verdict), end="")
    print(f"\n{rules.model_file} {'is now the candidate' if verdict.promote else 'is unchanged'}.")
    return 0 if verdict.promote else 1


if __name__ == "__main__":
    sys.exit(main())
