"""Fixtures: a tiny synthetic dataset in the upstream layout, drawn so that the truth is known."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter

from tilescan_training.manifest import write_split
from tilescan_training.module import VAL_THRESHOLDS
from tilescan_training.params.export import ExportParams
from tilescan_training.params.loading import load_section
from tilescan_training.params.split import SplitParams
from tilescan_training.params.train import NetParams, TrainParams
from tilescan_training.stages.ingest import ingest
from tilescan_training.stages.split import split

# (upstream folder, number of tiles); a few dozen small images in all.
CLASSES = {"MT_Blowhole": 8, "MT_Crack": 8, "MT_Uneven": 6, "MT_Free": 12}


def _tile(rng: np.random.Generator, folder: str) -> tuple[Image.Image, Image.Image]:
    """A noisy gray tile and its soft-edged 0..255 mask (all 0 for defect-free tiles)."""
    height, width = int(rng.integers(56, 96)), int(rng.integers(48, 120))
    pixels = rng.normal(150, 12, (height, width)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, mode="L")
    mask = Image.new("L", (width, height), 0)
    if folder != "MT_Free":
        x, y = int(rng.integers(4, width - 20)), int(rng.integers(4, height - 20))
        size = int(rng.integers(6, 16))
        shape = [x, y, x + size, y + size] if folder != "MT_Crack" else [x, y, x + 2 * size, y + 3]
        for target, fill in ((image, 40), (mask, 255)):
            ImageDraw.Draw(target).ellipse(shape, fill=fill)
        # Upstream masks have soft edges: values between 0 and 255 along the border.
        mask = mask.filter(ImageFilter.GaussianBlur(1))
    return image, mask


def make_dataset(root: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for folder, count in CLASSES.items():
        imgs = root / folder / "Imgs"
        imgs.mkdir(parents=True)
        for i in range(count):
            image, mask = _tile(rng, folder)
            image.save(imgs / f"exp{i % 3}_num_{1000 + i}.jpg", quality=95)
            mask.save(imgs / f"exp{i % 3}_num_{1000 + i}.png")
    return root


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid dataset in the upstream layout (do not modify: copy it with ``broken_dataset``)."""
    return make_dataset(tmp_path_factory.mktemp("upstream"))


@pytest.fixture
def broken_dataset(synthetic_dataset: Path, tmp_path: Path) -> Path:
    """A copy of the synthetic dataset whose one pair is broken: the mask is smaller than its image."""
    root = tmp_path / "broken"
    shutil.copytree(synthetic_dataset, root)
    mask = root / "MT_Crack" / "Imgs" / "exp1_num_1001.png"
    Image.new("L", (10, 10), 0).save(mask)
    return root


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep the test output clean
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on 127.0.0.1 serving a fresh folder: ``(folder, base URL)``."""
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def repo_params():
    """The repository's params.yaml sections that tests shrink a few fields of (``dataclasses.replace``)."""
    path = Path(__file__).resolve().parents[2] / "params.yaml"
    return SimpleNamespace(
        split=load_section(path, "split", SplitParams),
        train=load_section(path, "train", TrainParams),
        export=load_section(path, "export", ExportParams),
    )


@pytest.fixture(scope="session")
def tiny_train(repo_params):
    """The repository's train params with a network small enough to export in a test."""
    return replace(repo_params.train, crop_size=(32, 48), net=NetParams(base_channels=4, depth=2))


@pytest.fixture(scope="session")
def ingested(synthetic_dataset: Path, tmp_path_factory: pytest.TempPathFactory, repo_params) -> Path:
    """The synthetic dataset after the ingest and split stages: ``data/ingested`` + ``data/split.csv``."""
    data = tmp_path_factory.mktemp("data")
    records = ingest(str(synthetic_dataset), data / "ingested")
    write_split(data / "split.csv", split(records, replace(repo_params.split, free_in_train=-1)))
    return data


def _hand_val_metrics(net, tiles, loss_fn=None) -> tuple[float, float]:
    """Mean loss and the checkpoint metric (best-threshold micro pixel Dice) of whole ``(image, mask)``
    tiles, computed without the module: numpy edge padding to the net's stride, then per-threshold counts."""
    counts, losses = np.zeros((len(VAL_THRESHOLDS), 3)), []  # tp, fp, fn per threshold
    net.eval()
    with torch.no_grad():
        for image, mask in tiles:
            h, w = image.shape[-2:]
            pad = ((0, -h % net.multiple), (0, -w % net.multiple))
            padded = np.pad(image[0].numpy(), pad, mode="edge")
            logits, tile = net(torch.from_numpy(padded)[None, None])
            logits = logits[..., :h, :w]
            if loss_fn is not None:
                losses.append(float(loss_fn(logits, tile, mask[None])[0]))
            prob, truth = torch.sigmoid(logits)[0, 0].numpy(), mask[0].numpy() >= 0.5
            for i, t in enumerate(VAL_THRESHOLDS.tolist()):
                pred = prob >= t
                counts[i] += [(pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum()]
    tp, fp, fn = counts.T
    dice = float(np.max(2 * tp / np.maximum(2 * tp + fp + fn, 1)))
    return (float(np.mean(losses)) if losses else float("nan")), dice


@pytest.fixture(scope="session")
def hand_val_metrics():
    """``(net, tiles, loss_fn=None) -> (mean loss, best-threshold pixel Dice)``, computed by hand."""
    return _hand_val_metrics
