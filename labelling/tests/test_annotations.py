import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tilescan_labelling.annotations import ExportError, import_export
from tilescan_labelling.interface import painted
from tilescan_labelling.tasks import export_tasks, least_certain_first
from tilescan_shared.labelled import read_labels


def brush(mask: np.ndarray, label: str) -> dict:
    [stroke] = painted(mask, label)
    return stroke


DEFECT_FREE = {
    "from_name": "verdict",
    "to_name": "image",
    "type": "choices",
    "value": {"choices": ["Defect-free"]},
}


def labelled(store, tmp_path: Path, results: dict[int, list[list[dict]]]) -> Path:
    """A Label Studio export of the store's tasks: task i gets one annotation per result list."""
    tasks = export_tasks(store, tmp_path / "label")
    for i, task in enumerate(tasks):
        task["id"] = i + 1
        task["annotations"] = [
            {"id": 10 * i + k, "result": r, "was_cancelled": False, "updated_at": f"2026-12-06T07:0{k}:00Z"}
            for k, r in enumerate(results.get(i, []))
        ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    return path


def shape_of(store, i: int) -> tuple[int, int]:
    """The size of the export's ``i``-th tile."""
    record = least_certain_first(store)[i]
    return record.height, record.width


def test_a_person_s_corrections_become_a_labelled_batch(store, tmp_path):
    crack = np.zeros(shape_of(store, 0), bool)
    crack[1:3, 2:9] = True
    blow = np.zeros(shape_of(store, 0), bool)
    blow[5:7, 0:2] = True
    export = labelled(
        store,
        tmp_path,
        {
            0: [
                [brush(blow, "Defect")],
                [brush(crack, "Crack"), brush(blow, "Blowhole")],
            ],  # the later one counts
            1: [[DEFECT_FREE]],
        },  # task 2: nobody labelled it yet
    )
    result = import_export(export, store, tmp_path / "plant", "b1")
    assert result.unlabelled == 1 and result.batch == tmp_path / "plant" / "b1"
    tiles = {t.sha256: t for t in read_labels(result.batch)}
    assert len(tiles) == 2
    first = json.loads(export.read_text())[0]["data"]["sha256"]
    assert tiles[first].cls == "crack"  # the label covering most pixels
    mask = np.asarray(Image.open(result.batch / tiles[first].mask))
    assert (mask == (crack | blow)).all() and tiles[first].defect_pixels == 18
    assert (result.batch / tiles[first].image).read_bytes() == store.image(first)
    free = next(t for t in tiles.values() if t.sha256 != first)
    assert free.cls == "free" and not np.asarray(Image.open(result.batch / free.mask)).any()


def test_cancelled_annotations_do_not_count(store, tmp_path):
    export = labelled(store, tmp_path, {0: [[DEFECT_FREE]]})
    tasks = json.loads(export.read_text())
    tasks[0]["annotations"][0]["was_cancelled"] = True
    export.write_text(json.dumps(tasks))
    result = import_export(export, store, tmp_path / "plant", "b1")
    assert result.tiles == [] and result.unlabelled == 3


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda tasks, shape: tasks[0]["data"].update(sha256="f" * 64), "is not a capture of"),
        (
            lambda tasks, shape: tasks[0]["annotations"].append(
                {"id": 99, "result": [brush(np.ones((4, 4)), "Crack")], "updated_at": "2026-12-06T08:00:00Z"}
            ),
            "painted on a 4x4 image, the captured tile is",
        ),
        (
            lambda tasks, shape: tasks[0]["annotations"].append(
                {"id": 99, "result": [brush(np.ones(shape), "Scratch")], "updated_at": "2026-12-06T08:00:00Z"}
            ),
            "label 'Scratch' is not one of the interface's",
        ),
    ],
    ids=["unknown-tile", "wrong-size", "unknown-label"],
)
def test_a_mismatched_export_is_refused_and_nothing_is_written(store, tmp_path, break_it, message):
    export = labelled(store, tmp_path, {0: [[DEFECT_FREE]], 1: [[DEFECT_FREE]]})
    tasks = json.loads(export.read_text())
    break_it(tasks, shape_of(store, 0))
    export.write_text(json.dumps(tasks))
    with pytest.raises(ExportError, match=message) as err:
        import_export(export, store, tmp_path / "plant", "b1")
    assert "nothing imported" in str(err.value)
    assert not (tmp_path / "plant").exists()


@pytest.mark.parametrize("content", ["{not json", '{"tasks": []}', "[1, 2]"])
def test_a_malformed_export_is_refused(store, tmp_path, content):
    export = tmp_path / "export.json"
    export.write_text(content)
    with pytest.raises(ExportError, match="not a Label Studio JSON export"):
        import_export(export, store, tmp_path / "plant", "b1")
    assert not (tmp_path / "plant").exists()


def test_a_batch_is_written_once_and_where_it_belongs(store, tmp_path):
    export = labelled(store, tmp_path, {0: [[DEFECT_FREE]]})
    import_export(export, store, tmp_path / "plant", "b1")
    with pytest.raises(ExportError, match="exists already"):
        import_export(export, store, tmp_path / "plant", "b1")
    with pytest.raises(ExportError, match="not a folder name"):
        import_export(export, store, tmp_path / "plant", "../b2")
    assert not (tmp_path / "b2").exists()


def test_a_truncated_stroke_is_refused(store, tmp_path):
    stroke = brush(np.ones(shape_of(store, 0), bool), "Crack")
    stroke["value"]["rle"] = stroke["value"]["rle"][:5]
    export = labelled(store, tmp_path, {0: [[stroke]]})
    with pytest.raises(ExportError, match="nothing imported"):
        import_export(export, store, tmp_path / "plant", "b1")
