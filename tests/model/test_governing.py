"""Budget/eviction order and reload, on an in-process model with inproc programs."""

import time

import pytest

from component_manager import actions
from component_manager.errors import InvalidTransition, ManifestError, ResourceExhausted
from component_manager.manifest.decl import ChildDecl, ComponentDecl, ProgramDecl
from component_manager.model.reasons import START_REQUESTED, StopReason
from component_manager.model.resolver import ResolvedComponent
from component_manager.policy.budget import Budget, BudgetPolicy, priority_of

PROGRAMS = "tests.model.programs"


def prog(priority: int = 0, **settings) -> ProgramDecl:
    return ProgramDecl(runner="inproc", entry=f"{PROGRAMS}:run_forever", priority=priority, **settings)


def realm(*children: ChildDecl) -> ComponentDecl:
    return ComponentDecl(children=children)


async def _finish(model) -> None:
    await actions.shutdown(model, model.root, StopReason.SYSTEM_SHUTDOWN)
    await model.close()


async def test_eviction_takes_lowest_priority_then_idle_then_least_recently_used(make_model):
    model = make_model({
        "root": realm(ChildDecl("a", "low"), ChildDecl("b", "low"), ChildDecl("c", "mid"),
                      ChildDecl("d", "low", priority=3), ChildDecl("u", "high")),
        "low": ComponentDecl(program=prog(0)), "mid": ComponentDecl(program=prog(1)),
        "high": ComponentDecl(program=prog(5)),
    })
    model.pre_start_hooks.append(BudgetPolicy(model, Budget(max_running=4)))
    for name in "abcd":
        await actions.start(model, model.find(f"/{name}"), START_REQUESTED)
    model.find("/a").run.last_connect = time.monotonic()  # /a is busy; /b is idle
    assert priority_of(model.find("/d")) == 3  # the parent's children[] entry wins
    await actions.start(model, model.find("/u"), START_REQUESTED)
    assert model.find("/b").last_stop.reason is StopReason.EVICTED
    assert "to make room for '/u' (max_running 4)" in model.find("/b").last_stop.detail
    assert all(model.find(f"/{n}").run is not None for n in "acdu")
    await _finish(model)


async def test_nothing_is_evicted_when_it_would_not_make_room(make_model):
    model = make_model({"root": realm(ChildDecl("a", "p"), ChildDecl("b", "p"), ChildDecl("c", "p")),
                        "p": ComponentDecl(program=prog(0))})
    model.pre_start_hooks.append(BudgetPolicy(model, Budget(max_running=2)))
    await actions.start(model, model.find("/a"), START_REQUESTED)
    await actions.start(model, model.find("/b"), START_REQUESTED)
    with pytest.raises(ResourceExhausted, match="budget max_running 2 is used up"):
        await actions.start(model, model.find("/c"), START_REQUESTED)
    assert model.find("/a").run is not None and model.find("/b").run is not None
    assert model.find("/c").run is None
    await _finish(model)


async def test_pausing_what_does_not_run_is_an_invalid_transition(make_model):
    model = make_model({"root": realm(ChildDecl("a", "p")), "p": ComponentDecl(program=prog())})
    with pytest.raises(InvalidTransition, match="cannot go from stopped to paused"):
        await actions.pause(model, model.find("/a"))
    with pytest.raises(InvalidTransition, match="cannot go from stopped to running"):
        await actions.resume(model, model.find("/a"))
    await _finish(model)


async def test_reload_restarts_the_changed_and_keeps_the_rest(make_model):
    decls = {"root": realm(ChildDecl("a", "pa"), ChildDecl("b", "pb")),
             "pa": ComponentDecl(program=prog(), fingerprint="1"),
             "pb": ComponentDecl(program=prog(), fingerprint="1")}
    model = make_model(decls)
    a, b = model.find("/a"), model.find("/b")
    await actions.start(model, a, START_REQUESTED)
    await actions.start(model, b, START_REQUESTED)
    b_run = b.run
    decls["pa"] = ComponentDecl(program=prog(idle_timeout_ms=5), fingerprint="2")
    report = await actions.reload(model, model.root)
    assert report.restarted == ["/a"] and "/b" in report.unchanged
    assert a.last_stop.reason is StopReason.PACKAGE_UPDATED and a.decl.fingerprint == "2"
    assert a.run is not None and b.run is b_run
    await _finish(model)


async def test_a_broken_manifest_makes_reload_change_nothing(make_model):
    from component_manager.errors import Problem, UrlError

    decls = {"root": realm(ChildDecl("a", "pa")), "pa": ComponentDecl(program=prog(), fingerprint="1")}
    model = make_model(decls)
    resolve = model.resolver.resolve

    def broken(url, fresh=False) -> ResolvedComponent:
        if url.endswith("/pa"):
            error = UrlError(url, "invalid manifest")
            error.problems = [Problem("pa.cml", 3, "program.ready", "bad"), Problem("pa.cml", 5, "use", "bad")]
            raise error
        return resolve(url, fresh)

    model.resolver.resolve = broken
    with pytest.raises(ManifestError) as raised:
        await actions.reload(model, model.root)
    assert str(raised.value).splitlines() == ["pa.cml:3: program.ready: bad", "pa.cml:5: use: bad"]
    await _finish(model)


async def test_memory_budget_counts_declared_limits(make_model):
    mib = 1 << 20
    model = make_model({
        "root": realm(ChildDecl("big", "big"), ChildDecl("small", "small"), ChildDecl("urgent", "urgent")),
        "big": ComponentDecl(program=prog(0, memory_limit_bytes=200 * mib)),
        "small": ComponentDecl(program=prog(0, memory_limit_bytes=50 * mib)),
        "urgent": ComponentDecl(program=prog(2, memory_limit_bytes=100 * mib)),
    })
    model.pre_start_hooks.append(BudgetPolicy(model, Budget(memory=300 * mib)))
    await actions.start(model, model.find("/big"), START_REQUESTED)
    await actions.start(model, model.find("/small"), START_REQUESTED)  # 250 MiB: fits
    await actions.start(model, model.find("/urgent"), START_REQUESTED)  # 350: one must go
    # /big and /small have one priority; /big is the least recently used, and evicting it
    # alone makes room
    assert model.find("/big").last_stop.reason is StopReason.EVICTED
    assert "memory_budget 300MiB" in model.find("/big").last_stop.detail
    assert model.find("/small").run is not None
    with pytest.raises(ResourceExhausted, match="memory_budget 300MiB"):
        await actions.start(model, model.find("/big"), START_REQUESTED)  # priority 0: nothing below
    await _finish(model)


async def test_reload_of_a_parent_and_its_children_changed_together(make_model):
    decls = {"root": realm(ChildDecl("p", "p")),
             "p": ComponentDecl(program=prog(), children=(ChildDecl("kid", "kid"), ChildDecl("gone", "kid")),
                                fingerprint="1"),
             "kid": ComponentDecl(program=prog(), fingerprint="1")}
    model = make_model(decls)
    await actions.start(model, model.find("/p/kid"), START_REQUESTED)
    await actions.start(model, model.find("/p/gone"), START_REQUESTED)
    decls["p"] = ComponentDecl(program=prog(), children=(ChildDecl("kid", "kid"), ChildDecl("new", "kid")),
                               fingerprint="2")
    decls["kid"] = ComponentDecl(program=prog(idle_timeout_ms=9), fingerprint="2")
    report = await actions.reload(model, model.root)
    assert report.restarted == ["/p", "/p/kid"] and report.updated == []
    assert report.destroyed == ["/p/gone"] and report.created == ["/p/new"]
    assert model.find("/p/kid").decl.fingerprint == "2" and model.find("/p/kid").run is not None
    assert "/p/gone" not in model.index
    await _finish(model)
