"""The folders are the layers: no package imports, directly or through others, from a package
that imports from it (`modes` → `cells` → `backward` → `driver` → `online`, `diagnostics`, `nn`
→ `reporting` → `training`). Every import counts, the ones inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "lstm_jax"


def _imports(path: Path) -> set[str]:
    """The `lstm_jax...` modules `path` imports anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("lstm_jax"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if not node.module.startswith("lstm_jax"):
                continue
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _unit(parts: tuple[str, ...], depth: int) -> str | None:
    """The folder (or top-level module) at `depth` below `lstm_jax` that `parts` lies in."""
    if len(parts) <= depth:
        return None
    name = parts[depth].removesuffix(".py")
    return name if name != "__init__" else None


def _graph(package: tuple[str, ...]) -> dict[str, set[str]]:
    """Edges between the children of `package` (folders and modules) from their imports."""
    depth = len(package)
    graph: dict[str, set[str]] = {}
    for path in ROOT.joinpath(*package[1:]).rglob("*.py"):
        source = _unit(("lstm_jax", *path.relative_to(ROOT).parts), depth)
        if source is None:
            continue
        for name in _imports(path):
            parts = tuple(name.split("."))
            if parts[:depth] != package:
                continue
            target = _unit(parts, depth)
            child = ROOT.joinpath(*parts[1 : depth + 1])
            exists = child.is_dir() or child.with_suffix(".py").exists()
            if target and target != source and exists:
                graph.setdefault(source, set()).add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph`, as the path round it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], node, nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, node])):
                return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [])):
            return found
    return None


PACKAGES = [("lstm_jax",)] + [
    ("lstm_jax", *p.relative_to(ROOT).parts)
    for p in sorted(ROOT.rglob("*"))
    if p.is_dir() and (p / "__init__.py").exists()
]


@pytest.mark.parametrize("package", PACKAGES, ids=".".join)
def test_no_folder_imports_from_a_folder_that_imports_from_it(package):
    cycle = _cycle(_graph(package))
    assert cycle is None, f"import cycle in {'.'.join(package)}: {' -> '.join(cycle)}"


def test_the_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_layers_run_bottom_up():
    graph = _graph(("lstm_jax",))
    order = ["modes", "cells", "backward", "driver", "online", "nn", "reporting", "training"]
    for i, low in enumerate(order):
        above = set(order[i + 1 :]) & _reach(graph, low)
        assert not above, f"{low} imports from the layers above it: {sorted(above)}"


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen
