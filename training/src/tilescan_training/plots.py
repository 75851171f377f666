"""PNG renderings for reports: curves with matplotlib, example panels with Pillow (no CDN, no browser)."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image, ImageDraw

from tilescan_shared import panels
from tilescan_shared.metrics import TileCurve

_RED = np.array([255, 40, 40], dtype=np.float32)


def overlay(gray: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """RGB picture of ``gray`` with ``mask > 0`` tinted red."""
    rgb = np.repeat(gray[..., None], 3, axis=2).astype(np.float32)
    hit = mask > 0
    rgb[hit] = (1 - alpha) * rgb[hit] + alpha * _RED
    return rgb.astype(np.uint8)


def example_panel(gray: np.ndarray, truth: np.ndarray, pred: np.ndarray, title: str, path: Path) -> None:
    """``image | truth | prediction`` side by side, with captions (layout: :mod:`tilescan_shared.panels`)."""
    tiles = [np.repeat(gray[..., None], 3, axis=2), overlay(gray, truth), overlay(gray, pred)]
    captions = ["image", "truth", "prediction"]
    height, width = gray.shape
    canvas = Image.new("RGB", panels.panel_size(width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (tile, caption) in enumerate(zip(tiles, captions, strict=True)):
        x = panels.tile_left(i, width)
        canvas.paste(Image.fromarray(tile), (x, panels.HEADER))
        draw.text((x + 2, 3), caption if i else f"{caption}: {title}", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def threshold_curve(rows: list[dict[str, float]], chosen: float, path: Path) -> None:
    """Dice (val and test) and val false-alarm rate against the threshold."""
    fig, ax = plt.subplots(figsize=(6, 4))
    t = [r["threshold"] for r in rows]
    ax.plot(t, [r["val_dice"] for r in rows], marker="o", label="val Dice")
    ax.plot(t, [r["test_dice"] for r in rows], marker="o", label="test Dice")
    ax.plot(t, [r["val_false_alarm_rate"] for r in rows], marker="x", ls="--", label="val false-alarm rate")
    ax.axvline(chosen, color="grey", lw=1, ls=":", label=f"chosen {chosen:g}")
    ax.set_xlabel("threshold")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def tile_pr_curve(curve: TileCurve, chosen: tuple[float, float], path: Path) -> None:
    """Precision against recall of the tile score, with the chosen tile threshold's point."""
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.step(
        curve.recall, curve.precision, where="post", label=f"tile score (AP {curve.average_precision:.3f})"
    )
    ax.plot(*chosen, "o", color="red", label=f"chosen: recall {chosen[0]:.3f}, precision {chosen[1]:.3f}")
    ax.set_xlabel("tile recall")
    ax.set_ylabel("tile precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    _save(fig, path)


def training_curves(live_plots: Path, path: Path) -> None:
    """Loss and val Dice per epoch from DVCLive's ``plots/metrics`` TSV files."""
    panels = {
        "loss": ["train/loss", "train/seg_loss", "train/tile_loss", "val/loss"],
        "val": ["val/pixel_dice_max", "val/tile_ap", "val/score"],
    }
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (title, names) in zip(axes, panels.items(), strict=True):
        for name in names:
            tsv = live_plots / f"{name}.tsv"
            if not tsv.exists():
                continue
            with open(tsv) as f:
                rows = list(csv.DictReader(f, delimiter="\t"))
            key = name.rsplit("/", 1)[-1]
            ax.plot([int(r["step"]) for r in rows], [float(r[key]) for r in rows], label=name)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
