"""Every public function, class and method of the package says what it does.

Public: a module-level function or class, or a method of a public class, whose name does not
start with ``_`` (dunder methods included in that). Functions nested in functions are not
public. The check reads the source with ``ast``: it imports nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("skynet_tasks", "workers")
Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def public_definitions(tree: ast.Module) -> Iterator[tuple[str, Definition]]:
    """(dotted name, node) of every public function, class and method in ``tree``."""

    def walk(body: list[ast.stmt], prefix: str) -> Iterator[tuple[str, Definition]]:
        for node in body:
            if isinstance(node, Definition) and not node.name.startswith("_"):
                yield prefix + node.name, node
                if isinstance(node, ast.ClassDef):
                    yield from walk(node.body, f"{prefix}{node.name}.")

    return walk(tree.body, "")


def undocumented(path: Path) -> list[str]:
    """``file:line name`` of each public definition in ``path`` without a docstring."""
    tree = ast.parse(path.read_text(), filename=str(path))
    relative = path.relative_to(ROOT)
    return [f"{relative}:{node.lineno} {name}" for name, node in public_definitions(tree)
            if not (ast.get_docstring(node) or "").strip()]


def package_files() -> list[Path]:
    """Every Python file of the package, the sample app's included."""
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
                  if "__pycache__" not in path.parts)


def test_every_public_function_class_and_method_of_the_package_has_a_docstring():
    missing = [entry for path in package_files() for entry in undocumented(path)]

    assert not missing, f"{len(missing)} public definitions without a docstring:\n" + "\n".join(missing)


def test_the_check_finds_a_missing_docstring_and_passes_private_nested_and_documented_ones(tmp_path):
    source = tmp_path / "module.py"
    source.write_text(
        "def public(): pass\n"
        "def _private(): pass\n"
        "def documented():\n    '''What it does.'''\n    def nested(): pass\n"
        "class Public:\n    def method(self): pass\n    def __init__(self): pass\n"
        "    @property\n    def value(self):\n        '''The value.'''\n"
        "class _Private:\n    def method(self): pass\n"
    )
    tree = ast.parse(source.read_text())

    found = [name for name, node in public_definitions(tree) if not ast.get_docstring(node)]

    assert found == ["public", "Public", "Public.method"]
