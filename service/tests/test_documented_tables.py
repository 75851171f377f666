"""The user's tables follow the code: README's error codes and docs/operations.md's settings."""

from __future__ import annotations

import re
from pathlib import Path

from tilescan_service.config import Settings
from tilescan_service.errors.codes import ErrorCode

ROOT = Path(__file__).resolve().parents[2]
TICKED = re.compile(r"`([^`]*)`")


def table_rows(path: Path, header: str) -> list[list[str]]:
    """The cells of the markdown table whose header line starts with ``header``."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_readme_lists_every_error_code_under_its_status():
    documented = {
        code: None if status == "other" else int(status)
        for status, codes, _ in table_rows(ROOT / "README.md", "| status | `error` |")
        for code in TICKED.findall(codes)
    }
    assert documented == {code.value: code.status for code in ErrorCode}


def _parse(value: str) -> object:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def test_operations_guide_lists_every_setting_with_its_default():
    defaults: dict[str, object] = {}
    for names, default, _ in table_rows(ROOT / "docs/operations.md", "| variable |"):
        variables = TICKED.findall(re.sub(r"\(.*?\)", "", names))  # "(or TILESCAN_PORT)": an alias
        values = TICKED.findall(default) or [None]  # "none": unset
        for i, variable in enumerate(variables):
            field = variable.removeprefix("TILESCAN_").lower()
            defaults[field] = _parse(values[min(i, len(values) - 1)]) if values[0] is not None else None
    expected = {name: _documented(field.default) for name, field in Settings.model_fields.items()}
    assert defaults == expected


def _documented(default: object) -> object:
    """A default as the table writes it: numbers as numbers, nothing as "none", the rest as text."""
    if default in (None, []):
        return None
    return default if isinstance(default, int | float) else str(default)
