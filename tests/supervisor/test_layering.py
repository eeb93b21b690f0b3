"""The package's modules depend on each other one way, and on nothing outside trio and attrs.

Read from the source (every ``from .x import``, including those under ``TYPE_CHECKING``), so
a cycle hidden from the interpreter by a type-only import is still one.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import ibkr_connector.supervisor as package

SOURCE = Path(package.__file__).parent


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in SOURCE.glob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                found.add(node.module)
        graph[path.stem] = found
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return [*path, module, target]
            if target not in state:
                found = visit(target, [*path, module])
                if found:
                    return found
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module, [])
            if found:
                return found
    return None


def test_the_modules_import_each_other_one_way() -> None:
    graph = _imports()
    assert {"_child", "_node", "_tree"} <= set(graph)
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


def test_records_nodes_and_the_tree_are_layered_in_that_order() -> None:
    graph = _imports()
    assert "_node" not in graph["_child"] and "_tree" not in graph["_child"]
    assert "_tree" not in graph["_node"]
    assert "_node" not in graph["_supervisor"]  # the handle knows the LiveSupervisor protocol


def test_the_package_needs_only_trio_attrs_and_the_standard_library() -> None:
    allowed = {"trio", "attrs", "__future__"} | set(sys.stdlib_module_names)
    for path in SOURCE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert roots <= allowed, f"{path.name} imports {roots - allowed}"
