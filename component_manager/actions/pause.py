"""Pause and resume: freeze a running program and thaw it, its instance staying started.

Pause freezes the program's whole process group: with the cgroup freezer when the program
has a cgroup (it runs under limits, ``runners/limits.py``), else with SIGSTOP to its group
(SIGCONT thaws). While paused, capability requests for it wait, in the order they came,
and are answered on resume; its idle clock restarts at resume (a program frozen for ten
minutes has not been idle for ten minutes). Stopping a paused instance thaws it first, so
that it can hear OnStop and end; its waiting requests then wait for the next start.

The moves are checked by ``states.set_execution``/``check_execution``: pausing what is not running, or
resuming what is not paused, raises InvalidTransition (FAILED_PRECONDITION).

Scenario: ``cm pause /echo_server``; a client connects and waits; ``cm resume
/echo_server``: the program is thawed, then the client gets its address.
"""

from __future__ import annotations

import asyncio
import signal
import time

from ..errors import InvalidRequest
from ..model.states import ExecutionState, check_execution, set_execution
from .context import ActionContext

__all__ = ["FREEZE_TIMEOUT_S", "pause", "resume", "thaw", "wait_resumed"]

FREEZE_TIMEOUT_S = 2.0  # a v1 freezer goes FREEZING -> FROZEN; it takes a few ms


async def pause(ctx: ActionContext, inst) -> None:
    """Freeze ``inst``'s program. Raises InvalidTransition (not running), InvalidRequest
    (a start or stop in flight, no program, an in-process program)."""
    run = inst.run
    if run is not None and (run.stopping or not inst.actions.idle):
        raise InvalidRequest(inst.moniker_text, "is starting or stopping; pause it once it runs")
    if run is not None and not run.paused and (run.program is None or run.program.identity is None):
        raise InvalidRequest(inst.moniker_text, "has no program of its own to freeze (no program, or an in-process one)")
    set_execution(inst, ExecutionState.PAUSED)  # running -> paused
    run.resumed = asyncio.Event()
    frozen_by = await _freeze(run.program)
    if not run.paused:  # a stop thawed it while the freezer was at work: undo, and say so
        run.frozen_by = frozen_by
        thaw(inst, run)
        raise InvalidRequest(inst.moniker_text, "was stopped while it was being paused")
    run.frozen_by = frozen_by
    await ctx.events.record("paused", inst, detail=f"frozen by {run.frozen_by}")


async def _freeze(program) -> str:
    limits = getattr(program, "limits", None)
    if limits is not None and limits.freeze():
        deadline = time.monotonic() + FREEZE_TIMEOUT_S
        while not limits.group.frozen() and time.monotonic() < deadline:
            await asyncio.sleep(0.002)  # the kernel's freezer has no notification in v1
        return "cgroup"
    program.signal_group(signal.SIGSTOP)
    return "signal"


async def resume(ctx: ActionContext, inst) -> None:
    """Thaw ``inst``'s program; its waiting requests are answered. Raises InvalidTransition
    when it is not paused."""
    check_execution(inst, ExecutionState.RUNNING)
    thaw(inst, inst.run)  # paused -> running
    await ctx.events.record("resumed", inst)


def thaw(inst, run) -> None:
    """Let a paused program run again, now: its idle clock restarts, its waiters go on."""
    if run.frozen_by == "cgroup":
        run.program.limits.thaw()
    elif run.program is not None:
        run.program.signal_group(signal.SIGCONT)
    run.frozen_by = ""
    run.last_connect = time.monotonic()
    run.paused = False  # paused -> running (checked by the caller, or a stop: always allowed)
    if run.resumed is not None:
        run.resumed.set()


async def wait_resumed(run) -> None:
    """Wait while ``run`` is paused (waiters are woken in the order they came)."""
    while run.paused and run.resumed is not None:
        await run.resumed.wait()
