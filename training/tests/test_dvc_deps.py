"""Each DVC stage's ``deps:`` list exactly the project modules its command imports, so that changing
any of them re-runs the stage, and nothing else does."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
# Import root -> source folder, for the project's own packages.
PACKAGES = {
    "tilescan_training": REPO / "training/src/tilescan_training",
    "tilescan_shared": REPO / "shared/src/tilescan_shared",
}
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def module_file(name: str) -> Path | None:
    """The source file of a project module (``None`` for other modules and for packages)."""
    root, _, rest = name.partition(".")
    if root not in PACKAGES or not rest:
        return None
    path = PACKAGES[root].joinpath(*rest.split("."))
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` anywhere in the file may load (``from a import b``: ``a`` and ``a.b``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def project_closure(module: str) -> set[Path]:
    """The project files ``module`` loads, itself included, following imports transitively."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        path = module_file(todo.pop())
        if path is None or path in seen:
            continue
        seen.add(path)
        todo.extend(imported_modules(path))
    return seen


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_code_deps_are_exactly_the_imported_modules(stage: str):
    module = f"tilescan_training.stages.{stage}"
    assert STAGES[stage]["cmd"] == f"python -m {module}"
    code_roots = tuple(str(p.relative_to(REPO)) for p in PACKAGES.values())
    declared = {d for d in STAGES[stage]["deps"] if isinstance(d, str) and d.startswith(code_roots)}
    closure = project_closure(module)
    other_stages = sorted(p.stem for p in closure if p.parent.name == "stages" and p.stem != stage)
    assert not other_stages, (
        f"stage {stage!r} imports stage(s) {other_stages}: move what they share to a module"
    )
    imported = {str(p.relative_to(REPO)) for p in closure}
    assert sorted(declared) == sorted(imported), (
        f"dvc.yaml stage {stage!r}: add {sorted(imported - declared)}, remove {sorted(declared - imported)}"
    )


def test_packages_have_no_code_in_init():
    """``__init__.py`` files are not deps, which is only right while they hold nothing but a docstring."""
    for root in PACKAGES.values():
        for init in root.rglob("__init__.py"):
            body = ast.parse(init.read_text()).body
            assert all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body), init
