import hashlib
import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tilescan_shared.image import decode_gray
from tilescan_training.manifest import read_records
from tilescan_training.stages.ingest import MAX_FILE_BYTES, MAX_PIXELS, IngestError, ingest
from tilescan_training.testing import write_plant_batch


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


def _zip(
    source: Path, archive: Path, prefixes: tuple[str, ...] = ("Magnetic-tile-defect-datasets.-master/",)
) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for prefix in prefixes:
            for path in sorted(source.rglob("*")):
                if path.is_file():
                    zf.write(path, f"{prefix}{path.relative_to(source).as_posix()}")
    return archive


def _copy(dataset: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(dataset, root)
    return root


def test_case_variant_class_folders_are_duplicate_tiles(synthetic_dataset, tmp_path):
    root = _copy(synthetic_dataset, tmp_path)
    shutil.copytree(root / "MT_Crack", root / "MT_crack")
    with pytest.raises(IngestError) as err:
        ingest(str(root), tmp_path / "out")
    message = str(err.value)
    assert "8 bad file(s)" in message  # one line per crack tile, none silently overwritten
    assert (
        "tile crack/exp1_num_1001 comes from more than one file: MT_Crack/Imgs/exp1_num_1001.jpg, "
        "MT_crack/Imgs/exp1_num_1001.jpg, MT_Crack/Imgs/exp1_num_1001.png, MT_crack/Imgs/exp1_num_1001.png"
    ) in message
    assert not (tmp_path / "out" / "manifest.csv").exists()


def test_the_same_file_twice_is_rejected(synthetic_dataset, tmp_path):
    twice = _zip(synthetic_dataset, tmp_path / "twice.zip", prefixes=("a/", "a/copy/"))
    with pytest.raises(IngestError, match=r"a/MT_Free/Imgs/exp0_num_1000\.jpg, a/copy/MT_Free/Imgs/exp0"):
        ingest(str(twice), tmp_path / "out")
    # a zip may even hold one name twice
    archive = _zip(synthetic_dataset, tmp_path / "dup.zip")
    with zipfile.ZipFile(archive, "a") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.write(synthetic_dataset / "MT_Uneven/Imgs/exp1_num_1001.png", zf.namelist()[-1])
    with pytest.raises(IngestError, match=r"1 bad file\(s\).*\n.*comes from more than one file"):
        ingest(str(archive), tmp_path / "out2")


def test_files_outside_the_layout_are_named(synthetic_dataset, tmp_path):
    root = _copy(synthetic_dataset, tmp_path)
    (root / "DATASET.md").write_text("not part of any class folder: ignored")
    misplaced = [
        "MT_Crack/Imgs/extra/exp9.jpg",
        "MT_Crack/notes.txt",
        "MT_Crack/Imgs/exp9.JPG",
        "MT_Fray2/Imgs/a.png",
    ]
    for rel in misplaced:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    with pytest.raises(IngestError) as err:
        ingest(str(root), tmp_path / "out")
    message = str(err.value)
    assert f"{len(misplaced)} bad file(s)" in message
    for rel in misplaced:
        assert f"{rel}: not in the layout MT_<Class>/Imgs/<name>.jpg|png" in message


def test_http_source_needs_and_checks_its_sha256(synthetic_dataset, tmp_path, http_root):
    www, base = http_root
    archive = _zip(synthetic_dataset, www / "master.zip")
    url, digest = f"{base}/master.zip", hashlib.sha256(archive.read_bytes()).hexdigest()
    with pytest.raises(IngestError, match="an http\\(s\\) source needs the sha256"):
        ingest(url, tmp_path / "a")
    with pytest.raises(IngestError, match=f"sha256 is {digest}, expected {'0' * 64}"):
        ingest(url, tmp_path / "b", sha256="0" * 64)
    assert ingest(url, tmp_path / "c", sha256=digest) == ingest(str(synthetic_dataset), tmp_path / "d")
    with pytest.raises(IngestError, match=r"download failed.*404"):
        ingest(f"{base}/missing.zip", tmp_path / "e", sha256=digest)


def test_local_archives_are_checked_when_a_sha256_is_given(synthetic_dataset, tmp_path):
    archive = _zip(synthetic_dataset, tmp_path / "master.zip")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert ingest(archive.as_uri(), tmp_path / "a", sha256=digest.upper())
    with pytest.raises(IngestError, match="sha256 is"):
        ingest(str(archive), tmp_path / "b", sha256="f" * 64)
    with pytest.raises(IngestError, match="not a file, so its sha256 cannot be checked"):
        ingest(str(synthetic_dataset), tmp_path / "c", sha256=digest)
    with pytest.raises(IngestError, match="scheme 'ftp' is not supported"):
        ingest("ftp://example.com/master.zip", tmp_path / "d", sha256=digest)


def test_oversized_zip_members_are_never_read(synthetic_dataset, tmp_path):
    archive = _zip(synthetic_dataset, tmp_path / "master.zip")
    with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("MT_Crack/Imgs/bomb.jpg", bytes(MAX_FILE_BYTES + 1))  # compresses to a few kB
        zf.writestr("MT_Crack/Imgs/bomb.png", b"")
    with pytest.raises(IngestError) as err:
        ingest(str(archive), tmp_path / "out")
    assert f"MT_Crack/Imgs/bomb.jpg: {MAX_FILE_BYTES + 1} bytes, more than the {MAX_FILE_BYTES}" in str(
        err.value
    )
    assert "1 bad file(s)" in str(err.value)  # bomb.png (empty) is not read either: its pair is dropped


def test_images_and_masks_have_a_pixel_cap(synthetic_dataset, tmp_path):
    root = _copy(synthetic_dataset, tmp_path)
    side = int(MAX_PIXELS**0.5) + 1
    Image.new("L", (side, side), 128).save(root / "MT_Uneven/Imgs/exp0_num_1000.jpg", quality=10)
    Image.new("1", (side, side), 0).save(root / "MT_Free/Imgs/exp1_num_1001.png")
    with pytest.raises(IngestError) as err:
        ingest(str(root), tmp_path / "out")
    message = str(err.value)
    assert f"MT_Uneven/Imgs/exp0_num_1000.jpg: the image has {side}x{side}" in message
    assert f"MT_Free/Imgs/exp1_num_1001.png: mask has {side}x{side} pixels, more than {MAX_PIXELS}" in message


def _png(seed: int, size: tuple[int, int] = (24, 32)) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, size, dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def test_plant_batches_are_ingested_beside_the_public_tiles(synthetic_dataset, tmp_path):
    plant = tmp_path / "plant"
    mask = np.zeros((24, 32), np.uint8)
    mask[3:6, 4:9] = 1
    write_plant_batch(plant / "b1", [(_png(1), "crack", mask), (_png(2), "free", np.zeros_like(mask))])
    # the same tile labelled again later: the later label counts
    write_plant_batch(plant / "b2", [(_png(1), "blowhole", mask)])
    public = ingest(str(synthetic_dataset), tmp_path / "a")
    records = ingest(str(synthetic_dataset), tmp_path / "out", plant=plant)
    assert records[: len(public)] == public
    new = {r.id: r for r in records[len(public) :]}
    sha1 = hashlib.sha256(_png(1)).hexdigest()
    assert set(new) == {
        f"blowhole/plant-{sha1[:16]}",
        f"free/plant-{hashlib.sha256(_png(2)).hexdigest()[:16]}",
    }
    tile = new[f"blowhole/plant-{sha1[:16]}"]
    assert (tile.origin, tile.defect_pixels, tile.image_sha256) == ("plant/b2", 15, sha1)
    assert read_records(tmp_path / "out" / "manifest.csv") == records
    stored = np.asarray(Image.open(tmp_path / "out" / tile.mask))
    assert (stored == mask).all()


def test_a_plant_tile_that_is_a_public_tile_keeps_its_public_label(synthetic_dataset, tmp_path):
    public_image = next((synthetic_dataset / "MT_Crack" / "Imgs").glob("*.jpg")).read_bytes()
    shape = decode_gray(public_image).shape
    write_plant_batch(tmp_path / "plant" / "b1", [(public_image, "free", np.zeros(shape, np.uint8))])
    records = ingest(str(synthetic_dataset), tmp_path / "out", plant=tmp_path / "plant")
    assert not any(r.from_plant for r in records)


def test_bad_plant_labels_are_named_and_nothing_is_ingested(synthetic_dataset, tmp_path):
    plant = tmp_path / "plant"
    dirty = np.ones((24, 32), np.uint8)
    batch = plant / "b1"
    write_plant_batch(batch, [(_png(3), "free", dirty), (_png(4), "../etc", dirty)])
    with pytest.raises(IngestError) as err:
        ingest(str(synthetic_dataset), tmp_path / "out", plant=plant)
    assert "a defect-free tile's mask marks 768 defect pixels" in str(err.value)
    assert "class '../etc' is not a lower-case word" in str(err.value)
    assert str(batch / "masks") in str(err.value)
    assert not (tmp_path / "out" / "manifest.csv").exists()
