"""The layering the dev kit exists for: scripts/ never imports tests/, and devkit imports neither.

Read from the source with `ast` (every import statement, also inside functions), so a new import fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.docs.markdown import ROOT


def imported_packages(directory: Path) -> dict[str, set[str]]:
    """{file relative to `directory`: the top-level packages its import statements name}."""
    found: dict[str, set[str]] = {}
    for path in sorted(directory.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(directory))] = names
    return found


def importers_of(directory: Path, *packages: str) -> list[str]:
    wanted = set(packages)
    return [
        f"{file}: {sorted(names & wanted)}" for file, names in imported_packages(directory).items() if names & wanted
    ]


def test_scripts_never_import_tests() -> None:
    assert importers_of(ROOT / "scripts", "tests") == []


def test_devkit_imports_neither_scripts_nor_tests() -> None:
    assert importers_of(ROOT / "devkit" / "src", "scripts", "tests") == []


def test_the_check_sees_imports_inside_functions_and_plain_imports(tmp_path: Path) -> None:
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "late.py").write_text("def f() -> None:\n    from tests.support import servers\n")
    (tmp_path / "plain.py").write_text("import tests.support.node\nimport httpx2\n")
    (tmp_path / "relative.py").write_text("from .tests import x\n")  # a relative import is the package's own
    assert importers_of(tmp_path, "tests") == ["nested/late.py: ['tests']", "plain.py: ['tests']"]
