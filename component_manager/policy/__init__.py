"""Governing policies: they watch the lifecycle and register actions, nothing more.

    restart     start again after a covered stop, with back-off and a storm limit
    health      liveness probes (grpc.health.v1 or a command), one loop for all
    hooks       pre_start / post_stop commands, at the start and stop actions' hook points
    triggers    commands fired after start, exit, failure
    run_time    stop with run_time_exceeded past max_run_time
    budget      --max-running / --memory-budget: make room for a start by evicting running
                instances of lower priority, or refuse it (ResourceExhausted)

``Policies`` is their owner in a running manager: ``start()`` loads the stored restart
states (resuming back-offs), fills the model's hook lists and subscribes to its events;
``close()`` cancels every timer and probe (before the manager's ordered shutdown, so no
restart races it).
"""

from __future__ import annotations

import logging

from ..model.reasons import StopRecord
from . import hooks, restart, triggers
from .health import Prober
from .run_time import RunTimeLimits

log = logging.getLogger("component_manager.policy")

__all__ = ["Policies"]

WATCHED = ("started", "stopped")


class Policies:
    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.prober = Prober(ctx)
        self.run_time = RunTimeLimits(ctx)
        self._subscription = None
        self._task = None

    def start(self) -> None:
        ctx = self.ctx
        ctx.pre_start_hooks.append(lambda inst, storage, config: hooks.pre_start(ctx, inst, storage, config))
        ctx.post_stop_hooks.append(lambda inst, record: hooks.post_stop(ctx, inst, record))
        restart.resume(ctx)
        self._subscription = ctx.events.subscribe(types=WATCHED)
        self._task = ctx.owner.spawn(self._watch(), "policies")

    def close(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
        if self._task is not None:
            self._task.cancel()
        self.prober.close()
        self.run_time.close()
        for inst in self.ctx.index.values():
            if inst.restart is not None and inst.restart.timer is not None:
                inst.restart.timer.cancel()  # the stored state stays: a later manager resumes it

    async def _watch(self) -> None:
        queue = self._subscription.queue
        while True:
            event = await queue.get()
            inst = self.ctx.index.get(event["moniker"])
            if inst is None or inst.instance_id != event["instance_id"]:
                continue
            try:
                await self._on(event, inst)
            except Exception:  # noqa: BLE001 - one instance's policy must not stop the others'
                log.exception("policy for %s on %s", inst.moniker, event["type"])

    async def _on(self, event: dict, inst) -> None:
        if event["type"] == "started":
            self.run_time.on_started(inst)
            self.prober.watch(inst)
            triggers.fire(self.ctx, inst, "start")
            await restart.on_started(self.ctx, inst, event["reason"])
            return
        self.run_time.on_stopped(inst)
        record = StopRecord.from_dict(event["stop"])
        if record is None:
            return
        triggers.fire(self.ctx, inst, "exit", record)
        if record.failed:
            triggers.fire(self.ctx, inst, "failure", record)
        await restart.on_stopped(self.ctx, inst, record)
