import hashlib
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tilescan_training.manifest import read_records
from tilescan_training.stages.ingest import IngestError, ingest


def test_ingest_normalises_every_pair(synthetic_dataset, tmp_path):
    records = ingest(str(synthetic_dataset), tmp_path / "out")
    assert len(records) == 34
    assert {r.cls for r in records} == {"blowhole", "crack", "uneven", "free"}
    assert read_records(tmp_path / "out" / "manifest.csv") == records
    for r in records:
        image = np.asarray(Image.open(tmp_path / "out" / r.image))
        mask = np.asarray(Image.open(tmp_path / "out" / r.mask))
        assert image.dtype == np.uint8 and image.shape == mask.shape == (r.height, r.width)
        assert set(np.unique(mask)) <= {0, 1}
        assert int(mask.sum()) == r.defect_pixels
        assert (r.defect_pixels > 0) == r.has_defect
    crack = next(r for r in records if r.id == "crack/exp1_num_1001")
    source = synthetic_dataset / "MT_Crack" / "Imgs" / "exp1_num_1001.jpg"
    assert crack.image_sha256 == hashlib.sha256(source.read_bytes()).hexdigest()


def test_soft_mask_edges_count_as_defect(synthetic_dataset, tmp_path):
    records = ingest(str(synthetic_dataset), tmp_path / "out")
    r = next(r for r in records if r.cls == "blowhole")
    raw = np.asarray(Image.open(synthetic_dataset / "MT_Blowhole" / "Imgs" / f"{r.id.split('/')[1]}.png"))
    assert raw.max() > 0 and (raw[(raw > 0) & (raw < 255)]).size > 0
    assert r.defect_pixels == int((raw > 0).sum())


def test_zip_archive_and_url_give_the_same_manifest(synthetic_dataset, tmp_path):
    archive = tmp_path / "master.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(synthetic_dataset.rglob("*")):
            if path.is_file():
                zf.write(path, f"Magnetic-tile-defect-datasets.-master/{path.relative_to(synthetic_dataset)}")
    from_folder = ingest(str(synthetic_dataset), tmp_path / "a")
    assert ingest(str(archive), tmp_path / "b") == from_folder
    assert ingest(archive.as_uri(), tmp_path / "c") == from_folder


def test_size_mismatch_names_the_bad_file(broken_dataset, tmp_path):
    with pytest.raises(IngestError, match=r"MT_Crack/Imgs/exp1_num_1001\.png: mask is 10x10"):
        ingest(str(broken_dataset), tmp_path / "out")


def test_missing_mask_names_the_image(synthetic_dataset, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synthetic_dataset, root)
    (root / "MT_Blowhole" / "Imgs" / "exp0_num_1000.png").unlink()
    with pytest.raises(IngestError, match=r"MT_Blowhole/Imgs/exp0_num_1000\.jpg: image without a mask"):
        ingest(str(root), tmp_path / "out")


def test_unreadable_image_and_dirty_free_mask_are_both_reported(synthetic_dataset, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synthetic_dataset, root)
    (root / "MT_Uneven" / "Imgs" / "exp0_num_1000.jpg").write_bytes(b"not a jpeg")
    free_mask = root / "MT_Free" / "Imgs" / "exp1_num_1001.png"
    Image.new("L", Image.open(free_mask).size, 255).save(free_mask)
    with pytest.raises(IngestError) as err:
        ingest(str(root), tmp_path / "out")
    message = str(err.value)
    assert "2 bad file(s)" in message
    assert "MT_Uneven/Imgs/exp0_num_1000.jpg: the file is not a readable image" in message
    assert "MT_Free/Imgs/exp1_num_1001.png: a defect-free tile's mask marks" in message


def test_colour_mask_is_rejected(synthetic_dataset, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synthetic_dataset, root)
    mask = root / "MT_Crack" / "Imgs" / "exp2_num_1002.png"
    Image.open(mask).convert("RGB").save(mask)
    with pytest.raises(IngestError, match=r"exp2_num_1002\.png: mask has mode RGB"):
        ingest(str(root), tmp_path / "out")


def test_unknown_source_is_an_error(tmp_path):
    with pytest.raises(IngestError, match="neither a folder"):
        ingest(str(tmp_path / "nowhere"), tmp_path / "out")
    with pytest.raises(IngestError, match="no MT_"):
        ingest(str(Path(tmp_path)), tmp_path / "out")
