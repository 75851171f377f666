"""``tilescan-label``: export captures as Label Studio tasks, upload them, import the labelled masks.

tilescan-label export --captures URL --out DIR [--coco]
tilescan-label upload --out DIR --url http://127.0.0.1:8080 --api-key KEY [--title T]
tilescan-label import --captures URL --file EXPORT.json --plant data/plant --batch NAME
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from tilescan_labelling import studio
from tilescan_labelling.annotations import ExportError, import_export
from tilescan_labelling.tasks import TASKS_FILE, export_tasks
from tilescan_shared.captures import UNCERTAIN, CaptureStore


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tilescan-label", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser(
        "export", help="captures -> DIR/tasks.json and DIR/images/ (Label Studio's document root)"
    )
    export.add_argument("--captures", required=True, help="the capture store: a directory or fsspec URL")
    export.add_argument("--out", required=True, type=Path)
    export.add_argument(
        "--coco", action="store_true", help="also write DIR/coco.json (COCO, RLE masks) for CVAT"
    )
    up = commands.add_parser("upload", help="a new Label Studio project with DIR/tasks.json")
    up.add_argument("--out", required=True, type=Path, help="the folder `export` wrote")
    up.add_argument("--url", default=os.environ.get("LABEL_STUDIO_URL", "http://127.0.0.1:8080"))
    up.add_argument(
        "--api-key", default=os.environ.get("LABEL_STUDIO_API_KEY"), help="or LABEL_STUDIO_API_KEY"
    )
    up.add_argument("--title", default=f"tilescan {datetime.now(UTC):%Y-%m-%d %H:%M}")
    imp = commands.add_parser("import", help="a Label Studio JSON export -> a labelled batch in PLANT/BATCH")
    imp.add_argument("--captures", required=True)
    imp.add_argument("--file", required=True, type=Path, help="Label Studio's JSON export")
    imp.add_argument("--plant", default=Path("data/plant"), type=Path)
    imp.add_argument("--batch", default=f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
    args = parser.parse_args(argv)

    if args.command == "export":
        tasks = export_tasks(CaptureStore(args.captures), args.out, args.coco)
        uncertain = sum(t["data"]["reason"] == UNCERTAIN for t in tasks)
        print(f"exported {len(tasks)} tasks ({uncertain} uncertain, first) to {args.out / TASKS_FILE}")
    elif args.command == "upload":
        if not args.api_key:
            sys.exit("tilescan-label upload: give --api-key or set LABEL_STUDIO_API_KEY (Account & Settings)")
        tasks = json.loads((args.out / TASKS_FILE).read_text())
        ls = studio.client(args.url, args.api_key)
        project = studio.create_project(ls, args.title, args.out)
        count = studio.upload(ls, project, tasks)
        print(f"project {project}: {count} tasks, {args.url}/projects/{project}/data")
    else:
        try:
            result = import_export(args.file, CaptureStore(args.captures), args.plant, args.batch)
        except ExportError as err:
            sys.exit(f"tilescan-label import: {err}")
        print(
            f"imported {len(result.tiles)} tiles into {result.batch} "
            f"({result.unlabelled} tasks not labelled yet)"
        )


if __name__ == "__main__":
    main()
