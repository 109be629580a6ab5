"""How a realm's programs end: the walk that stop and shutdown share, and the end of one
program (polite request, wait, force, record).

The walk goes stage by stage in shutdown order (``routing.shutdown``): dependents before
their providers, children before the parent unless the parent uses something from the
child; the members of a stage end in parallel. Ending the instance's own program: stop
taking capability requests (its run is marked stopping; a connect then waits for the
action, and starts the program again); ask politely (``OnStop(reason, deadline)`` when it
declared ``stop_event: notify``, SIGTERM otherwise); wait ``stop_timeout``; SIGTERM, then
after 1 s SIGKILL, to its whole process group; kill what it left in its cgroup; record the reason, the disposition, the exit
code or signal and the run time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import time
from collections.abc import Awaitable, Callable

import grpc

from .. import grants
from .._generated import component_pb2, component_pb2_grpc
from ..model.reasons import Disposition, StopReason, StopRecord
from ..model.states import State, transition
from ..routing.shutdown import realm_shutdown_order
from . import tracking
from .context import ActionContext
from .pause import thaw

log = logging.getLogger("component_manager.actions")

__all__ = ["LIFECYCLE_SERVICE", "TERM_GRACE_S", "run_post_stop_hooks", "walk"]

TERM_GRACE_S = 1.0  # between SIGTERM and SIGKILL
LIFECYCLE_SERVICE = "component_manager.runtime.v1.Lifecycle"

EndChildren = Callable[[list, StopReason], Awaitable]


async def walk(ctx: ActionContext, inst, reason: StopReason, end_children: EndChildren,
               detail: str = "", commit=None) -> StopRecord | None:
    """End ``inst``'s realm in shutdown order: ``end_children(children, reason)`` for each
    group of children, its own program for "self" (its stop recorded by ``commit``, see
    ``Model.record_stop``). The record of its own stop, or None if it was not running."""
    record = None
    for stage in _stages(inst):
        results = await asyncio.gather(*(_end_node(ctx, inst, node, reason, end_children, detail, commit)
                                         for node in stage))
        record = next((r for node, r in zip(stage, results) if node == "self"), record)
    return record


def _stages(inst) -> list[list[str]]:
    """Stages of {"self", child names, collection names}; each stage stops in parallel."""
    present = {c.collection or c.moniker.leaf.name for c in inst.children.values()}
    return realm_shutdown_order(inst.decl, present)


async def _end_node(ctx: ActionContext, inst, node: str, reason: StopReason, end_children: EndChildren,
                    detail: str = "", commit=None):
    if node == "self":
        return await _stop_self(ctx, inst, reason, detail, commit)
    children = [c for c in list(inst.children.values()) if (c.collection or c.moniker.leaf.name) == node]
    await end_children(children, reason.for_children())
    return None


async def run_post_stop_hooks(ctx: ActionContext, inst, record: StopRecord | None) -> None:
    for hook in ctx.post_stop_hooks:
        try:
            await hook(inst, record)
        except Exception:  # noqa: BLE001 - a failing hook is logged; the rest still run
            log.exception("post_stop hook failed for %s", inst.moniker)


async def _stop_self(ctx: ActionContext, inst, reason: StopReason, detail: str = "",
                     commit=None) -> StopRecord | None:
    run = inst.run
    if run is None:
        return None
    run.stopping = True
    if run.paused:
        thaw(inst, run)  # a frozen program cannot hear OnStop or end; its waiters go on
    record = None
    if run.program is not None:
        record = await _end_program(inst, run, reason)
        if detail:
            record = dataclasses.replace(record, detail=detail)
        await tracking.clear(ctx, inst)
    ctx.tokens.pop(run.token, None)
    inst.run = None
    transition(inst, State.RESOLVED)  # started -> resolved
    if record is not None:
        await ctx.record_stop(inst, record, commit)
    else:
        await ctx.events.record("stopped", inst, reason=reason.value)
    return record


async def _end_program(inst, run, reason: StopReason) -> StopRecord:
    program = run.program
    decl = inst.decl.program
    timeout = decl.stop_timeout_ms / 1000
    if program.exited:
        status = await program.wait()
        disposition = Disposition.KILLED if status.signal else Disposition.STOPPED
    else:
        disposition = await _ask_then_force(program, run, decl.stop_event, reason, timeout)
        status = await program.wait()
    return StopRecord(reason, disposition, status.exit_code, status.signal,
                      round(time.monotonic() - run.started_monotonic, 6), time.time())


async def _ask_then_force(program, run, stop_event: str, reason: StopReason, timeout: float) -> Disposition:
    """OnStop (or SIGTERM), wait ``timeout``; then SIGTERM, 1 s, SIGKILL to the group."""
    if stop_event == "notify" and run.serve_address:
        deadline = time.time() + timeout
        asked = asyncio.ensure_future(_call_on_stop(run, reason, deadline))
        ended = await _wait_exit(program, timeout)
        asked.cancel()
        if ended:
            return Disposition.STOPPED
        program.signal_group(signal.SIGTERM)
        if not await _wait_exit(program, TERM_GRACE_S):
            program.signal_group(signal.SIGKILL)
        return Disposition.KILLED_AFTER_TIMEOUT
    program.signal_group(signal.SIGTERM)
    if await _wait_exit(program, timeout):
        return Disposition.STOPPED
    program.signal_group(signal.SIGKILL)
    return Disposition.KILLED_AFTER_TIMEOUT


async def _wait_exit(program, timeout: float) -> bool:
    try:
        await asyncio.wait_for(asyncio.shield(program.wait()), timeout)
        return True
    except asyncio.TimeoutError:
        return False


async def _call_on_stop(run, reason: StopReason, deadline: float) -> None:
    """Tell the program to stop. Any failure (it exited, it does not answer) is fine: the
    caller watches the process, not this call."""
    grant = grants.issue(run.grant_key, grants.MANAGER_CLIENT, LIFECYCLE_SERVICE)
    try:
        async with grpc.aio.insecure_channel(run.serve_address) as channel:
            stub = component_pb2_grpc.LifecycleStub(channel)
            await stub.OnStop(component_pb2.OnStopRequest(reason=reason.value, deadline=deadline),
                              metadata=((grants.GRANT_METADATA, grant),),
                              timeout=max(0.05, deadline - time.time()))
    except grpc.RpcError as e:
        log.debug("OnStop to %s: %s", run.serve_address, e)
