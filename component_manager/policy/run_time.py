"""The run-time limit (``program.max_run_time``): a program still running when it passes
is stopped with ``run_time_exceeded`` (its restart policy then applies, as for a failure).
One timer per running instance that has a limit, cancelled when the run ends."""

from __future__ import annotations

import asyncio
import logging

from .. import actions
from ..errors import CmError
from ..model.reasons import StopReason

log = logging.getLogger("component_manager.policy")

__all__ = ["RunTimeLimits"]


class RunTimeLimits:
    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self._timers: dict[str, asyncio.TimerHandle] = {}  # moniker -> its run's timer

    def on_started(self, inst) -> None:
        limit_ms = inst.decl.program.max_run_time_ms if inst.decl and inst.decl.program else 0
        if not limit_ms or inst.run is None:
            return
        self.on_stopped(inst)
        run = inst.run
        elapsed = asyncio.get_running_loop().time() - run.started_monotonic
        self._timers[inst.moniker_text] = asyncio.get_running_loop().call_later(
            max(0.0, limit_ms / 1000 - elapsed), self._expire, inst, run, limit_ms)

    def on_stopped(self, inst) -> None:
        timer = self._timers.pop(inst.moniker_text, None)
        if timer is not None:
            timer.cancel()

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _expire(self, inst, run, limit_ms: int) -> None:
        self._timers.pop(inst.moniker_text, None)
        if inst.run is not run or run.stopping:
            return
        detail = f"ran longer than its max_run_time ({limit_ms / 1000:g}s)"
        self.ctx.owner.spawn(self._stop(inst, detail), f"run time of {inst.moniker}")

    async def _stop(self, inst, detail: str) -> None:
        try:
            await actions.stop(self.ctx, inst, StopReason.RUN_TIME_EXCEEDED, detail=detail)
        except CmError as e:
            log.warning("stopping %s at its max_run_time: %s", inst.moniker, e)
