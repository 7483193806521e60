"""The registry's rooms: no module of `tabular_pipeline.registry` imports, even inside a function,
a module that imports it back; and the gate's rule is a pure module that talks to no MLflow."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import PROJECT_DIR

REGISTRY = PROJECT_DIR / "tabular_pipeline" / "registry"


def imported_registry_modules(path: Path) -> set[str]:
    """The `tabular_pipeline.registry.*` modules a file imports anywhere (top level or in a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tabular_pipeline.registry."):
            found.add(node.module.rsplit(".", 1)[-1])
        elif isinstance(node, ast.Import):
            found |= {a.name.rsplit(".", 1)[-1] for a in node.names if a.name.startswith("tabular_pipeline.registry.")}
    return found


def test_the_registry_modules_import_each_other_without_a_cycle():
    graph = {path.stem: imported_registry_modules(path) for path in REGISTRY.glob("*.py") if path.stem != "__init__"}

    def cycle_from(start: str, node: str, trail: list[str]) -> list[str] | None:
        for target in sorted(graph.get(node, ())):
            if target == start:
                return [*trail, target]
            if target not in trail:
                found = cycle_from(start, target, [*trail, target])
                if found:
                    return found
        return None

    for module in sorted(graph):
        cycle = cycle_from(module, module, [module])
        assert cycle is None, " -> ".join(cycle)


def test_the_gate_rule_is_pure():
    source = (REGISTRY / "gate_rule.py").read_text()
    tree = ast.parse(source)
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert not [m for m in modules if m and (m.startswith(("mlflow", "pandas", "numpy")) or ".registry." in m)], modules
