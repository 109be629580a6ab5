"""Health probes (liveness, apart from readiness): ``failures`` failed probes in a row stop
the instance with ``health_check_failed`` (detail: the last answer); its restart policy
then applies.

``grpc: true`` calls ``grpc.health.v1.Health/Check`` (service "") on the program's serve
address, over one HTTP/2 connection kept for the run (``health_wire.py``: ~3x cheaper than a
grpcio call); ``exec: [...]`` runs a command in the package folder (exit 0 is healthy). A
check not answered within ``timeout`` is a failure (a hung program answers nothing).

Cost: one ``Prober`` serves every instance. It keeps a heap of (due time, probe) and one
timer at the earliest entry; when it fires it sends everything due within ``COALESCE_S``
(and within a tenth of its period) and re-arms: no task or timer per instance per period. A check's answer arrives in the
connection's callback; one still unanswered ``timeout`` after it was sent is counted as a
failure when its next probe is due (the period, not the timeout, paces detection). Only
exec probes, which spawn a process anyway, and connecting (once per run) take a task.
Measured: 1,000 instances probed every second cost the manager ~4% of a core.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import logging
import time
from dataclasses import dataclass, field

from .. import actions
from ..errors import CmError
from ..model.reasons import StopReason
from .commands import command_env, confinement, run_command
from .health_wire import LAZY_ACK_PERIOD_S, HealthConnection

log = logging.getLogger("component_manager.policy")

__all__ = ["Prober"]

_SERVING = 1  # grpc.health.v1.HealthCheckResponse.SERVING
# Entries due this close together are run in one wake-up: probes of instances started at
# slightly different times then share the loop's wake-ups instead of costing one each
# (1,000 instances at 1 s: 5.2% of a core with 20 ms, 4.4% with 100 ms).
COALESCE_S = 0.1


@dataclass(eq=False)
class _Probe:
    inst: object
    run: object
    decl: object  # HealthDecl
    failures: int = 0  # in a row
    in_flight: int = 0  # the stream of the check in flight (-1: an exec probe or a connect)
    sent_at: float = 0.0
    connection: HealthConnection | None = None
    last: str = ""

    @property
    def live(self) -> bool:
        return self.inst.run is self.run and not self.run.stopping


@dataclass
class Prober:
    ctx: object
    _heap: list = field(default_factory=list)  # (due, seq, probe)
    _seq: itertools.count = field(default_factory=itertools.count)
    _timer: asyncio.TimerHandle | None = None
    _ticking: bool = False
    sent: int = 0  # probes sent, for tests and benchmarks

    def watch(self, inst) -> None:
        """Probe ``inst``'s current run, from ``initial_delay`` on, until it stops."""
        decl = inst.decl.program.health if inst.decl and inst.decl.program else None
        if decl is None or inst.run is None:
            return
        self._push(time.monotonic() + decl.initial_delay_ms / 1000, _Probe(inst, inst.run, decl))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for _, _, probe in self._heap:
            self._close(probe)
        self._heap.clear()

    def _push(self, due: float, probe: _Probe) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), probe))
        if not self._ticking and (self._timer is None or due < self._timer.when()):
            self._arm()

    def _arm(self) -> None:
        """One timer, at the earliest due entry (not one per probe)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(self._heap[0][0], self._tick) if self._heap else None

    def _tick(self) -> None:
        self._timer, self._ticking = None, True
        try:
            self._run_due(time.monotonic())
        finally:
            self._ticking = False
            self._arm()

    def _run_due(self, now: float) -> None:
        """Send what is due, and what is due within COALESCE_S (at most a tenth of its
        period early): those sent together are answered together, in fewer loop turns."""
        while self._heap and self._heap[0][0] <= now + COALESCE_S:
            due, _, probe = self._heap[0]
            if due - now > probe.decl.period_ms / 10_000:
                break
            heapq.heappop(self._heap)
            if not probe.live:
                self._close(probe)
                continue
            if probe.in_flight > 0 and now - probe.sent_at >= probe.decl.timeout_ms / 1000:
                self._expire(probe)
            if not probe.in_flight:
                self._send(probe, now)
            self._push(max(due + probe.decl.period_ms / 1000, now), probe)

    def _send(self, probe: _Probe, now: float) -> None:
        self.sent += 1
        if not probe.decl.grpc:
            probe.in_flight = -1
            self.ctx.owner.spawn(self._exec(probe), f"probe {probe.inst.moniker}")
        elif probe.connection is None or probe.connection.closed:
            probe.in_flight = -1
            self.ctx.owner.spawn(self._connect(probe), f"probe connection {probe.inst.moniker}")
        else:
            stream = probe.connection.check(lambda status, text: self._grpc_answer(probe, stream, status, text))
            probe.in_flight, probe.sent_at = stream, now

    async def _connect(self, probe: _Probe) -> None:
        """A connection for the run's checks (made once; again after it is lost)."""
        path = probe.run.serve_address.removeprefix("unix:")
        try:
            async with asyncio.timeout(probe.decl.timeout_ms / 1000):
                lazy_acks = probe.decl.period_ms / 1000 <= LAZY_ACK_PERIOD_S
                _, probe.connection = await asyncio.get_running_loop().create_unix_connection(
                    functools.partial(HealthConnection, lazy_acks), path)
        except (OSError, TimeoutError) as e:
            self._answer(probe, False, f"grpc.health.v1 Check: cannot connect: {e.strerror or 'timed out'}"
                         if isinstance(e, OSError) else "grpc.health.v1 Check: cannot connect: timed out")
            return
        probe.in_flight = 0
        if probe.live:
            self._send(probe, time.monotonic())

    def _grpc_answer(self, probe: _Probe, stream: int, status: int | None, text: str) -> None:
        if probe.in_flight == stream:
            self._answer(probe, status == _SERVING, f"grpc.health.v1 Check: {text}")

    def _expire(self, probe: _Probe) -> None:
        probe.connection.forget(probe.in_flight)
        self._answer(probe, False, f"grpc.health.v1 Check: no answer within {probe.decl.timeout_ms / 1000:g}s")

    async def _exec(self, probe: _Probe) -> None:
        inst = probe.inst
        result = await run_command(probe.decl.exec, command_env(inst), probe.decl.timeout_ms / 1000,
                                   inst.package_dir, confinement(self.ctx, inst))
        answer = result.describe() + (f": {result.tail}" if result.tail else "")
        self._answer(probe, result.ok, f"{list(probe.decl.exec)}: {answer}")

    def _close(self, probe: _Probe) -> None:
        if probe.connection is not None:
            probe.connection.close()
            probe.connection = None

    def _answer(self, probe: _Probe, healthy: bool, answer: str) -> None:
        probe.in_flight = 0
        probe.last = answer
        probe.failures = 0 if healthy else probe.failures + 1
        if probe.failures >= probe.decl.failures and probe.live:
            probe.failures = 0
            detail = f"{probe.decl.failures} failed health probes in a row; last: {answer}"
            self.ctx.owner.spawn(_stop(self.ctx, probe.inst, detail), f"health stop {probe.inst.moniker}")


async def _stop(ctx, inst, detail: str) -> None:
    try:
        await actions.stop(ctx, inst, StopReason.HEALTH_CHECK_FAILED, detail=detail)
    except CmError as e:
        log.warning("stopping unhealthy %s: %s", inst.moniker, e)


