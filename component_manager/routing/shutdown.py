"""Pure shutdown plans: who depends on whom inside a realm, and in what stages to stop.

A realm (one component's manifest) has nodes: ``"self"`` (the component's own program), each
static child by name, and each collection by name (all its dynamic children stop together).
A dependency map ``deps[a] = {b, ...}`` says "a depends on b": a must stop before b does.
Edges come from strong ``offer``s (``offer from #b to #a`` => a depends on b; ``from self`` =>
a depends on "self") and from the component's own strong ``use from #b`` ("self" depends on
b). Weak edges, and offers from parent, void or framework, add nothing.

Example: ``A`` uses from ``B``, ``B`` uses from ``C``, ``D`` is independent::

    shutdown_order({"A": {"B"}, "B": {"C"}, "C": set(), "D": set()})
    == [["A", "D"], ["B"], ["C"]]

``realm_shutdown_order`` adds the rule "children before their parent's program, unless the
parent (directly or not) uses something from the child".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..errors import DependencyCycle
from ..manifest.decl import ComponentDecl

__all__ = [
    "DependencyCycle",
    "SELF",
    "find_cycle",
    "realm_dependencies",
    "realm_shutdown_order",
    "shutdown_order",
    "sibling_dependencies",
]

SELF = "self"
Deps = Mapping[str, Iterable[str]]


def sibling_dependencies(decl: ComponentDecl) -> dict[str, set[str]]:
    """The strong dependencies inside the realm of ``decl``; every node is a key.

    Example: ``offers: [{protocol: "p", from: "#b", to: "#a"}]`` and ``uses:
    [{protocol: "q", from: "#c"}]`` give ``{"self": {"c"}, "a": {"b"}, "b": set(), "c": set()}``.
    """
    deps: dict[str, set[str]] = {SELF: set()}
    deps.update({c.name: set() for c in decl.children})
    deps.update({c.name: set() for c in decl.collections})
    for offer in decl.offers:
        source = _offer_source(offer)
        if source is not None and offer.dependency == "strong":
            deps.setdefault(offer.target_child, set()).add(source)
            deps.setdefault(source, set())
    for use in decl.uses:
        if use.source in ("child", "collection") and use.dependency == "strong":
            deps[SELF].add(use.source_child)
            deps.setdefault(use.source_child, set())
    return deps


def _offer_source(offer) -> str | None:
    if offer.source in ("child", "collection"):
        return offer.source_child
    return SELF if offer.source == "self" else None


def realm_dependencies(decl: ComponentDecl | None, nodes: Iterable[str] = ()) -> dict[str, set[str]]:
    """``sibling_dependencies`` plus "each child depends on self" (children stop before the
    parent's program) for every child that "self" does not depend on, directly or through
    other children. ``nodes`` adds nodes the manifest may not name (present collections).

    Example: self uses from ``a``, ``a`` depends on ``b``: neither ``a`` nor ``b`` gets the
    edge to self (that would be a cycle); an unrelated child ``c`` does.
    """
    deps = sibling_dependencies(decl) if decl is not None else {SELF: set()}
    for node in nodes:
        deps.setdefault(node, set())
    needed_by_self = _reachable(deps, SELF)
    for node, on in deps.items():
        if node != SELF and node not in needed_by_self:
            on.add(SELF)
    return deps


def realm_shutdown_order(decl: ComponentDecl | None, nodes: Iterable[str] = ()) -> list[list[str]]:
    """Stages in which to stop a realm's children and its own program ("self").

    Example: children ``a`` (uses ``b``) and ``b``, parent uses nothing:
    ``[["a"], ["b"], ["self"]]``. Raises DependencyCycle.
    """
    return shutdown_order(realm_dependencies(decl, nodes))


def _reachable(deps: Deps, start: str) -> set[str]:
    seen: set[str] = set()
    stack = list(deps.get(start, ()))
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(deps.get(node, ()))
    return seen


def find_cycle(deps: Deps) -> list[str] | None:
    """A dependency cycle as ``[a, b, ..., a]``, or None. Deterministic (sorted walk).

    Example: ``find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]``.
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(deps.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(_all_nodes(deps)):
        if node not in state and (found := visit(node)):
            return found
    return None


def _all_nodes(deps: Deps) -> set[str]:
    return set(deps).union(*(set(on) for on in deps.values()))


def shutdown_order(deps: Deps) -> list[list[str]]:
    """Stop stages: every node of a stage may stop in parallel, and a node stops only after
    every node that depends on it has stopped. Nodes named only as dependencies count too.
    Stages are sorted lists.

    Example: ``shutdown_order({"a": {"b"}, "b": set(), "d": set()}) == [["a", "d"], ["b"]]``.
    Raises DependencyCycle when no order exists.
    """
    nodes = _all_nodes(deps)
    dependents = {n: 0 for n in nodes}  # how many not-yet-stopped nodes depend on n
    for node in nodes:
        for on in set(deps.get(node, ())):
            dependents[on] += 1
    stages: list[list[str]] = []
    ready = sorted(n for n, count in dependents.items() if count == 0)
    while ready:
        stages.append(ready)
        freed = [on for node in ready for on in set(deps.get(node, ()))]
        for on in freed:
            dependents[on] -= 1
        ready = sorted({on for on in freed if dependents[on] == 0})
    if sum(len(s) for s in stages) != len(nodes):
        raise DependencyCycle(find_cycle(deps) or sorted(nodes))
    return stages
