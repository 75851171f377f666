import json

import numpy as np
from label_studio_sdk.converter.brush import decode_rle
from PIL import Image

from tilescan_labelling.interface import LABEL_CONFIG
from tilescan_labelling.tasks import export_tasks
from tilescan_shared.masks import decode_rle as decode_coco_rle


def test_tasks_carry_the_model_mask_as_a_prediction_least_certain_first(store, tmp_path):
    out = tmp_path / "label"
    tasks = export_tasks(store, out, with_coco=True)
    assert json.loads((out / "tasks.json").read_text()) == tasks
    # |score - threshold|: 0.01, 0.05, 0.25
    assert [t["predictions"][0]["score"] for t in tasks] == [0.01, 0.05, 0.25]
    records = {r.sha256: r for r in store.records()}
    for t in tasks:
        record = records[t["data"]["sha256"]]
        image = np.asarray(Image.open(out / "images" / f"{record.sha256}.png"))
        assert image.shape == (record.height, record.width)
        assert t["data"]["image"] == f"/data/local-files/?d=images/{record.sha256}.png"
        [result] = t["predictions"][0]["result"]
        if record.has_defect:
            painted = decode_rle(result["value"]["rle"]).reshape(record.height, record.width, 4)[:, :, 3] > 0
            assert (painted == decode_coco_rle(record.rle).astype(bool)).all()
            assert result["value"]["brushlabels"] == ["Defect"]
            assert (result["original_height"], result["original_width"]) == (record.height, record.width)
        else:
            assert result["value"]["choices"] == ["Defect-free"]
        for name in ("from_name", "to_name"):  # the names the interface declares
            assert f'name="{result[name]}"' in LABEL_CONFIG


def test_coco_keeps_the_model_masks_as_rle(store, tmp_path):
    export_tasks(store, tmp_path, with_coco=True)
    coco = json.loads((tmp_path / "coco.json").read_text())
    assert len(coco["images"]) == 3 and len(coco["annotations"]) == 2
    by_file = {i["id"]: i for i in coco["images"]}
    for a in coco["annotations"]:
        image = by_file[a["image_id"]]
        mask = decode_coco_rle(a["segmentation"])
        assert mask.shape == (image["height"], image["width"]) and mask.sum() == a["area"]
        x, y, w, h = a["bbox"]
        assert mask[y : y + h, x : x + w].sum() == a["area"]
