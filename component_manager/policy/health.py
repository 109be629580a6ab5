"""Health probes (liveness, apart from readiness): ``failures`` failed probes in a row stop
the instance with ``health_check_failed`` (detail: the last answer); its restart policy
then applies.

``grpc: true`` calls ``grpc.health.v1.Health/Check`` (service "") on the program's serve
address, over one channel kept for the run; ``exec: [...]`` runs a command in the package
folder (exit 0 is healthy).

Cost: one ``Prober`` serves every instance. It keeps a heap of (due time, probe) and one
task that sleeps until the earliest is due, sends what is due and goes back to sleep: no
task or timer per instance per period. The gRPC checks due at one moment are awaited
together by one task (grpc.aio still makes a task inside each call); exec probes, which
spawn a process anyway, get a task each. A probe still
in flight when it is due again is not sent twice.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .. import actions
from ..errors import CmError
from ..model.reasons import StopReason
from .commands import command_env, run_command

log = logging.getLogger("component_manager.policy")

__all__ = ["Prober"]

_SERVING = health_pb2.HealthCheckResponse.SERVING
_CHECK = health_pb2.HealthCheckRequest(service="")


@dataclass(eq=False)
class _Probe:
    inst: object
    run: object
    decl: object  # HealthDecl
    failures: int = 0  # in a row
    in_flight: bool = False
    channel: grpc.aio.Channel | None = None
    check: object = None  # the stub's Check method
    last: str = ""

    @property
    def live(self) -> bool:
        return self.inst.run is self.run and not self.run.stopping


@dataclass
class Prober:
    ctx: object
    _heap: list = field(default_factory=list)
    _seq: itertools.count = field(default_factory=itertools.count)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task | None = None
    sent: int = 0  # probes sent, for tests and benchmarks

    def watch(self, inst) -> None:
        """Probe ``inst``'s current run, from ``initial_delay`` on, until it stops."""
        decl = inst.decl.program.health if inst.decl and inst.decl.program else None
        if decl is None or inst.run is None:
            return
        probe = _Probe(inst, inst.run, decl)
        self._push(time.monotonic() + decl.initial_delay_ms / 1000, probe)
        if self._task is None:
            self._task = self.ctx.owner.spawn(self._loop(), "health probes")

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for _, _, probe in self._heap:
            self._close(probe)
        self._heap.clear()

    def _push(self, due: float, probe: _Probe) -> None:
        first = not self._heap or due < self._heap[0][0]
        heapq.heappush(self._heap, (due, next(self._seq), probe))
        if first:
            self._wake.set()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            if not self._heap:
                await self._wake.wait()
                continue
            delay = self._heap[0][0] - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
                continue
            self._send_due(time.monotonic())

    def _send_due(self, now: float) -> None:
        checks = []  # the gRPC probes due now: one task awaits them all
        while self._heap and self._heap[0][0] <= now:
            due, _, probe = heapq.heappop(self._heap)
            if not probe.live:
                self._close(probe)
                continue
            if not probe.in_flight:
                probe.in_flight = True
                self.sent += 1
                if probe.decl.grpc:
                    checks.append(probe)
                else:
                    self.ctx.owner.spawn(self._exec(probe), f"probe {probe.inst.moniker}")
            self._push(max(due + probe.decl.period_ms / 1000, now), probe)
        if checks:
            self.ctx.owner.spawn(self._check_all(checks), "health checks")

    async def _check_all(self, probes: list[_Probe]) -> None:
        await asyncio.gather(*(self._check(p) for p in probes))

    async def _check(self, probe: _Probe) -> None:
        if probe.check is None:
            probe.channel = grpc.aio.insecure_channel(probe.run.serve_address)
            probe.check = health_pb2_grpc.HealthStub(probe.channel).Check
        try:
            status = (await probe.check(_CHECK, timeout=probe.decl.timeout_ms / 1000)).status
            answer = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
        except grpc.RpcError as e:
            status, answer = None, f"{e.code().name}: {e.details() or ''}".rstrip(": ")
        self._answer(probe, status == _SERVING, f"grpc.health.v1 Check: {answer}")

    async def _exec(self, probe: _Probe) -> None:
        inst = probe.inst
        result = await run_command(probe.decl.exec, command_env(inst), probe.decl.timeout_ms / 1000,
                                   cwd=inst.package_dir)
        answer = result.describe() + (f": {result.tail}" if result.tail else "")
        self._answer(probe, result.ok, f"{list(probe.decl.exec)}: {answer}")

    def _close(self, probe: _Probe) -> None:
        if probe.channel is not None:
            channel, probe.channel, probe.check = probe.channel, None, None
            self.ctx.owner.spawn(channel.close(), "close a probe channel")

    def _answer(self, probe: _Probe, healthy: bool, answer: str) -> None:
        probe.in_flight = False
        probe.last = answer
        probe.failures = 0 if healthy else probe.failures + 1
        if probe.failures >= probe.decl.failures and probe.live:
            probe.failures = 0
            probe.run.stop_detail = f"{probe.decl.failures} failed health probes in a row; last: {answer}"
            self.ctx.owner.spawn(_stop(self.ctx, probe.inst), f"health stop {probe.inst.moniker}")


async def _stop(ctx, inst) -> None:
    try:
        await actions.stop(ctx, inst, StopReason.HEALTH_CHECK_FAILED)
    except CmError as e:
        log.warning("stopping unhealthy %s: %s", inst.moniker, e)


