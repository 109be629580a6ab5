"""Stop: end an instance's program; the instance keeps its identity and storage.

In order: stop the running children in shutdown order (dependents before their providers,
children before the parent unless the parent uses something from the child; siblings with
no dependency between them in parallel); stop taking capability requests (a connect now
waits for this action, then starts the program again); ask the program politely
(``OnStop(reason, deadline)`` when it declared ``stop_event: notify``, SIGTERM otherwise);
wait ``stop_timeout``; SIGTERM, then after 1 s SIGKILL, to its whole process group; destroy
its children in transient collections; run post_stop hooks; record the reason, the
disposition, the exit code or signal and the run time.

``shutdown`` is the same walk, but final: the instance and its descendants end in state
``shutdown`` and never start again. It is what manager shutdown and destroy use.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from .. import grants
from ..model.reasons import Disposition, StopReason, StopRecord
from ..model.states import State, transition
from ..routing.shutdown import realm_shutdown_order
from .set import ActionKind

log = logging.getLogger("component_manager.actions")

__all__ = ["shutdown", "stop", "stop_or_shutdown"]

TERM_GRACE_S = 1.0  # between SIGTERM and SIGKILL
LIFECYCLE_SERVICE = "component_manager.runtime.v1.Lifecycle"


async def stop(model, inst, reason: StopReason) -> StopRecord | None:
    """Stop ``inst`` (joins a stop in flight, aborts a start in flight). Returns the stop
    record, or None if it was not running."""
    return await inst.actions.register(ActionKind.STOP, lambda: stop_or_shutdown(model, inst, reason, False))


async def shutdown(model, inst, reason: StopReason) -> StopRecord | None:
    return await inst.actions.register(ActionKind.SHUTDOWN, lambda: stop_or_shutdown(model, inst, reason, True))


async def stop_or_shutdown(model, inst, reason: StopReason, final: bool) -> StopRecord | None:
    """The body of stop and shutdown; callers already hold the instance's action slot."""
    if inst.state is State.DESTROYED or (inst.state is State.SHUTDOWN and final):
        return None
    record = None
    for stage in _stages(inst):
        results = await asyncio.gather(*(_stop_node(model, inst, node, reason, final) for node in stage))
        record = next((r for node, r in zip(stage, results) if node == "self"), record)
    if final and inst.state is not State.SHUTDOWN:
        transition(inst, State.SHUTDOWN)  # unresolved|resolved -> shutdown
    if record is not None or final:
        await _destroy_transient_children(model, inst)
    for hook in model.post_stop_hooks:
        try:
            await hook(inst, record)
        except Exception:  # noqa: BLE001 - a failing hook is logged; the rest still run
            log.exception("post_stop hook failed for %s", inst.moniker)
    if record is not None and inst.durability == "single_run" and not final:
        from .destroy import destroy
        model.owner.spawn(destroy(model, inst), f"destroy single_run {inst.moniker}")
    return record


def _stages(inst) -> list[list[str]]:
    """Stages of {"self", child names, collection names}; each stage stops in parallel."""
    present = {c.collection or c.moniker.leaf.name for c in inst.children.values()}
    return realm_shutdown_order(inst.decl, present)


async def _stop_node(model, inst, node: str, reason: StopReason, final: bool):
    if node == "self":
        return await _stop_self(model, inst, reason)
    children = [c for c in list(inst.children.values())
                if (c.collection or c.moniker.leaf.name) == node]
    if final:
        children = [c for c in children if not _shut_down_at_once(model, c)]
    child_reason = reason.for_children()
    await asyncio.gather(*(_stop_child(model, c, child_reason, final) for c in children))
    return None


def _shut_down_at_once(model, inst) -> bool:
    """Shut ``inst``'s subtree down in place when nothing in it runs, acts or is to be
    destroyed: most instances at a manager shutdown. An action (a task) each would cost
    100,000 instances ~16 s; this costs them ~0.1 s. False if the subtree needs the walk."""
    if model.post_stop_hooks:
        return False
    subtree = list(inst.walk())
    if any(i.run is not None or not i.actions.idle or i.durability == "transient" for i in subtree):
        return False
    for i in subtree:
        if i.state not in (State.SHUTDOWN, State.DESTROYED):
            transition(i, State.SHUTDOWN)  # unresolved|resolved -> shutdown
    return True


async def _stop_child(model, child, reason: StopReason, final: bool) -> None:
    if final:
        await shutdown(model, child, reason)
    elif child.state is State.STARTED:
        await stop(model, child, reason)


async def _stop_self(model, inst, reason: StopReason) -> StopRecord | None:
    run = inst.run
    if run is None:
        return None
    run.stopping = True
    record = None
    if run.program is not None:
        record = await _end_program(inst, run, reason)
    model.tokens.pop(run.token, None)
    inst.run = None
    transition(inst, State.RESOLVED)  # started -> resolved
    if record is not None:
        await model.record_stop(inst, record)
    else:
        await model.events.record("stopped", inst, reason=reason.value)
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
    return StopRecord(reason.value, disposition.value, status.exit_code, status.signal,
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
    import grpc

    from .._generated import component_pb2, component_pb2_grpc

    grant = grants.issue(run.grant_key, grants.MANAGER_CLIENT, LIFECYCLE_SERVICE)
    try:
        async with grpc.aio.insecure_channel(run.serve_address) as channel:
            stub = component_pb2_grpc.LifecycleStub(channel)
            await stub.OnStop(component_pb2.OnStopRequest(reason=reason.value, deadline=deadline),
                              metadata=((grants.GRANT_METADATA, grant),),
                              timeout=max(0.05, deadline - time.time()))
    except grpc.RpcError as e:
        log.debug("OnStop to %s: %s", run.serve_address, e)


async def _destroy_transient_children(model, inst) -> None:
    from .destroy import destroy

    transient = [c for c in list(inst.children.values()) if c.durability == "transient"]
    await asyncio.gather(*(destroy(model, c) for c in transient), return_exceptions=True)
