"""The ordering between actions, as a table (model/action_set.py), checked with stand-in
bodies that record when they run: no manager, no programs."""

import asyncio
import itertools

import pytest

from component_manager.errors import StartError
from component_manager.model.action_set import ABORTS, WAITS_FOR, ActionKind, ActionSet, TaskOwner

pytestmark = pytest.mark.timeout(10)

K = ActionKind


class FakeInstance:
    moniker = "/a"


class Bodies:
    """Bodies that log 'begin kind' and 'end kind' and finish when released."""

    def __init__(self):
        self.log: list[str] = []
        self.release = {k: asyncio.Event() for k in K}

    def __call__(self, kind, then=None):
        async def body():
            self.log.append(f"begin {kind}")
            try:
                await self.release[kind].wait()
                if then is not None:
                    await then()
            except asyncio.CancelledError:
                self.log.append(f"aborted {kind}")
                raise
            self.log.append(f"end {kind}")
            return kind
        return body


def test_the_table_covers_every_kind_and_waits_for_what_it_aborts():
    assert set(WAITS_FOR) == set(ABORTS) == set(K)
    for kind in K:
        assert ABORTS[kind] <= WAITS_FOR[kind], f"{kind} aborts what it does not wait for"
        assert kind not in WAITS_FOR[kind]
    assert WAITS_FOR[K.DESTROY] == frozenset()  # its shutdown waits instead
    assert K.DESTROY not in WAITS_FOR[K.SHUTDOWN]  # destroy registers a shutdown


async def test_concurrent_registrations_of_one_kind_are_one_action():
    actions, bodies = ActionSet(FakeInstance(), TaskOwner()), Bodies()
    waiters = [asyncio.ensure_future(actions.register(K.START, bodies(K.START))) for _ in range(20)]
    await asyncio.sleep(0)
    bodies.release[K.START].set()
    assert await asyncio.gather(*waiters) == [K.START] * 20
    assert bodies.log == ["begin start", "end start"]


async def test_a_stop_aborts_a_start_and_a_later_start_runs_after_the_stop():
    actions, bodies = ActionSet(FakeInstance(), TaskOwner()), Bodies()
    first = asyncio.ensure_future(actions.register(K.START, bodies(K.START)))
    await asyncio.sleep(0)
    stop = asyncio.ensure_future(actions.register(K.STOP, bodies(K.STOP)))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(actions.register(K.START, bodies(K.START)))
    with pytest.raises(StartError, match="aborted by a stop"):
        await first
    bodies.release[K.STOP].set()
    assert await stop == K.STOP
    bodies.release[K.START].set()
    assert await second == K.START
    assert bodies.log == ["begin start", "aborted start", "begin stop", "end stop", "begin start", "end start"]


async def test_a_start_waits_for_a_stop_in_flight():
    actions, bodies = ActionSet(FakeInstance(), TaskOwner()), Bodies()
    stop = asyncio.ensure_future(actions.register(K.STOP, bodies(K.STOP)))
    await asyncio.sleep(0)
    start = asyncio.ensure_future(actions.register(K.START, bodies(K.START)))
    bodies.release[K.START].set()
    await asyncio.sleep(0)
    assert bodies.log == ["begin stop"]
    bodies.release[K.STOP].set()
    await asyncio.gather(stop, start)
    assert bodies.log == ["begin stop", "end stop", "begin start", "end start"]


@pytest.mark.parametrize(("first", "then"), [(K.RESTORE, K.START), (K.SNAPSHOT, K.SHUTDOWN),
                                             (K.RESTORE, K.SHUTDOWN), (K.SNAPSHOT, K.RESTORE)])
async def test_storage_is_not_started_on_or_deleted_under_a_copy(first, then):
    """A start waits for a restore in flight; a shutdown (destroy's first step: the storage
    goes next) waits for a snapshot or restore; a restore waits for a snapshot."""
    actions, bodies = ActionSet(FakeInstance(), TaskOwner()), Bodies()
    copy = asyncio.ensure_future(actions.register(first, bodies(first)))
    await asyncio.sleep(0)
    later = asyncio.ensure_future(actions.register(then, bodies(then)))
    bodies.release[then].set()
    await asyncio.sleep(0)
    assert bodies.log == [f"begin {first}"]
    bodies.release[first].set()
    await asyncio.gather(copy, later)
    assert bodies.log == [f"begin {first}", f"end {first}", f"begin {then}", f"end {then}"]


@pytest.mark.parametrize("order", list(itertools.permutations([K.START, K.STOP, K.DESTROY, K.SHUTDOWN])))
async def test_every_order_of_registration_ends(order):
    """Destroy's body registers a shutdown, as actions/destroy.py does; whatever was
    registered before or after it, everything ends (no action waits on itself)."""
    actions, bodies = ActionSet(FakeInstance(), TaskOwner()), Bodies()

    async def destroy_then_shutdown():
        await actions.register(K.SHUTDOWN, bodies(K.SHUTDOWN))

    waiters = []
    for kind in order:
        body = bodies(K.DESTROY, then=destroy_then_shutdown) if kind is K.DESTROY else bodies(kind)
        waiters.append(asyncio.ensure_future(actions.register(kind, body)))
        await asyncio.sleep(0)
    for event in bodies.release.values():
        event.set()
    async with asyncio.timeout(5):
        results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, (ActionKind, StartError)) for r in results), results
    assert actions.idle
    ends = [line for line in bodies.log if line.startswith("end")]
    if "end destroy" in ends:
        assert ends.index("end shutdown") < ends.index("end destroy")  # shutdown first
    if "end start" in ends:  # a start that ran did so after every stop registered before it
        start_at = order.index(K.START)
        assert all(ends.index(f"end {k}") < ends.index("end start")
                   for k in order[:start_at] if k in WAITS_FOR[K.START] and f"end {k}" in ends)


async def test_each_action_set_spawns_under_its_own_owner():
    first_owner, second_owner = TaskOwner(), TaskOwner()
    first, bodies = ActionSet(FakeInstance(), first_owner), Bodies()
    ActionSet(FakeInstance(), second_owner)
    waiter = asyncio.ensure_future(first.register(K.START, bodies(K.START)))
    await asyncio.sleep(0)
    await second_owner.close()
    bodies.release[K.START].set()
    assert await waiter == K.START
