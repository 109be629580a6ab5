"""Lifecycle actions on an in-process model with inproc programs, asserting ordered events."""

import asyncio

import pytest

from component_manager.errors import InvalidRequest, StartError
from component_manager.manifest.decl import (CapabilityDecl, ChildDecl, CollectionDecl,
                                             ComponentDecl, ExposeDecl, OfferDecl, ProgramDecl,
                                             UseDecl)

PROGRAMS = "tests.model.programs"


def inproc(entry: str, **settings) -> ProgramDecl:
    return ProgramDecl(runner="inproc", entry=f"{PROGRAMS}:{entry}", **settings)


def realm(*children: str, offers=(), collections=()) -> ComponentDecl:
    return ComponentDecl(children=tuple(ChildDecl(c, c) for c in children), offers=tuple(offers),
                         collections=tuple(collections))


async def test_start_then_stop_records_reason_and_disposition(make_model):
    model = make_model({"root": realm("a"), "a": ComponentDecl(program=inproc("run_forever"))})
    a = model.find("/a")
    assert await model.start(a) is False
    assert a.execution_state == "running"
    record = await model.stop(a)
    assert (record.reason, record.disposition) == ("requested", "stopped")
    assert a.state == "resolved" and a.last_stop == record
    assert await model.stop(a) is None  # not running: nothing to stop


async def test_concurrent_starts_join_one_start(make_model):
    model = make_model({"root": realm("a"), "a": ComponentDecl(program=inproc("run_forever"))})
    a = model.find("/a")
    results = await asyncio.gather(*(model.start(a) for _ in range(50)))
    assert results.count(False) >= 1
    assert [e["type"] for e in model.store.events() if e["moniker"] == "/a"].count("started") == 1


async def test_shutdown_stops_dependents_before_providers(make_model):
    # a uses b uses c; d is independent: a and d stop first, then b, then c.
    proto = lambda name: CapabilityDecl("protocol", name)  # noqa: E731
    program = inproc("run_forever")
    decls = {
        "root": realm("a", "b", "c", "d", offers=[
            OfferDecl("protocol", "b.B", "child", "child", "a", source_child="b", target_name="b.B"),
            OfferDecl("protocol", "c.C", "child", "child", "b", source_child="c", target_name="c.C"),
        ]),
        "a": ComponentDecl(program=program, uses=(UseDecl("protocol", "b.B", target_name="b.B"),)),
        "b": ComponentDecl(program=program, capabilities=(proto("b.B"),),
                           uses=(UseDecl("protocol", "c.C", target_name="c.C"),),
                           exposes=(ExposeDecl("protocol", "b.B", "self", target_name="b.B"),)),
        "c": ComponentDecl(program=program, capabilities=(proto("c.C"),),
                           exposes=(ExposeDecl("protocol", "c.C", "self", target_name="c.C"),)),
        "d": ComponentDecl(program=program),
    }
    model = make_model(decls)
    await model.start_root()
    for name in "abcd":
        await model.start(model.find(f"/{name}"))
    stopped = model.events.subscribe(types=["stopped"])
    await model.shutdown()
    order = [stopped.queue.get_nowait()["moniker"] for _ in range(stopped.queue.qsize())]
    assert set(order[:2]) == {"/a", "/d"}
    assert order[2:] == ["/b", "/c", "/"]


async def test_destroy_of_a_static_child_is_refused(make_model):
    model = make_model({"root": realm("a"), "a": ComponentDecl()})
    with pytest.raises(InvalidRequest, match="static child"):
        await model.destroy(model.find("/a"))


async def test_failing_program_start_is_recorded_as_start_failed(make_model):
    model = make_model({"root": realm("a"),
                        "a": ComponentDecl(program=inproc("fail_fast", ready="serving"))})
    a = model.find("/a")
    with pytest.raises(StartError, match="before it was serving"):
        await model.start(a)
    assert a.last_stop.reason == "start_failed"
    assert a.execution_state == "stopped"


async def test_dynamic_children_get_new_identities(make_model):
    model = make_model({"root": realm(collections=[CollectionDecl("workers", "persistent")]),
                        "w": ComponentDecl(program=inproc("run_forever"))})
    first = await model.create_child("/", "workers", "x", "w")
    await model.destroy(first)
    second = await model.create_child("/", "workers", "x", "w")
    assert second.instance_id != first.instance_id
    assert second.incarnation > first.incarnation


async def test_concurrent_creates_of_one_name_make_one_child(make_model):
    from component_manager.errors import InstanceAlreadyExists

    model = make_model({"root": realm(collections=[CollectionDecl("workers", "persistent")]),
                        "w": ComponentDecl(program=inproc("run_forever"))})
    results = await asyncio.gather(*(model.create_child("/", "workers", "x", "w") for _ in range(5)),
                                   return_exceptions=True)
    made = [r for r in results if not isinstance(r, Exception)]
    assert len(made) == 1 and all(isinstance(r, InstanceAlreadyExists) for r in results if r not in made)
    assert [r.moniker for r in model.store.all_instances()].count("/workers:x") == 1
    assert [e["type"] for e in model.store.events()].count("created") == 1


async def test_concurrent_creates_share_commits_and_are_all_stored(make_model):
    model = make_model({"root": realm(collections=[CollectionDecl("workers", "persistent")]),
                        "w": ComponentDecl(program=inproc("run_forever"))})
    txns = model.store._env.info()["last_txnid"]
    children = await asyncio.gather(*(model.create_child("/", "workers", f"c{i}", "w") for i in range(40)))
    assert sorted(c.incarnation for c in children) == list(range(1, 41))
    assert model.store._env.info()["last_txnid"] - txns < 40
    stored = {r.moniker: r.incarnation for r in model.store.all_instances()}
    assert all(stored[str(c.moniker)] == c.incarnation for c in children)


async def test_shutdown_ends_every_instance_running_or_not(make_model):
    model = make_model({"root": realm("a", collections=[CollectionDecl("workers", "persistent"),
                                                        CollectionDecl("temps", "transient")]),
                        "a": ComponentDecl(program=inproc("run_forever")),
                        "w": ComponentDecl(program=inproc("run_forever"))})
    idle = [await model.create_child("/", "workers", f"w{i}", "w") for i in range(30)]
    running = await model.create_child("/", "workers", "busy", "w", start=True)
    temp = await model.create_child("/", "temps", "t", "w")
    await model.start(model.find("/a"))
    await model.shutdown()
    assert {i.state for i in idle} == {"shutdown"}
    assert running.state == "shutdown" and running.last_stop.reason == "system_shutdown"
    assert model.find("/a").state == "shutdown"
    assert temp.state == "destroyed"  # a transient child ends with its parent
