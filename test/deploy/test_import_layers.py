# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The import graph between vggt_ros's parts (its subpackages and top-level modules) has no cycle.

Every import is counted, wherever it is written: at module level, inside functions (lazy imports), and under
``if TYPE_CHECKING``. A cycle means two parts that can only be understood, tested and changed together.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "vggt_ros"


def module_parts(path: Path, root: Path) -> list[str]:
    """``<root>/vggt_ros/runtime/config.py`` -> ['vggt_ros', 'runtime', 'config']; a package's ``__init__`` is the
    package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported_modules(path: Path, root: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import statement in ``path`` (under ``root``), relative ones resolved."""
    parts = module_parts(path, root)
    package = parts if path.name == "__init__.py" else parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.module, node.lineno))
                continue
            base = package[: len(package) - node.level + 1]
            if node.module:
                found.append((".".join([*base, node.module]), node.lineno))
            else:  # `from . import x`: x may be a module of the package
                found += [(".".join([*base, alias.name]), node.lineno) for alias in node.names]
    return found


def part_graph(package: Path) -> dict[str, dict[str, list[str]]]:
    """part -> part it imports -> the 'file:line' of each such import. A part is the name right under vggt_ros."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(package.rglob("*.py")):
        parts = module_parts(path, package.parent)
        if len(parts) < 2:
            continue  # vggt_ros/__init__.py belongs to no part
        for module, line in imported_modules(path, package.parent):
            target = module.split(".")
            if target[0] == "vggt_ros" and len(target) > 1 and target[1] != parts[1]:
                graph.setdefault(parts[1], {}).setdefault(target[1], []).append(
                    f"{path.relative_to(package.parent)}:{line}"
                )
    return graph


def find_cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, ..., a], or None (depth-first search with a path stack)."""
    state: dict[str, str] = {}  # part -> "open" (on the current path) | "done"
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, {})):
            if state.get(target) == "open":
                return path[path.index(target) :] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_find_cycle_finds_a_three_part_cycle_and_accepts_a_layered_graph():
    layered = {"runtime": {"model": ["a"]}, "quantization": {"runtime": ["b"], "model": ["c"]}}
    assert find_cycle(layered) is None
    cyclic = {**layered, "model": {"export": ["d"]}, "export": {"quantization": ["e"]}}
    assert find_cycle(cyclic) == ["export", "quantization", "model", "export"]


def test_relative_and_lazy_imports_are_resolved(tmp_path):
    module = tmp_path / "vggt_ros" / "runtime" / "config.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "from ..quantized_formats.schemes import W4A16\n"
        "from . import pipeline\n"
        "def load():\n"
        "    from vggt_ros.model import VGGT\n"
    )
    assert imported_modules(module, tmp_path) == [
        ("vggt_ros.quantized_formats.schemes", 1),
        ("vggt_ros.runtime.pipeline", 2),
        ("vggt_ros.model", 4),
    ]


def test_no_two_parts_of_vggt_ros_import_each_other_even_through_others():
    graph = part_graph(PACKAGE)
    assert "model" in graph["runtime"]  # the walk sees the real tree
    cycle = find_cycle(graph)
    if cycle:
        steps = [f"{a} -> {b} ({', '.join(graph[a][b][:3])})" for a, b in zip(cycle, cycle[1:])]
        pytest.fail("import cycle between parts of vggt_ros:\n" + "\n".join(steps))
