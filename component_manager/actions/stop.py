"""Stop: end an instance's program; the instance keeps its identity and storage.

In order: stop the running children in shutdown order, with reason ``parent_stopping``;
end its own program (``ending.py``: ask, wait ``stop_timeout``, force, record); destroy its
children in transient collections; run post_stop hooks. A ``single_run`` child is then
destroyed. A stop joins a stop in flight and aborts a start in flight.

``request_stop`` is a program asking to be stopped (``idle`` or ``requested``); the idle
policy, no client within ``idle_timeout``, is decided here.
"""

from __future__ import annotations

import asyncio
import time

from ..model.action_set import ActionKind
from ..model.reasons import StopReason, StopRecord
from ..model.states import State
from .context import ActionContext
from .destroy import destroy
from .ending import run_post_stop_hooks, walk

__all__ = ["request_stop", "stop"]


async def stop(ctx: ActionContext, inst, reason: StopReason, detail: str = "", gate=None) -> StopRecord | None:
    """Stop ``inst``; ``detail`` goes on its stop record. Returns the stop record, or None
    if it was not running. ``gate``: the CommitGate of a batch ``inst`` is in (``batch.py``)."""
    return await inst.actions.register(ActionKind.STOP, lambda: _stop(ctx, inst, reason, detail, gate))


async def _stop(ctx: ActionContext, inst, reason: StopReason, detail: str = "", gate=None) -> StopRecord | None:
    if inst.state in (State.SHUTDOWN, State.DESTROYED):
        return None
    if gate is not None and inst.children:
        gate.leave(inst)  # its children may be in the batch too: never wait on each other
    record = await walk(ctx, inst, reason, lambda children, why: _stop_children(ctx, children, why),
                        detail, gate.commit_for(inst) if gate is not None else None)
    if record is not None:
        await asyncio.gather(*(destroy(ctx, c) for c in inst.transient_children()), return_exceptions=True)
    await run_post_stop_hooks(ctx, inst, record)
    if record is not None and inst.durability == "single_run":
        ctx.owner.spawn(destroy(ctx, inst), f"destroy single_run {inst.moniker}")
    return record


async def _stop_children(ctx: ActionContext, children: list, reason: StopReason) -> None:
    running = [c for c in children if c.state is State.STARTED]
    await asyncio.gather(*(stop(ctx, c, reason) for c in running))


def request_stop(ctx: ActionContext, inst, run, idle: bool) -> str:
    """A running program asks to be stopped, as idle or because it is done. Returns why
    not ("" when accepted; the stop then goes on in the background)."""
    if inst.run is not run:
        return "not started yet"
    if idle:
        idle_s = inst.decl.program.idle_timeout_ms / 1000
        since_connect = time.monotonic() - run.last_connect
        if run.last_connect and since_connect < idle_s:
            return f"a client connected {since_connect:.1f}s ago"
    reason = StopReason.IDLE if idle else StopReason.REQUESTED
    ctx.owner.spawn(stop(ctx, inst, reason), f"stop {inst.moniker} ({reason})")
    return ""
