"""The per-instance action set: how concurrent requests on one instance combine.

Every request on an instance (start, stop, shutdown, destroy) becomes an action registered
here. Three rules, kept as data below rather than as ``if``s around the code:

* Coalescing: registering an action of a kind already in flight joins it. Fifty concurrent
  starts are one start; every caller gets its result.
* Ordering: actions in ``SERIALIZED`` run one at a time, first come first served, so a start
  registered while a stop is in flight runs after the stop (and starts the program again).
* Aborts: registering a kind in ``ABORTS[start]`` cancels a start in flight; the start
  cleans up the half-started program as it unwinds.

A caller that is cancelled (a client hung up) does not cancel the shared action: waiters get
``asyncio.shield``-ed futures.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable

from ..errors import StartError

__all__ = ["ABORTS", "ActionKind", "ActionSet", "SERIALIZED", "TaskOwner"]


class ActionKind(enum.StrEnum):
    START = "start"
    STOP = "stop"
    SHUTDOWN = "shutdown"
    DESTROY = "destroy"


SERIALIZED = frozenset(ActionKind)
ABORTS: dict[ActionKind, frozenset[ActionKind]] = {
    ActionKind.STOP: frozenset({ActionKind.START}),
    ActionKind.SHUTDOWN: frozenset({ActionKind.START}),
    ActionKind.DESTROY: frozenset({ActionKind.START}),
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
    __slots__ = ("_instance", "_in_flight", "_lock")

    owner: TaskOwner | None = None  # set once by the model: every action task has an owner

    def __init__(self, instance) -> None:
        self._instance = instance
        self._in_flight: dict[ActionKind, asyncio.Task] = {}
        self._lock: asyncio.Lock | None = None

    def in_flight(self, kind: ActionKind) -> bool:
        return kind in self._in_flight

    @property
    def idle(self) -> bool:
        """No action in flight."""
        return not self._in_flight

    async def register(self, kind: ActionKind, run: Callable[[], Awaitable]):
        """Run ``run()`` as the action ``kind``, or join the one in flight; return its result."""
        task = self._in_flight.get(kind)
        if task is None:
            for aborted in ABORTS.get(kind, ()):
                victim = self._in_flight.get(aborted)
                if victim is not None:
                    victim.cancel()
            task = self.owner.spawn(self._serialized(kind, run), f"{kind} {self._instance.moniker}")
            self._in_flight[kind] = task
            task.add_done_callback(lambda t, k=kind: self._forget(k, t))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled() and not asyncio.current_task().cancelling():
                # The action was aborted (a stop cancelled a start), not this waiter.
                raise StartError(str(self._instance.moniker), "aborted by a stop") from None
            raise

    def _forget(self, kind: ActionKind, task: asyncio.Task) -> None:
        if self._in_flight.get(kind) is task:
            del self._in_flight[kind]

    async def _serialized(self, kind: ActionKind, run: Callable[[], Awaitable]):
        if kind not in SERIALIZED:
            return await run()
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            return await run()
