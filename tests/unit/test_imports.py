"""The package's import graph: no cycles anywhere, and imports run one way between layers
(cli/testing -> api -> actions -> routing/model -> manifest/storage/runners). Every import
counts, at the top of a module or inside a function: a cycle hidden in a function is still
a cycle."""

import ast
from pathlib import Path

import pytest

import component_manager

pytestmark = pytest.mark.timeout(30)

PACKAGE = Path(component_manager.__file__).parent

# layer -> the layers it must not import
FORBIDDEN = {
    "model": {"actions", "api", "cli", "testing", "sdk", "manager", "policy"},
    "routing": {"model", "actions", "api", "cli", "testing", "sdk", "manager", "policy"},
    "actions": {"api", "cli", "testing", "sdk", "manager", "policy"},
    "policy": {"api", "cli", "testing", "sdk", "manager"},
    "api": {"cli", "testing", "sdk", "manager"},
    "manifest": {"model", "actions", "routing", "api", "cli", "testing", "sdk", "runners", "storage", "manager", "policy"},
    "storage": {"model", "actions", "routing", "api", "cli", "testing", "sdk", "runners", "manager", "policy"},
    "runners": {"model", "actions", "routing", "api", "cli", "testing", "manager", "policy"},
    # the web page is a client, as `cm` is: it talks to the manager over gRPC only
    "ui": {"model", "actions", "routing", "policy", "manifest", "storage", "runners", "sdk", "testing", "manager"},
}


def module_name(path: Path) -> str:
    parts = ["component_manager", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(name: str) -> bool:
    return (PACKAGE.parent / name.replace(".", "/") / "__init__.py").exists()


def is_module(name: str) -> bool:
    return is_package(name) or (PACKAGE.parent / (name.replace(".", "/") + ".py")).exists()


def imports_of(path: Path) -> set[str]:
    """The project modules ``path`` imports, with the packages each import runs (but not the
    packages the importer is itself inside: those are already importing)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if is_module(f"{base}.{alias.name}"))
    targets = set()
    for target in found:
        if not target.startswith("component_manager"):
            continue
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            ancestor = ".".join(parts[:i])
            if not (name == ancestor or name.startswith(ancestor + ".")) and is_module(ancestor):
                targets.add(ancestor)
    return targets - {name}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_imports_run_one_way_between_layers():
    wrong = [f"{source} imports {target}" for source, targets in graph().items() for target in targets
             if layer(target) in FORBIDDEN.get(layer(source), ())]
    assert wrong == []
