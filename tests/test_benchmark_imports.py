"""The benchmark scripts run as files (`python benchmarks/x.py`) and import their
siblings as top-level modules, while mypy checks them as `benchmarks.x`: each such
import is written twice, under `if TYPE_CHECKING:` and `else:`. mypy never reads the
`else` branch and no test runs the scripts, so this checks that both branches import
the same names from the same sibling modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _imports(branch: list[ast.stmt]) -> set[tuple[str, str, str | None]]:
    """(module, name, alias) for each `from module import name as alias`."""
    found: set[tuple[str, str, str | None]] = set()
    for node in branch:
        assert isinstance(node, ast.ImportFrom) and node.module, ast.dump(node)
        found |= {(node.module, alias.name, alias.asname) for alias in node.names}
    return found


def _split_imports(path: Path) -> list[ast.If]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    ]


SCRIPTS = sorted(path for path in BENCHMARKS.glob("*.py") if _split_imports(path))


def test_the_scripts_with_split_imports_are_found() -> None:
    assert len(SCRIPTS) >= 10, SCRIPTS


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: path.name)
def test_both_branches_import_the_same_names(path: Path) -> None:
    for block in _split_imports(path):
        checked, run = _imports(block.body), _imports(block.orelse)
        assert all(module.startswith("benchmarks.") for module, _, _ in checked), checked
        assert {(m.removeprefix("benchmarks."), n, a) for m, n, a in checked} == run
        assert all((BENCHMARKS / f"{module}.py").is_file() for module, _, _ in run)
