"""A Label Studio server, through its SDK: a project with tilescan's interface, tasks in, annotations out.

``api_key`` is a personal access token (Account & Settings) or, where the organisation enables them, a
legacy token; the SDK tells them apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from label_studio_sdk import LabelStudio

from tilescan_labelling.interface import LABEL_CONFIG
from tilescan_labelling.tasks import IMAGES


def client(url: str, api_key: str) -> LabelStudio:
    return LabelStudio(base_url=url, api_key=api_key)


def create_project(ls: LabelStudio, title: str, document_root: Path) -> int:
    """A project with tilescan's interface that may show the tiles exported into ``document_root``
    (Label Studio serves a local file only below a local storage of the project)."""
    project = ls.projects.create(title=title, label_config=LABEL_CONFIG)
    assert project.id is not None
    ls.import_storage.local.create(
        project=project.id,
        path=str((document_root / IMAGES).resolve()),
        title="tilescan captures",
        use_blob_urls=False,
    )
    return project.id


def upload(ls: LabelStudio, project: int, tasks: list[dict[str, Any]]) -> int:
    """Import ``tasks`` (with their predictions) into ``project``; returns how many it took."""
    response = ls.projects.import_tasks(id=project, request=tasks)
    return int(response.task_count or 0)


def download(ls: LabelStudio, project: int, path: Path) -> list[dict[str, Any]]:
    """The project's JSON export (every task, labelled or not), written to ``path`` as is."""
    data = b"".join(ls.projects.exports.download_sync(project, export_type="JSON", download_all_tasks=True))
    path.write_bytes(data)
    return json.loads(data)
