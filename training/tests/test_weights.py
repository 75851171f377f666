import datetime
import hashlib
import pickle
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tilescan_training.fetch import FetchError
from tilescan_training.net import UNet
from tilescan_training.params.loading import load_section
from tilescan_training.params.train import NetParams, TrainParams
from tilescan_training.weights import build_net

TRAIN = replace(
    load_section(Path(__file__).resolve().parents[2] / "params.yaml", "train", TrainParams),
    crop_size=(32, 32),
    net=NetParams(base_channels=4, depth=2),
)


def _weights(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    torch.manual_seed(1)
    state = UNet(base_channels=4, depth=2).state_dict()
    torch.save(state, path)
    return state, hashlib.sha256(path.read_bytes()).hexdigest()


def _same(net: UNet, state: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, state[k]) for k, v in net.state_dict().items())


def _params(source: str, sha256: str = "") -> TrainParams:
    return replace(TRAIN, init_weights=source, init_weights_sha256=sha256)


def test_init_weights_from_http_need_and_check_a_sha256(http_root):
    www, base = http_root
    state, digest = _weights(www / "init.pt")
    url = f"{base}/init.pt"
    with pytest.raises(FetchError, match="needs the sha256"):
        build_net(_params(url))
    with pytest.raises(FetchError, match=f"sha256 is {digest}, expected {'a' * 64}"):
        build_net(_params(url, "a" * 64))
    assert _same(build_net(_params(url, digest)), state)


def test_local_init_weights_are_checked_when_a_sha256_is_given(tmp_path):
    state, digest = _weights(tmp_path / "init.pt")
    assert _same(build_net(_params(str(tmp_path / "init.pt"))), state)
    assert _same(build_net(_params((tmp_path / "init.pt").as_uri(), digest)), state)
    with pytest.raises(FetchError, match="sha256 is"):
        build_net(_params(str(tmp_path / "init.pt"), "b" * 64))
    assert not _same(build_net(_params("")), state)  # "" = random weights


def test_init_weights_load_tensors_only(tmp_path):
    # A pickle of anything but tensors and plain containers could run code when loaded: refused.
    torch.save({"conv.weight": datetime.date(2026, 1, 1)}, tmp_path / "evil.pt")
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        build_net(_params(str(tmp_path / "evil.pt")))
