"""Reading one top-level key of ``params.yaml`` into its dataclass.

``params.yaml`` is the only source of values: the dataclasses have no defaults, and :func:`load_section`
rejects a section that lacks a key or has one too many, naming it (``params.yaml: missing key
promote.floor``), and a choice (a ``Literal`` field) outside its options, before any stage runs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ParamsError(ValueError):
    """``params.yaml`` does not match the dataclasses; the message names every bad key."""


def _build(cls: type[T], raw: Any, where: str, errors: list[str]) -> T | None:
    """``cls`` from the mapping ``raw`` at the dotted key path ``where``; problems go to ``errors``."""
    if not isinstance(raw, dict):
        errors.append(f"{where} must be a mapping, not {raw!r}")
        return None
    types = get_type_hints(cls)
    errors.extend(f"unknown key {where}.{k}" for k in raw if k not in types)
    values: dict[str, Any] = {}
    for name, kind in types.items():
        key = f"{where}.{name}"
        if name not in raw:
            errors.append(f"missing key {key}")
        elif raw[name] is None:
            errors.append(f"key {key} has no value")
        elif dataclasses.is_dataclass(kind):
            values[name] = _build(kind, raw[name], key, errors)  # type: ignore[arg-type]
        elif get_origin(kind) is Literal and raw[name] not in get_args(kind):
            options = ", ".join(map(repr, get_args(kind)))
            errors.append(f"key {key} must be one of {options}, not {raw[name]!r}")
        else:
            values[name] = tuple(raw[name]) if isinstance(raw[name], list) else raw[name]
    return None if errors else cls(**values)


def load_section(path: str | Path, key: str, cls: type[T]) -> T:
    """``params.yaml``'s ``key`` as ``cls``: every field must be there, and nothing else, so no value is
    ever guessed."""
    with open(path) as f:
        raw = yaml.safe_load(f)
    errors: list[str] = []
    if not isinstance(raw, dict) or key not in raw:
        errors.append(f"missing key {key}")
        section = None
    else:
        section = _build(cls, raw[key], key, errors)
    if section is None:
        raise ParamsError(f"{Path(path).name}: " + "; ".join(errors))
    return section


def as_dict(params: Any) -> dict[str, Any]:
    """Plain JSON-able dict of a params dataclass (tuples become lists)."""
    return dataclasses.asdict(params)
