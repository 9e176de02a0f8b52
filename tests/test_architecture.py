"""The package's structure: imports run one way between its top-level parts, and errors live in one module.

Every import statement of every module is read (imports inside functions
too), grouped by top-level part (each subpackage, each single-file module),
and checked against the declared order: a part may import only the parts
below it.  So the graph between parts has no cycle, and its direction is the
one the README's "How the code is organised" section describes.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "modelzoo"

#: Lowest first; a part may import only the parts listed before it.
LAYERS = (
    "errors",
    "formats",
    "config",
    "names",
    "manifest",
    "fetch",
    "devices",
    "architectures",
    "loading",
    "preprocessing",
    "models",
    "datasets",
    "inference",
    "evaluation",
    "export",
    "testing",
    "table",
    "demo",
    "cli",
)
#: The façade and the entry point may import anything.
TOP = ("__init__", "__main__")


def part_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imported_parts(path: Path) -> set[str]:
    """The top-level parts of ``modelzoo`` that a module imports, anywhere in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(("modelzoo", *path.relative_to(PACKAGE).with_suffix("").parts[:-1]))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base == "modelzoo":  # from modelzoo import manifest, fetch
                names.update(f"modelzoo.{alias.name}" for alias in node.names)
            else:
                names.add(base)
    parts = {name.split(".")[1] for name in names if name.startswith("modelzoo.") and len(name.split(".")) > 1}
    return {p for p in parts if p != "__version__"}


MODULES = sorted(path for path in PACKAGE.rglob("*.py") if "manifest_data" not in path.parts)


def test_every_part_is_placed_in_the_layer_order():
    parts = {part_of(path) for path in MODULES} - set(TOP)
    assert sorted(parts - set(LAYERS)) == [], "place the new part in LAYERS (and the README's layout section)"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_parts_below_its_own(path):
    part = part_of(path)
    if part in TOP:
        return
    rank = LAYERS.index(part)
    upward = sorted(p for p in imported_parts(path) - {part} if p in LAYERS and LAYERS.index(p) > rank)
    assert upward == [], f"{path.relative_to(PACKAGE)} ({part}) imports {upward}, which sit above it"


def test_every_exception_class_lives_in_errors():
    pattern = re.compile(r"^class (\w+)\((.*(Error|Exception)\b.*)\):", re.MULTILINE)
    elsewhere = []
    for path in MODULES:
        if path.name == "errors.py":
            continue
        for match in pattern.finditer(path.read_text(encoding="utf-8")):
            if not match.group(1).startswith("_"):  # private control-flow signals stay where they are used
                elsewhere.append(f"{path.relative_to(PACKAGE)}: {match.group(1)}")
    assert elsewhere == []


def test_every_error_of_errors_is_a_model_zoo_error():
    from modelzoo import errors

    classes = [value for value in vars(errors).values() if isinstance(value, type) and issubclass(value, Exception)]
    assert len(classes) > 10
    assert all(issubclass(cls, errors.ModelZooError) for cls in classes)
