"""Start or stop several instances in one request (``StartMany`` / ``StopMany``, ``cm start a b c``).

Each instance is started or stopped by its own action, exactly as a Start or Stop of it
alone would be (reasons, events, hooks, restart policy, cgroups, recovery); the batch only
makes them share work. All run at once, and their records wait at a ``CommitGate`` until
every member has handed its own in, or will not (it failed first, was not running, or must
first wait on another instance, which may be a member too); then they go in one durable
transaction. Intent before effect holds for each program: none is let run before the
commit that holds its record.

A member is an instance with no action in flight when the batch begins; one that has one
joins that action, which commits as it always does, and keeps no member waiting.

Example::

    results = await start_many(ctx, [a, b, c], START_REQUESTED)   # [False, StartError(...), True]
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

from ..model.reasons import StopReason
from .context import ActionContext
from .start import start
from .stop import stop

__all__ = ["CommitGate", "start_many", "stop_many"]


class CommitGate:
    """Holds the records of ``members`` until each member has handed its own in
    (``commit_for(inst)(fill)``, see ``Model.record_stop``) or left (``leave(inst)``); then
    fills one batch with them all, in the order they came, and commits it."""

    def __init__(self, store, members) -> None:
        self._store = store
        self._waiting = {inst.moniker_text for inst in members}
        self._held: list[tuple[Callable, asyncio.Future]] = []

    def commit_for(self, inst) -> Callable[[Callable], asyncio.Future] | None:
        """How ``inst`` commits its records: held here while it is a member still expected,
        else (None) as it always does (a second record, or an instance not a member)."""
        if inst.moniker_text not in self._waiting:
            return None
        return functools.partial(self._hold, inst.moniker_text)

    def leave(self, inst) -> None:
        """``inst`` hands nothing (more) in: the others need not wait for it."""
        if inst.moniker_text in self._waiting:
            self._waiting.discard(inst.moniker_text)
            self._flush_when_complete()

    def _hold(self, key: str, fill: Callable) -> asyncio.Future:
        self._waiting.discard(key)
        waiter = asyncio.get_running_loop().create_future()
        self._held.append((fill, waiter))
        self._flush_when_complete()
        return waiter

    def _flush_when_complete(self) -> None:
        if self._waiting or not self._held:
            return
        held, self._held = self._held, []
        batch = self._store.new_batch()
        for fill, waiter in held:
            if not waiter.cancelled():  # else its start was aborted: it must not be recorded
                fill(batch)
        done = self._store.commit(batch)
        for _, waiter in held:
            done.add_done_callback(functools.partial(_pass_on, waiter))


def _pass_on(waiter: asyncio.Future, done: asyncio.Future) -> None:
    error = done.exception()  # retrieved even when nobody waits any more
    if waiter.cancelled():
        return
    if error is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(done.result())


async def start_many(ctx: ActionContext, insts: list, reason: str) -> list:
    """Start each of ``insts`` (as ``start``); per instance, in order, what ``start``
    returned (was it running) or the exception it raised."""
    return await _each(ctx, insts, lambda inst, gate: start(ctx, inst, reason, gate))


async def stop_many(ctx: ActionContext, insts: list, reason: StopReason,
                    then: Callable[[object], Awaitable] | None = None) -> list:
    """Stop each of ``insts`` (as ``stop``), then ``await then(inst)`` for each stopped;
    per instance, in order, its stop record (None: it was not running) or the exception."""
    async def one(inst, gate):
        record = await stop(ctx, inst, reason, gate=gate)
        if then is not None:
            await then(inst)
        return record
    return await _each(ctx, insts, one)


async def _each(ctx: ActionContext, insts: list, act) -> list:
    gate = CommitGate(ctx.store, [inst for inst in insts if inst.actions.idle])

    async def one(inst):
        try:
            return await act(inst, gate)
        finally:
            gate.leave(inst)

    return await asyncio.gather(*(one(inst) for inst in insts), return_exceptions=True)
