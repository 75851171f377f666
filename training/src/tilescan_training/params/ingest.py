"""``params.yaml``'s ``ingest:``: where the dataset comes from (the ingest stage)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IngestParams:
    # The upstream archive URL (http, https or file), a local .zip, or a folder with the upstream layout.
    source: str
    # sha256 of the archive: required for http(s) URLs, checked for local archives when given ("" = none).
    sha256: str
    # The plant tiles people labelled: one folder per batch (tilescan_shared.labelled), each `dvc add`ed.
    plant: str
