"""The restart policy: a program that stops for a reason its policy covers is started again,
after an exponential, jittered back-off; past the storm limit it gives up.

Scenario, ``restart: { policy: "on_failure", initial_delay: "100ms", max_delay: "2s",
max_restarts: 3, within: "60s" }``: the program crashes (SIGSEGV). ``on_stopped`` sees its
``stopped`` event, makes it attempt 1, stores the state (attempt, next try, last failure) and
the ``restart_scheduled`` event in one durable commit, then arms a timer; ``cm list`` shows
``backing off (attempt 1, next in 0.1s, last: crashed SIGSEGV)``. The timer registers a start
with reason ``restart after crashed (attempt 1)``. Two more crashes: attempts 2 (~200 ms) and
3 (~400 ms). A fourth within 60 s finds three restarts in the window: it gives up
(``restart_gave_up``), and shows ``failed (gave up after 3 restarts)`` until ``cm start`` or
``cm reset``. With ``escalate: true`` its parent's realm is then restarted (OTP's escalation).

Stops that never restart: requested, idle, parent_stopping, system_shutdown, destroying,
evicted, package_updated, and a start aborted by a stop. A run that lasted ``reset_after``
forgets the failures before it. The state survives the manager (``restarts`` records in its
store): a manager killed during a back-off resumes the back-off where it was.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from .. import actions
from ..errors import CmError
from ..manifest.decl import RestartDecl
from ..model.action_set import ActionKind
from ..model.backoff import RestartState
from ..model.reasons import StopReason, StopRecord, restart_start_reason

log = logging.getLogger("component_manager.policy")

__all__ = ["cancel", "covers", "effective", "next_delay", "on_started", "on_stopped", "reset",
           "resume"]

# Failures any restart policy but "never" restarts after; "always" adds a clean exit.
ON_FAILURE = frozenset({StopReason.CRASHED, StopReason.HEALTH_CHECK_FAILED, StopReason.RESOURCE_LIMIT,
                        StopReason.START_FAILED, StopReason.RUN_TIME_EXCEEDED, StopReason.NODE_LOST})
JITTER = 0.1  # each delay is drawn from +-10% of its nominal value (never above max_delay)
# (jitter keeps instances that failed together from all restarting in the same instant)
_STOPPING = (ActionKind.STOP, ActionKind.SHUTDOWN, ActionKind.DESTROY)


def covers(policy: str, record: StopRecord) -> bool:
    """Whether ``policy`` restarts after a stop like ``record``."""
    if policy == "never":
        return False
    if record.reason in ON_FAILURE:
        return True
    return record.reason is StopReason.EXITED and (policy == "always" or record.exit_code != 0)


def effective(inst) -> RestartDecl:
    """The instance's restart settings: its parent's ``children[]``/``collections[]`` entry
    overrides its own ``program.restart``."""
    parent = inst.parent
    if parent is not None and parent.decl is not None:
        leaf = inst.moniker.leaf
        holder = parent.decl.collection(inst.collection) if inst.is_dynamic else parent.decl.child(leaf.name)
        if holder is not None and holder.restart is not None:
            return holder.restart
    program = inst.decl.program if inst.decl is not None else None
    return program.restart if program is not None else RestartDecl()


def next_delay(decl: RestartDecl, attempt: int, rand: random.Random = random) -> float:
    """Seconds before restart ``attempt`` (1, 2, ...): ``initial_delay`` doubled each attempt,
    capped at ``max_delay``, jittered."""
    nominal = min(decl.max_delay_ms, decl.initial_delay_ms * 2 ** min(attempt - 1, 62)) / 1000
    delay = nominal * rand.uniform(1 - JITTER, 1 + JITTER)
    cap = decl.max_delay_ms / 1000
    return delay if delay <= cap else cap * rand.uniform(1 - JITTER, 1)  # at the cap: jittered below it


# ---- after a stop ------------------------------------------------------------------------

async def on_stopped(ctx, inst, record: StopRecord) -> None:
    """Schedule a restart if the policy covers this stop, or give up past the storm limit."""
    decl = effective(inst)
    if not covers(decl.policy, record) or _not_to_restart(inst, record):
        return
    state = inst.restart or RestartState(inst.instance_id)
    now = time.time()
    if record.run_time_s * 1000 >= decl.reset_after_ms:
        state.attempt, state.history = 0, []  # it ran long enough: earlier failures are forgotten
    state.history = [t for t in state.history if now - t < decl.within_ms / 1000]
    state.last = record.describe()
    inst.restart = state
    if len(state.history) >= decl.max_restarts:
        await _give_up(ctx, inst, state, decl)
        return
    state.attempt += 1
    state.history.append(now)
    delay = next_delay(decl, state.attempt)
    state.next_at, state.gave_up = now + delay, False
    await _store(ctx, inst, "restart_scheduled", reason=record.reason.value,
                 detail=f"attempt {state.attempt} in {delay:.3f}s after {state.last}")
    _arm(ctx, inst, state, delay, record.reason.value)


def _not_to_restart(inst, record: StopRecord) -> bool:
    """Gone for good, or a start that a stop aborted (the stop was asked for)."""
    if inst.state.value in ("shutdown", "destroyed"):
        return True
    return record.reason is StopReason.START_FAILED and any(inst.actions.in_flight(k) for k in _STOPPING)


async def _give_up(ctx, inst, state: RestartState, decl: RestartDecl) -> None:
    _disarm(state)
    state.gave_up, state.next_at = True, 0.0
    await _store(ctx, inst, "restart_gave_up", detail=state.describe())
    if decl.escalate and inst.parent is not None:
        ctx.owner.spawn(_escalate(ctx, inst), f"escalate {inst.moniker}")


async def _escalate(ctx, inst) -> None:
    """Restart the parent's realm, and give the child a fresh start within it."""
    parent = inst.parent
    await reset(ctx, inst)
    try:
        await actions.stop(ctx, parent, StopReason.REQUESTED)
        await actions.start(ctx, parent, f"restart: '{inst.moniker}' gave up (escalate)")
    except CmError as e:
        log.warning("escalating %s to %s: %s", inst.moniker, parent.moniker, e)


def _arm(ctx, inst, state: RestartState, delay: float, reason: str) -> None:
    _disarm(state)
    loop = asyncio.get_running_loop()
    state.started = loop.create_future()
    start_reason = restart_start_reason(reason, state.attempt)
    state.timer = loop.call_later(delay, _fire, ctx, inst, state, start_reason)


def _fire(ctx, inst, state: RestartState, start_reason: str) -> None:
    state.timer = None
    if inst.restart is not state or inst.state.value in ("shutdown", "destroyed"):
        _settle(state)
        return
    ctx.owner.spawn(_restart(ctx, inst, state, start_reason), f"restart {inst.moniker}")


async def _restart(ctx, inst, state: RestartState, start_reason: str) -> None:
    try:
        await actions.start(ctx, inst, start_reason)
    except CmError as e:  # a failure that launched is a start_failed stop: the policy goes on
        log.warning("restart of %s failed: %s", inst.moniker, e)
    finally:
        _settle(state)


def _disarm(state: RestartState) -> None:
    if state.timer is not None:
        state.timer.cancel()
        state.timer = None
    _settle(state)


def _settle(state: RestartState) -> None:
    if state.started is not None and not state.started.done():
        state.started.set_result(None)


# ---- after a start, and on request -------------------------------------------------------

async def on_started(ctx, inst, reason: str) -> None:
    """A start ends the back-off; a start that is not the policy's (cm start, a capability
    request) also clears a given-up state."""
    state = inst.restart
    if state is None:
        return
    _disarm(state)
    if not reason.startswith("restart after "):
        await reset(ctx, inst, quiet=True)
    elif state.next_at:
        state.next_at = 0.0
        await _store(ctx, inst)


async def cancel(ctx, inst) -> bool:
    """A requested stop: no scheduled restart stays behind. True if one was cancelled."""
    state = inst.restart
    if state is None or not state.backing_off:
        return False
    _disarm(state)
    state.next_at = 0.0
    await _store(ctx, inst, "restart_cancelled", detail="stopped on request during a back-off")
    return True


async def reset(ctx, inst, quiet: bool = False) -> bool:
    """Forget the restart state (``cm reset``): the count starts over; a given-up instance
    may start again. True if there was a state to forget."""
    state = inst.restart
    if state is None:
        return False
    _disarm(state)
    inst.restart = None
    batch = ctx.store.new_batch()
    batch.delete_restart(inst.moniker_text)
    event = None if quiet else ctx.events.stage(batch, "restart_reset", inst)
    await ctx.store.commit(batch)
    if event is not None:
        ctx.events.deliver(event)
    return True


def resume(ctx) -> None:
    """At boot: load the stored restart states; a back-off a dead manager left is resumed
    for the time it still had to run."""
    now = time.time()
    for moniker, raw in ctx.store.all_restarts().items():
        inst = ctx.index.get(moniker)
        if inst is None or inst.instance_id != raw.get("instance_id"):
            continue  # a record of an instance no longer there: dropped with its subtree
        state = inst.restart = RestartState.from_dict(raw)
        if state.backing_off:
            reason = state.last.split(" ", 1)[0] or "a failure"
            _arm(ctx, inst, state, max(0.0, state.next_at - now), reason)


async def _store(ctx, inst, event_type: str = "", reason: str = "", detail: str = "") -> None:
    """Write the state (and the event, if any) in one durable commit, then deliver it."""
    batch = ctx.store.new_batch()
    batch.put_restart(inst.moniker_text, inst.restart.to_dict())
    event = ctx.events.stage(batch, event_type, inst, reason=reason, detail=detail) if event_type else None
    await ctx.store.commit(batch)
    if event is not None:
        ctx.events.deliver(event)
