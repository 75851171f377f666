"""Summarise a primary tilescan service's shadow comparison from its ``/metrics`` (``make shadow-report``).

Reads the ``tilescan_shadow_*`` series that ``tilescan_service.shadow`` records and prints, per
(primary version, shadow version): requests compared, mean pixel Dice and IoU, the shares with Dice
above 0.9999 (identical or nearly) and above 0.99, ``has_defect`` agreement and both kinds of
disagreement; then how many sampled requests were dropped and why. Exits 1 when the service does not mirror.

    python scripts/shadow_report.py http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

PAIR = ("primary_version", "shadow_version")


@dataclass
class PairStats:
    compared: float = 0.0
    dice_sum: float = 0.0
    iou_sum: float = 0.0
    dice_buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    has_defect: dict[tuple[str, str], float] = field(default_factory=dict)  # (primary, shadow) -> count

    def dice_above(self, threshold: float) -> float:
        """Share of comparisons with Dice above ``threshold`` (a bucket bound of the histogram)."""
        return (self.compared - self.dice_buckets[threshold]) / self.compared

    @property
    def agree(self) -> float:
        same = self.has_defect.get(("true", "true"), 0) + self.has_defect.get(("false", "false"), 0)
        return same / self.compared


@dataclass
class ShadowSummary:
    sampled: float = 0.0
    dropped: dict[str, float] = field(default_factory=dict)
    pairs: dict[tuple[str, str], PairStats] = field(default_factory=lambda: defaultdict(PairStats))
    latency_sum: float = 0.0
    latency_count: float = 0.0


def summarise(metrics_text: str) -> ShadowSummary | None:
    """The shadow series of one scrape; ``None`` when there are none (mirroring is off)."""
    summary = ShadowSummary()
    found = False
    for family in text_string_to_metric_families(metrics_text):
        if not family.name.startswith("tilescan_shadow_"):
            continue
        found = True
        for sample in family.samples:
            labels, value = sample.labels, sample.value
            pair = tuple(labels.get(key, "") for key in PAIR)
            if sample.name == "tilescan_shadow_sampled_total":
                summary.sampled = value
            elif sample.name == "tilescan_shadow_dropped_total":
                summary.dropped[labels["reason"]] = value
            elif sample.name == "tilescan_shadow_compared_total":
                stats = summary.pairs[pair]
                stats.has_defect[labels["primary_has_defect"], labels["shadow_has_defect"]] = value
                stats.compared += value
            elif sample.name == "tilescan_shadow_dice_sum":
                summary.pairs[pair].dice_sum = value
            elif sample.name == "tilescan_shadow_iou_sum":
                summary.pairs[pair].iou_sum = value
            elif sample.name == "tilescan_shadow_dice_bucket":
                summary.pairs[pair].dice_buckets[float(labels["le"])] = value
            elif sample.name == "tilescan_shadow_request_duration_seconds_sum":
                summary.latency_sum = value
            elif sample.name == "tilescan_shadow_request_duration_seconds_count":
                summary.latency_count = value
    return summary if found else None


def render(summary: ShadowSummary) -> str:
    compared = sum(stats.compared for stats in summary.pairs.values())
    dropped = sum(summary.dropped.values())
    reasons = ", ".join(f"{reason} {count:.0f}" for reason, count in summary.dropped.items())
    lines = [
        f"sampled {summary.sampled:.0f}: compared {compared:.0f}, dropped {dropped:.0f} ({reasons}), "
        f"pending {summary.sampled - compared - dropped:.0f}",
    ]
    if summary.latency_count:
        mean_ms = summary.latency_sum / summary.latency_count * 1000
        lines.append(f"shadow answer time: mean {mean_ms:.1f} ms")
    lines += [
        "",
        "| primary | shadow | compared | mean Dice | mean IoU | Dice > 0.9999 | Dice > 0.99 "
        "| has_defect agree | primary only | shadow only |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (primary, shadow), stats in sorted(summary.pairs.items()):
        if not stats.compared:
            continue
        only_primary = stats.has_defect.get(("true", "false"), 0)
        only_shadow = stats.has_defect.get(("false", "true"), 0)
        lines.append(
            f"| {primary} | {shadow} | {stats.compared:.0f} | {stats.dice_sum / stats.compared:.4f} "
            f"| {stats.iou_sum / stats.compared:.4f} | {stats.dice_above(0.9999):.1%} "
            f"| {stats.dice_above(0.99):.1%} | {stats.agree:.1%} | {only_primary:.0f} | {only_shadow:.0f} |"
        )
    if not compared:
        lines.append("| (no request compared yet) | | | | | | | | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the primary service's base URL, e.g. http://127.0.0.1:8000")
    args = parser.parse_args()
    url = args.url.rstrip("/") + "/metrics"
    try:
        response = httpx.get(url, timeout=10)
        response.raise_for_status()
    except httpx.HTTPError as err:
        sys.exit(f"cannot read {url}: {err}")
    summary = summarise(response.text)
    if summary is None:
        sys.exit(f"{url} has no tilescan_shadow_* series: the service is not mirroring (TILESCAN_SHADOW_URL)")
    print(f"shadow comparison of {args.url}\n")
    print(render(summary))


if __name__ == "__main__":
    main()
