"""``make flywheel-smoke``: the loop from the plant back into training, with every part real.

1. The service (the project's environment, the served model) with capture on and every tile kept, and
   a Label Studio server (this environment, SQLite, a fresh data folder), both on 127.0.0.1.
2. One tile of each public class, mirrored (a camera the dataset never saw: new bytes, so no public
   tile), posted to ``/predict``; the captures are exported as tasks with the model's masks.
3. Through the SDK: a project with tilescan's interface, the tasks imported, and for each tile a
   person's correction submitted (the true mask, mirrored, with its class; "Defect-free" for the free
   tile); Label Studio serves the exported tile back.
4. The project's JSON export imported into a labelled batch, then the pipeline's own ``ingest`` and
   ``split`` stages run on the public dataset plus that batch (in a scratch folder, not ``data/``): the
   public split must be ``data/split.csv``'s where that exists, and every plant tile must be ingested.

Ends with ``captured N, exported N, imported N, ingested N``; exits non-zero, with the servers' logs'
tails, on the first failure.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import yaml
from PIL import Image

from tilescan_labelling import studio
from tilescan_labelling.annotations import import_export
from tilescan_labelling.interface import CLASSES, IMAGE, label_of, painted, ticked_defect_free
from tilescan_labelling.tasks import export_tasks
from tilescan_shared.captures import CaptureStore
from tilescan_shared.labelled import FREE_CLASS


class SmokeError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(name: str, command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A server process for the duration of the block; its log's tail goes to stderr if the block fails."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    except BaseException:
        sys.stderr.write(f"--- {name}'s log, last lines ({log}):\n")
        sys.stderr.write("\n".join(log.read_text(errors="replace").splitlines()[-30:]) + "\n")
        raise
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def wait_for(url: str, process: subprocess.Popen, seconds: float, name: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SmokeError(f"{name} exited with {process.returncode} before it answered {url}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SmokeError(f"{name} did not answer {url} within {seconds:.0f} s")


def plant_tiles(dataset: Path) -> list[tuple[str, bytes, np.ndarray]]:
    """``(class, PNG bytes, 0/1 mask)``: the first tile of each class, mirrored left to right."""
    tiles = []
    for cls in (*CLASSES, FREE_CLASS):
        image_path = sorted((dataset / f"MT_{cls.capitalize()}" / "Imgs").glob("*.jpg"))[0]
        image = np.asarray(Image.open(image_path).convert("L"))[:, ::-1]
        mask = (np.asarray(Image.open(image_path.with_suffix(".png")).convert("L")) > 0)[:, ::-1]
        out = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image)).save(out, "PNG")
        tiles.append((cls, out.getvalue(), mask.astype(np.uint8)))
    return tiles


def correction(cls: str, mask: np.ndarray) -> list[dict]:
    """What a person submits: the true mask with its class, or "Defect-free"."""
    return ticked_defect_free() if cls == FREE_CLASS else painted(mask, label_of(cls))


def run(project_python: str, work: Path) -> str:
    params = yaml.safe_load(Path("params.yaml").read_text())
    dataset = Path(params["ingest"]["source"])
    tiles = plant_tiles(dataset)
    captures, label_dir, plant = work / "captures", work / "label", work / "plant"
    api, ls_url = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    token = secrets.token_hex(20)
    service_env = {
        "TILESCAN_PORT": api.rsplit(":", 1)[1],
        "TILESCAN_CAPTURE_URL": str(captures),
        "TILESCAN_CAPTURE_SAMPLE_RATE": "1",
    }
    studio_env = {
        "LABEL_STUDIO_BASE_DATA_DIR": str(work / "studio"),
        "LATEST_VERSION_CHECK": "false",
        "LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(label_dir),
    }
    studio_cmd = [
        str(Path(sys.executable).parent / "label-studio"),
        "start",
        "--no-browser",
        "--internal-host",
        "127.0.0.1",
        "--port",
        ls_url.rsplit(":", 1)[1],
        "--username",
        "smoke@tilescan.local",
        "--password",
        secrets.token_hex(8),
        "--user-token",
        token,
        "--enable-legacy-api-token",
    ]
    with (
        running("label-studio", studio_cmd, studio_env, work / "studio.log") as ls_process,
        running(
            "service", [project_python, "-m", "tilescan_service.serve"], service_env, work / "service.log"
        ) as service,
    ):
        # Label Studio migrates its fresh database meanwhile: most of this smoke's time.
        wait_for(f"{api}/readyz", service, 120, "the service")
        for cls, data, _ in tiles:
            r = httpx.post(f"{api}/predict", files={"image": (f"{cls}.png", data, "image/png")}, timeout=30)
            if r.status_code != 200:
                raise SmokeError(f"POST /predict ({cls}): {r.status_code} {r.text[:200]}")
        store = CaptureStore(str(captures))
        deadline = time.monotonic() + 30
        while len(list(store.records())) < len(tiles) and time.monotonic() < deadline:
            time.sleep(0.2)
        captured = len(list(store.records()))
        if captured != len(tiles):
            raise SmokeError(f"{captured} of {len(tiles)} tiles captured with sample rate 1")
        tasks = export_tasks(store, label_dir)

        wait_for(f"{ls_url}/health", ls_process, 300, "Label Studio")
        ls = studio.client(ls_url, token)
        project = studio.create_project(ls, "tilescan flywheel smoke", label_dir)
        if studio.upload(ls, project, tasks) != len(tasks):
            raise SmokeError("Label Studio did not take every task")
        truth = {hashlib.sha256(data).hexdigest(): (cls, mask) for cls, data, mask in tiles}
        for task in ls.tasks.list(project=project):
            assert task.id is not None and task.data is not None
            ls.annotations.create(id=task.id, result=correction(*truth[task.data["sha256"]]))
        first = tasks[0]["data"]
        served = httpx.get(f"{ls_url}{first[IMAGE]}", headers={"Authorization": f"Token {token}"})
        shown = Image.open(io.BytesIO(served.content)).size[::-1] if served.status_code == 200 else None
        if shown != truth[first["sha256"]][1].shape:
            raise SmokeError(
                f"Label Studio did not show the exported tile: {served.status_code}, size {shown}"
            )
        studio.download(ls, project, work / "export.json")
    imported = import_export(work / "export.json", store, plant, "smoke")
    for tile in imported.tiles:
        mask = np.asarray(Image.open(imported.batch / tile.mask))
        cls, true_mask = truth[tile.sha256]
        if tile.cls != cls or not (mask == true_mask).all():
            raise SmokeError(
                f"the imported {tile.cls} tile {tile.sha256[:16]} is not the person's {cls} mask"
            )

    params["ingest"]["plant"] = str(plant)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    stage = [project_python, "-m"]
    subprocess.run(
        [
            *stage,
            "tilescan_training.stages.ingest",
            "--params",
            str(work / "params.yaml"),
            "--out",
            str(work / "ingested"),
        ],
        check=True,
    )
    subprocess.run(
        [
            *stage,
            "tilescan_training.stages.split",
            "--params",
            str(work / "params.yaml"),
            "--manifest",
            str(work / "ingested" / "manifest.csv"),
            "--out",
            str(work / "split.csv"),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with open(work / "ingested" / "manifest.csv", newline="") as f:
        ingested = [row for row in csv.DictReader(f) if row["origin"] == f"plant/{imported.batch.name}"]
    with open(work / "split.csv", newline="") as f:
        split = {row["id"]: row["split"] for row in csv.DictReader(f)}
    plant_ids = {row["id"] for row in ingested}
    if any(split[i] not in ("train", "val", "plant_test") for i in plant_ids):
        raise SmokeError(f"plant tiles outside train/val/plant_test: {[(i, split[i]) for i in plant_ids]}")
    if Path("data/split.csv").exists():
        with open("data/split.csv", newline="") as f:
            public = {row["id"]: row["split"] for row in csv.DictReader(f)}
        if {i: s for i, s in split.items() if i not in plant_ids} != public:
            raise SmokeError("the plant tiles changed the public split (data/split.csv)")
    return (
        f"captured {captured}, exported {len(tasks)}, imported {len(imported.tiles)}, "
        f"ingested {len(ingested)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project-python", required=True, help="the project environment's python (.venv)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (its path is printed)")
    args = parser.parse_args()
    # Stopped from outside (.ci/run when another step fails): unwind, so the servers are stopped too.
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    work = Path(tempfile.mkdtemp(prefix="tilescan-flywheel-"))
    started = time.monotonic()
    try:
        line = run(args.project_python, work)
    except (SmokeError, subprocess.CalledProcessError) as err:
        sys.exit(f"flywheel-smoke failed: {err} (scratch folder: {work})")
    if args.keep:
        print(f"scratch folder: {work}")
    else:
        shutil.rmtree(work)
    print(f"flywheel-smoke passed in {time.monotonic() - started:.0f} s: {line}")


if __name__ == "__main__":
    main()
