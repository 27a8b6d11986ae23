"""A name that starts with one underscore belongs to its module: no other module of ours imports it
(`from sscard.x import _name`) or reaches for it (`x._name` where `x` is one of our modules).

import-linter checks which modules may import which; this checks the other half of a layer contract,
what a module may take from another. A helper two modules need is made public (and named for what it
does), or moved where both can reach it."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _module_of(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, path: Path, root: Path) -> str:
    """The module an `from ... import` names, relative imports resolved against the file's package."""
    if not node.level:
        return node.module or ""
    package = _module_of(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def private_names_taken_across_modules(root: Path = SRC) -> list[str]:
    found: list[str] = []
    for path in sorted((root / "sscard").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        ours: set[str] = set()  # local names bound to one of our modules (or things in them)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = _absolute(node, path, root)
                if not source.startswith("sscard"):
                    continue
                for alias in node.names:
                    if _private(alias.name):
                        found.append(f"{path.relative_to(root)}:{node.lineno} from {source} import {alias.name}")
                    ours.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                ours.update((a.asname or a.name).split(".")[0] for a in node.names if a.name.startswith("sscard"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                    and node.value.id in ours):
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.value.id}.{node.attr}")
    return found


def test_no_module_takes_another_modules_private_names():
    assert private_names_taken_across_modules() == []


def test_the_check_finds_a_private_import_and_a_private_attribute(tmp_path):
    package = tmp_path / "sscard"
    (package / "services").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "services" / "__init__.py").write_text("")
    (package / "services" / "loss.py").write_text("def _ss_transition():\n    pass\n")
    (package / "services" / "cards.py").write_text(
        "from . import loss\nfrom .loss import _ss_transition\n\n\ndef f():\n    return loss._ss_transition()\n")
    assert private_names_taken_across_modules(tmp_path) == [
        "sscard/services/cards.py:2 from sscard.services.loss import _ss_transition",
        "sscard/services/cards.py:6 loss._ss_transition",
    ]
