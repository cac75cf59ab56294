"""The training core and the aggregation rules are pure PyTorch: nothing under
workers/training or workers/aggregation may import Ray, SQLAlchemy, FastAPI or
httpx (the Ray layer wraps these classes from outside)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE_PACKAGES = [ROOT / "workers" / "training", ROOT / "workers" / "aggregation"]
FORBIDDEN = {"ray", "sqlalchemy", "fastapi", "httpx"}


def imported_top_levels(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (getattr(node.func, "attr", None) or getattr(node.func, "id", None))
            in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value.split(".")[0])
    return names


def source_files() -> list[Path]:
    return sorted(p for package in PURE_PACKAGES for p in package.rglob("*.py"))


def test_the_scan_sees_every_kind_of_import() -> None:
    found = imported_top_levels(
        "import ray.util\nfrom sqlalchemy.orm import Session\n"
        "import importlib\nimportlib.import_module('httpx')\n__import__('fastapi')\n"
    )
    assert found >= FORBIDDEN


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_forbidden_imports(path: Path) -> None:
    assert not imported_top_levels(path.read_text()) & FORBIDDEN


def test_the_packages_are_scanned() -> None:
    names = {p.name for p in source_files()}
    assert {"coordinator.py", "replica.py", "runner.py", "lag_wk.py", "lasg_wk2.py"} <= names
