"""Pure shutdown plans: dependencies from manifests, stages, cycles."""

import pytest

from component_manager.manifest.decl import (
    CapabilityDecl, ChildDecl, CollectionDecl, ComponentDecl, OfferDecl, UseDecl,
)
from component_manager.routing.shutdown import (
    DependencyCycle, find_cycle, realm_dependencies, realm_shutdown_order, shutdown_order,
    sibling_dependencies,
)


def offer(src, to, source="child", dependency="strong", name="p", target="child"):
    return OfferDecl("protocol", name, source, target, to, source_child=src if source in ("child", "collection") else "",
                     target_name=name, dependency=dependency)


def realm(*names, offers=(), uses=(), collections=()):
    return ComponentDecl(children=tuple(ChildDecl(n, f"#meta/{n}.cm") for n in names),
                         collections=tuple(CollectionDecl(c) for c in collections),
                         offers=tuple(offers), uses=tuple(uses), capabilities=(CapabilityDecl("protocol", "p"),))


def test_a_uses_b_uses_c_and_independent_d():
    decl = realm("a", "b", "c", "d", offers=[offer("b", "a"), offer("c", "b")])
    deps = sibling_dependencies(decl)
    assert deps == {"self": set(), "a": {"b"}, "b": {"c"}, "c": set(), "d": set()}
    assert shutdown_order(deps) == [["a", "d", "self"], ["b"], ["c"]]


def test_realm_order_stops_children_before_the_parents_program():
    decl = realm("a", "b", "c", "d", offers=[offer("b", "a"), offer("c", "b")])
    assert realm_shutdown_order(decl) == [["a", "d"], ["b"], ["c"], ["self"]]


def test_weak_edges_are_ignored():
    decl = realm("a", "b", offers=[offer("b", "a", dependency="weak")],
                 uses=[UseDecl("protocol", "p", "child", "a", "p", dependency="weak")])
    assert sibling_dependencies(decl) == {"self": set(), "a": set(), "b": set()}
    assert shutdown_order(sibling_dependencies(decl)) == [["a", "b", "self"]]


def test_offers_from_self_parent_void_framework():
    decl = realm("a", "b", "c", "d", offers=[offer("", "a", source="self"), offer("", "b", source="parent"),
                                             offer("", "c", source="void"), offer("", "d", source="framework")])
    assert sibling_dependencies(decl) == {"self": set(), "a": {"self"}, "b": set(), "c": set(), "d": set()}


def test_parent_that_uses_a_child_stops_before_it():
    decl = realm("db", "cache", "other", offers=[offer("db", "cache")],
                 uses=[UseDecl("protocol", "p", "child", "cache", "p")])
    deps = realm_dependencies(decl)
    assert deps["self"] == {"cache"}
    assert "self" not in deps["cache"] and "self" not in deps["db"]  # reached through cache
    assert deps["other"] == {"self"}
    assert realm_shutdown_order(decl) == [["other"], ["self"], ["cache"], ["db"]]


def test_collections_are_one_node():
    decl = realm("server", collections=["workers"],
                 offers=[offer("server", "workers", target="collection")])
    assert sibling_dependencies(decl)["workers"] == {"server"}
    assert realm_shutdown_order(decl, nodes=["workers"]) == [["workers"], ["server"], ["self"]]


def test_extra_nodes_and_dependency_only_nodes_are_planned():
    assert shutdown_order({"a": {"b"}}) == [["a"], ["b"]]
    assert realm_shutdown_order(None, nodes=["x"]) == [["x"], ["self"]]


def test_cycle_detection():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert find_cycle({"x": {"a"}, "a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


def test_shutdown_order_raises_on_a_strong_cycle():
    decl = realm("a", "b", offers=[offer("a", "b"), offer("b", "a")])
    with pytest.raises(DependencyCycle) as info:
        shutdown_order(sibling_dependencies(decl))
    assert info.value.cycle == ["a", "b", "a"]
    assert str(info.value) == "strong dependency cycle: a -> b -> a"
    weak = realm("a", "b", offers=[offer("a", "b"), offer("b", "a", dependency="weak")])
    assert shutdown_order(sibling_dependencies(weak)) == [["b", "self"], ["a"]]  # b uses a


def test_parent_using_a_child_that_it_offers_to_is_a_cycle():
    decl = realm("a", offers=[offer("", "a", source="self")], uses=[UseDecl("protocol", "p", "child", "a", "p")])
    assert find_cycle(sibling_dependencies(decl)) == ["a", "self", "a"]


# ---- properties over random graphs --------------------------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

NODES = st.sampled_from(["a", "b", "c", "d", "e", "f", "self"])
GRAPHS = st.dictionaries(NODES, st.sets(NODES, max_size=3), max_size=7)


@settings(max_examples=300, deadline=None)
@given(GRAPHS)
def test_stages_respect_every_edge_or_a_real_cycle_is_reported(deps):
    cycle = find_cycle(deps)
    if cycle is not None:
        assert cycle[0] == cycle[-1]
        assert all(b in deps.get(a, ()) for a, b in zip(cycle, cycle[1:]))
        with pytest.raises(DependencyCycle):
            shutdown_order(deps)
        return
    stages = shutdown_order(deps)
    stage_of = {node: i for i, stage in enumerate(stages) for node in stage}
    assert sum(map(len, stages)) == len(stage_of)  # each node exactly once
    for node, on in deps.items():
        for provider in on:
            assert stage_of[node] < stage_of[provider]  # dependents stop first
