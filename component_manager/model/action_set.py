"""The per-instance action set: how concurrent requests on one instance combine.

Every request on an instance (start, stop, shutdown, destroy) becomes an action registered
here. The rules are data, in the two tables below, not ``if``s around the code:

* Coalescing: registering a kind already in flight joins it. Fifty concurrent starts are
  one start; every caller gets its result.
* ``WAITS_FOR``: a new action first waits for the actions of those kinds that are in flight
  when it registers (never for later ones, so waits cannot form a cycle). A start registered
  while a stop is in flight runs after it, and starts the program again.
* ``ABORTS``: registering a kind cancels the actions of those kinds in flight. A stop aborts
  a start; the start kills what it launched as it unwinds, and the stop waits for that (what
  a kind aborts, it also waits for). A start registered after the stop is a new start.

Destroy's first step is a shutdown, which it registers like any caller would: destroy
itself waits for nothing, its shutdown does the waiting. Scenario: a start is waiting for a
stop when a destroy arrives. Destroy aborts the start; its shutdown waits for the stop and
for the aborted start to unwind; then the storage goes.

A caller that is cancelled (a client hung up) does not cancel the shared action: waiters get
``asyncio.shield``-ed futures. Every action task has an owner, a ``TaskOwner`` passed in.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable

from ..errors import StartAborted

__all__ = ["ABORTS", "ActionKind", "ActionSet", "TaskOwner", "WAITS_FOR"]


class ActionKind(enum.StrEnum):
    START = "start"
    STOP = "stop"
    SHUTDOWN = "shutdown"
    DESTROY = "destroy"
    SNAPSHOT = "snapshot"  # copy its storage areas into the manager's snapshot store
    RESTORE = "restore"  # put its storage areas back as that snapshot has them


K = ActionKind
WAITS_FOR: dict[ActionKind, frozenset[ActionKind]] = {
    K.START: frozenset({K.STOP, K.SHUTDOWN, K.DESTROY, K.RESTORE}),  # then starts again, or finds it gone
    K.STOP: frozenset({K.START, K.SHUTDOWN}),  # a start it aborted, unwinding; a shutdown: nothing left
    K.SHUTDOWN: frozenset({K.START, K.STOP, K.SNAPSHOT, K.RESTORE}),  # storage is not deleted under them
    K.DESTROY: frozenset(),  # its shutdown waits; destroy waiting too could wait on itself
    K.SNAPSHOT: frozenset({K.RESTORE}),  # (both are refused while a shutdown or destroy is in flight)
    K.RESTORE: frozenset({K.SNAPSHOT}),
}
ABORTS: dict[ActionKind, frozenset[ActionKind]] = {
    K.START: frozenset(),
    K.STOP: frozenset({K.START}),
    K.SHUTDOWN: frozenset({K.START}),
    K.DESTROY: frozenset(),  # its shutdown aborts the start, and waits for it to unwind
    K.SNAPSHOT: frozenset(),
    K.RESTORE: frozenset(),
}


class TaskOwner:
    """Owns background tasks (like a nursery): ``close()`` cancels and awaits them all."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, coro: Awaitable, name: str) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Shared actions report to their waiters; this keeps asyncio from warning twice.
            task.exception()

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class ActionSet:
    __slots__ = ("_instance", "_owner", "_in_flight")

    def __init__(self, instance, owner: TaskOwner) -> None:
        self._instance = instance
        self._owner = owner
        self._in_flight: dict[ActionKind, asyncio.Task] | None = None  # made by the first action

    def in_flight(self, kind: ActionKind) -> bool:
        return bool(self._in_flight) and kind in self._in_flight

    @property
    def idle(self) -> bool:
        """No action in flight."""
        return not self._in_flight

    async def register(self, kind: ActionKind, run: Callable[[], Awaitable]):
        """Run ``run()`` as the action ``kind``, or join the one in flight; return its result.

        Raises what the action raises; StartAborted when a start is aborted by a stop."""
        if self._in_flight is None:
            self._in_flight = {}
        task = self._in_flight.get(kind)
        if task is None:
            before = [t for k, t in self._in_flight.items() if k in WAITS_FOR[kind]]
            for aborted in ABORTS[kind]:
                victim = self._in_flight.pop(aborted, None)  # a later start is a new start
                if victim is not None:
                    victim.cancel()
            task = self._owner.spawn(_after(before, run), f"{kind} {self._instance.moniker}")
            self._in_flight[kind] = task
            task.add_done_callback(lambda t, k=kind: self._forget(k, t))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled() and not asyncio.current_task().cancelling():
                # The action was aborted (a stop cancelled a start), not this waiter.
                raise StartAborted(str(self._instance.moniker)) from None
            raise

    def _forget(self, kind: ActionKind, task: asyncio.Task) -> None:
        if self._in_flight.get(kind) is task:
            del self._in_flight[kind]
            if not self._in_flight:
                self._in_flight = None  # most instances are idle most of the time


async def _after(before: list[asyncio.Task], run: Callable[[], Awaitable]):
    """Run ``run()`` once the actions in ``before`` have ended, however they ended."""
    if before:
        await asyncio.wait(before)
    return await run()
