"""Lifecycle actions on an in-process model with inproc programs, asserting ordered events."""

import asyncio

import pytest

from component_manager import actions
from component_manager.errors import InvalidRequest, StartError
from component_manager.manifest.decl import (CapabilityDecl, ChildDecl, CollectionDecl,
                                             ComponentDecl, ExposeDecl, OfferDecl, ProgramDecl,
                                             UseDecl)
from component_manager.model.reasons import START_REQUESTED, START_ROOT, StopReason

PROGRAMS = "tests.model.programs"


def inproc(entry: str, **settings) -> ProgramDecl:
    return ProgramDecl(runner="inproc", entry=f"{PROGRAMS}:{entry}", **settings)


async def shut_down(model) -> None:
    """What the manager does at the end: shut the whole tree down, then close the model."""
    await actions.shutdown(model, model.root, StopReason.SYSTEM_SHUTDOWN)
    await model.close()


def realm(*children: str, offers=(), collections=()) -> ComponentDecl:
    return ComponentDecl(children=tuple(ChildDecl(c, c) for c in children), offers=tuple(offers),
                         collections=tuple(collections))


async def test_start_then_stop_records_reason_and_disposition(make_model):
    model = make_model({"root": realm("a"), "a": ComponentDecl(program=inproc("run_forever"))})
    a = model.find("/a")
    assert await actions.start(model, a, START_REQUESTED) is False
    assert a.execution_state == "running"
    record = await actions.stop(model, a, StopReason.REQUESTED)
    assert (record.reason, record.disposition) == ("requested", "stopped")
    assert a.state == "resolved" and a.last_stop == record
    assert await actions.stop(model, a, StopReason.REQUESTED) is None  # not running: nothing to stop


async def test_concurrent_starts_join_one_start(make_model):
    model = make_model({"root": realm("a"), "a": ComponentDecl(program=inproc("run_forever"))})
    a = model.find("/a")
    results = await asyncio.gather(*(actions.start(model, a, START_REQUESTED) for _ in range(50)))
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
    await actions.start(model, model.root, START_ROOT)
    for name in "abcd":
        await actions.start(model, model.find(f"/{name}"), START_REQUESTED)
    stopped = model.events.subscribe(types=["stopped"])
    await shut_down(model)
    order = [stopped.queue.get_nowait()["moniker"] for _ in range(stopped.queue.qsize())]
    assert set(order[:2]) == {"/a", "/d"}
    assert order[2:] == ["/b", "/c", "/"]


async def test_destroy_of_a_static_child_is_refused(make_model):
    model = make_model({"root": realm("a"), "a": ComponentDecl()})
    with pytest.raises(InvalidRequest, match="static child"):
        await actions.destroy(model, model.find("/a"))


async def test_failing_program_start_is_recorded_as_start_failed(make_model):
    model = make_model({"root": realm("a"),
                        "a": ComponentDecl(program=inproc("fail_fast", ready="serving"))})
    a = model.find("/a")
    with pytest.raises(StartError, match="before it was serving"):
        await actions.start(model, a, START_REQUESTED)
    assert a.last_stop.reason == "start_failed"
    assert a.execution_state == "stopped"


async def test_dynamic_children_get_new_identities(make_model):
    model = make_model({"root": realm(collections=[CollectionDecl("workers", "persistent")]),
                        "w": ComponentDecl(program=inproc("run_forever"))})
    first = await actions.create_child(model, "/", "workers", "x", "w")
    await actions.destroy(model, first)
    second = await actions.create_child(model, "/", "workers", "x", "w")
    assert second.instance_id != first.instance_id
    assert second.incarnation > first.incarnation


async def test_concurrent_creates_of_one_name_make_one_child(make_model):
    from component_manager.errors import InstanceAlreadyExists

    model = make_model({"root": realm(collections=[CollectionDecl("workers", "persistent")]),
                        "w": ComponentDecl(program=inproc("run_forever"))})
    results = await asyncio.gather(*(actions.create_child(model, "/", "workers", "x", "w") for _ in range(5)),
                                   return_exceptions=True)
    made = [r for r in results if not isinstance(r, Exception)]
    assert len(made) == 1 and all(isinstance(r, InstanceAlreadyExists) for r in results if r not in made)
    assert [r.moniker for r in model.store.all_instances()].count("/workers:x") == 1
    assert [e["type"] for e in model.store.events()].count("created") == 1


async def test_concurrent_creates_share_commits_and_are_all_stored(make_model):
    model = make_model({"root": realm(collections=[CollectionDecl("workers", "persistent")]),
                        "w": ComponentDecl(program=inproc("run_forever"))})
    txns = model.store._env.info()["last_txnid"]
    children = await asyncio.gather(*(actions.create_child(model, "/", "workers", f"c{i}", "w") for i in range(40)))
    assert sorted(c.incarnation for c in children) == list(range(1, 41))
    assert model.store._env.info()["last_txnid"] - txns < 40
    stored = {r.moniker: r.incarnation for r in model.store.all_instances()}
    assert all(stored[str(c.moniker)] == c.incarnation for c in children)


async def test_dynamic_monikers_are_made_from_their_text_created_or_restored(make_model, tmp_path):
    from component_manager.moniker import parse

    decls = {"root": realm(collections=[CollectionDecl("workers", "persistent")]),
             "w": ComponentDecl(program=inproc("run_forever"), collections=(CollectionDecl("sub", "persistent"),))}
    model = make_model(decls, state_dir=tmp_path / "s")
    parent = await actions.create_child(model, "/", "workers", "p", "w")
    child = await actions.create_child(model, "/workers:p", "sub", "c", "w")
    assert child.moniker == parse("/workers:p/sub:c") and child.moniker.parent == parent.moniker
    assert dict(child.children) == {} and list(parent.children) == ["sub:c"]
    await model.close()
    again = make_model(decls, state_dir=tmp_path / "s")  # a boot restores both from the store
    restored = again.find("/workers:p/sub:c")
    assert restored.moniker == parse("/workers:p/sub:c") and restored.parent is again.find("/workers:p")
    assert (restored.instance_id, restored.incarnation) == (child.instance_id, child.incarnation)
    await actions.destroy(again, restored)
    assert dict(again.find("/workers:p").children) == {}
    await again.close()


async def test_shutdown_ends_every_instance_running_or_not(make_model):
    model = make_model({"root": realm("a", collections=[CollectionDecl("workers", "persistent"),
                                                        CollectionDecl("temps", "transient")]),
                        "a": ComponentDecl(program=inproc("run_forever")),
                        "w": ComponentDecl(program=inproc("run_forever"))})
    idle = [await actions.create_child(model, "/", "workers", f"w{i}", "w") for i in range(30)]
    running = await actions.create_child(model, "/", "workers", "busy", "w", start=True)
    temp = await actions.create_child(model, "/", "temps", "t", "w")
    await actions.start(model, model.find("/a"), START_REQUESTED)
    await shut_down(model)
    assert {i.state for i in idle} == {"shutdown"}
    assert running.state == "shutdown" and running.last_stop.reason == "system_shutdown"
    assert model.find("/a").state == "shutdown"
    assert temp.state == "destroyed"  # a transient child ends with its parent


def shell(script: str) -> ProgramDecl:
    return ProgramDecl(runner="process", binary="/bin/sh", args=("-c", script))


@pytest.mark.parametrize("script, reason, disposition, exit_code, signal, status", [
    ("kill -SEGV $$", "crashed", "killed", None, 11, "failed"),
    ("exit 1", "exited", "stopped", 1, None, "failed"),
    ("exit 0", "exited", "stopped", 0, None, "stopped"),
])
async def test_status_of_real_endings(make_model, script, reason, disposition, exit_code, signal, status):
    """The status people see comes from the stop record a real process's end produced."""
    model = make_model({"root": realm("a"), "a": ComponentDecl(program=shell(script))})
    a = model.find("/a")
    with model.events.subscribe("/a", ["stopped"]) as stopped:
        await actions.start(model, a, START_REQUESTED)
        async with asyncio.timeout(10):
            await stopped.queue.get()
    record = a.last_stop
    assert (record.reason, record.disposition, record.exit_code, record.signal) == (
        reason, disposition, exit_code, signal)
    assert a.status == status
    await shut_down(model)


async def test_two_models_in_one_process_keep_their_own_task_owners(make_model):
    """Closing one model cancels its own actions only: a start in flight in another model
    goes on (here, to its start_timeout)."""
    slow = inproc("run_forever", ready="serving", start_timeout_ms=300)
    first = make_model({"root": realm("a"), "a": ComponentDecl(program=slow)})
    second = make_model({"root": realm("a"), "a": ComponentDecl(program=inproc("run_forever"))})
    starting = asyncio.ensure_future(actions.start(first, first.find("/a"), START_REQUESTED))
    await asyncio.sleep(0)  # let the start register its action
    assert first.find("/a").actions.in_flight("start")
    await shut_down(second)
    with pytest.raises(StartError, match="not serving within"):
        await starting
