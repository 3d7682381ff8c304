"""The package's shape: no import cycle, and each layer imports only the layers below it.

The import graph is computed from the source (every `import`, also those inside functions and
under TYPE_CHECKING), so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "ifcoord"

# Each subpackage, with the ones it may import (models and errors are for everyone).
LAYERS: dict[str, set[str]] = {
    "files": set(),
    "core": {"files"},
    "git": {"files", "core"},
    "views": {"files", "core", "git"},
    "ownbranch": {"files", "core", "git", "session"},
    "session": {"files", "core", "git", "ownbranch"},
    "agent": {"files", "core", "git", "ownbranch", "session", "views"},
    "serve": set(),
    "cli": {"files", "core", "git", "ownbranch", "session", "views", "agent", "serve"},
}
BASE = {"ifcoord", "ifcoord.models", "ifcoord.errors"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The ifcoord modules `path` imports; `from ifcoord.core import lifecycle` names the module."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("ifcoord")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ifcoord"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in known else node.module)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(path, known) & known - {name} for name, path in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, or None (iterative depth-first search, three colours)."""
    colour = dict.fromkeys(g, 0)
    for root in sorted(g):
        if colour[root]:
            continue
        stack: list[tuple[str, list[str]]] = [(root, sorted(g[root]))]
        path = [root]
        colour[root] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                colour[node] = 2
                stack.pop()
                path.pop()
                continue
            nxt = todo.pop()
            if colour[nxt] == 1:
                return path[path.index(nxt) :] + [nxt]
            if colour[nxt] == 0:
                colour[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(g[nxt])))
    return None


def test_the_graph_is_computed_from_real_imports() -> None:
    g = graph()
    assert "ifcoord.core.lifecycle" in g["ifcoord.core.ops"]
    assert "ifcoord.cli.common" in g["ifcoord.cli.reads"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_there_is_no_import_cycle_in_the_package() -> None:
    assert find_cycle(graph()) is None


def test_each_layer_imports_only_the_layers_below_it() -> None:
    wrong = []
    for name, deps in graph().items():
        parts = name.split(".")
        if len(parts) < 3:
            continue  # top-level modules: models, errors, demo, __main__
        layer = parts[1]
        allowed = LAYERS[layer] | {layer}
        for dep in deps - BASE:
            dep_parts = dep.split(".")
            if len(dep_parts) >= 2 and dep_parts[1] not in allowed:
                wrong.append(f"{name} imports {dep}")
    assert wrong == []


def test_every_subpackage_has_a_layer() -> None:
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert subpackages <= set(LAYERS)
