"""The manager-wide budget, and eviction to stay within it.

``cm manager run --max-running N --memory-budget SIZE``: at most N programs run at once
(instances without a program do not count), and the memory they are charged stays within
SIZE. A program is charged its ``limits.memory``, or, without one, what it uses now (its
resident memory, or its cgroup's usage); a program about to start is charged its limit
(nothing without one: its use is not known yet).

Before a program starts (a pre-start hook), ``BudgetPolicy`` checks the budget. If the
start would exceed it, running instances of *lower* priority are stopped with reason
``evicted``, in order: lowest priority first, then idle before busy (busy: it was handed
to a client within the last ``BUSY_WINDOW_S``), then least recently used. Their storage
stays; the next capability request starts them again, lazily. The start's own ancestors
are never evicted. If evicting every candidate would still not make room, nothing is
evicted and the start fails with ResourceExhausted (``RESOURCE_EXHAUSTED``), naming the
budget. Admissions are taken one at a time, so two starts cannot both take the last slot.

Priority: ``program.priority`` (default 0), overridden by the ``priority`` of the parent's
``children`` entry (static child) or ``collections`` entry (dynamic child).

Scenario: ``--max-running 2``; ``/a`` (priority 0, idle) and ``/b`` (priority 0, busy) run.
``/urgent`` (priority 5) starts: ``/a`` is stopped as ``evicted``, then ``/urgent`` starts.
``/c`` (priority 0) then starts: nothing below 0 runs, so it fails with "the manager's
budget max_running 2 is used up".
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from ..actions.stop import stop
from ..errors import ResourceExhausted
from ..model.action_set import ActionKind
from ..model.reasons import StopReason
from ..runners.limits import format_size, usage_of

__all__ = ["BUSY_WINDOW_S", "Budget", "BudgetPolicy", "priority_of"]

BUSY_WINDOW_S = 10.0


@dataclass(frozen=True, slots=True)
class Budget:
    max_running: int = 0  # 0: no limit
    memory: int = 0  # bytes; 0: no limit

    def __bool__(self) -> bool:
        return bool(self.max_running or self.memory)

    def describe(self) -> str:
        parts = [f"max_running {self.max_running}"] if self.max_running else []
        return " ".join(parts + ([f"memory_budget {format_size(self.memory)}"] if self.memory else []))


def priority_of(inst) -> int:
    """Its priority: the parent's children[]/collections[] entry, else its program's."""
    parent = inst.parent
    if parent is not None and parent.decl is not None:
        entry = (parent.decl.collection(inst.collection) if inst.is_dynamic
                 else parent.decl.child(inst.moniker.leaf.name))
        if entry is not None and entry.priority is not None:
            return entry.priority
    program = inst.decl.program if inst.decl is not None else None
    return program.priority if program is not None else 0


def charge(inst) -> int:
    """The memory a running (or starting) program is charged."""
    program = inst.decl.program
    if program.memory_limit_bytes or inst.run is None or inst.run.program is None:
        return program.memory_limit_bytes
    if inst.run.node:  # on a Ray node: its memory is not this host's (Ray accounts for it)
        return 0
    limits = getattr(inst.run.program, "limits", None)
    return (limits.usage() if limits is not None else usage_of(inst.run.pid))["memory_bytes"]


class BudgetPolicy:
    """A pre-start hook (``Model.pre_start_hooks``): make room for a start, or refuse it."""

    def __init__(self, ctx, budget: Budget):
        self.ctx = ctx
        self.budget = budget
        self._admitting: dict[str, object] = {}  # starting, admitted: moniker -> instance
        self._lock = asyncio.Lock()

    async def __call__(self, inst, storage=None, config=None) -> None:  # (the hooks' signature)
        async with self._lock:
            victims = self._plan(inst)
            for victim in victims:
                await stop(self.ctx, victim, StopReason.EVICTED,
                           detail=f"to make room for '{inst.moniker_text}' ({self.budget.describe()})")
            self._admitting[inst.moniker_text] = inst

    def running(self, exclude=None) -> list:
        """Programs running, or starting after their admission."""
        self._admitting = {m: i for m, i in self._admitting.items()
                           if i.actions.in_flight(ActionKind.START) and i.run is None}
        found = [i for i in self.ctx.index.values() if i.run is not None and i.run.program is not None]
        found.extend(self._admitting.values())
        return [i for i in found if i is not exclude]

    def _plan(self, inst) -> list:
        """The instances to evict, in order; raises ResourceExhausted when none will do."""
        running = self.running(exclude=inst)
        if self._fits(running, inst):
            return []
        victims, left = [], list(running)
        for candidate in self._candidates(inst, running):
            if candidate not in left:
                continue  # already gone with an evicted ancestor
            victims.append(candidate)
            left = [i for i in left if not _within(i, candidate)]
            if self._fits(left, inst):
                return victims
        raise ResourceExhausted(inst.moniker_text, self.budget.describe(), self._why(running, inst))

    def _fits(self, running: list, inst) -> bool:
        if self.budget.max_running and len(running) + 1 > self.budget.max_running:
            return False
        if self.budget.memory and sum(map(charge, running)) + charge(inst) > self.budget.memory:
            return False
        return True

    def _candidates(self, inst, running: list) -> list:
        floor = priority_of(inst)
        now = time.monotonic()
        movable = [i for i in running if i.run is not None and priority_of(i) < floor
                   and not _within(inst, i)]

        def order(i):
            run = i.run
            busy = bool(run.last_connect) and now - run.last_connect < BUSY_WINDOW_S
            return (priority_of(i), busy, max(run.last_connect, run.started_monotonic))
        return sorted(movable, key=order)

    def _why(self, running: list, inst) -> str:
        names = ", ".join(i.moniker_text for i in running[:5]) + (", ..." if len(running) > 5 else "")
        return (f"{len(running)} running ({names}); none has a priority below "
                f"{priority_of(inst)} to evict")


def _within(inst, ancestor) -> bool:
    """``inst`` is ``ancestor`` or below it (stopping ``ancestor`` stops it too)."""
    node = inst
    while node is not None:
        if node is ancestor:
            return True
        node = node.parent
    return False
