"""ComponentContext: everything a running program gets from the manager, and ``run``.

A context is made from the StartupInfo the manager passed. Nothing touches the network
until it is asked to: the server starts at ``serving()`` (or at ``wait_for_stop()``, so that a
program that only waits can still receive OnStop), the manager channel at the first call.

Stopping, in one place (``_stop``): OnStop from the manager, an accepted idle RequestStop,
or SIGTERM all run the ``on_stop`` callbacks once (bounded by the OnStop deadline), then
release ``wait_for_stop()``. When ``main`` returns, ``run`` drains the calls in flight
(the server takes no new call; those in flight may finish until the stop deadline: OnStop's,
or ``stop_timeout`` after SIGTERM), closes channels and storage, and the process exits 0
(1 if ``main`` raised).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
import socket
import sys
import time
import traceback
import types
from collections.abc import Awaitable, Callable, Mapping

import grpc
from grpc_health.v1._async import HealthServicer
from grpc_health.v1.health_pb2 import HealthCheckResponse
from grpc_health.v1.health_pb2_grpc import add_HealthServicer_to_server

from .._generated import component_pb2 as pb
from .._generated import component_pb2_grpc as pb_grpc
from ..errors import StorageError
from ..runners.startup import SERVING, StartupInfo, inherited_startup
from ..storage.areas import open_environment
from ._client import GrantChannel, RuntimeClient
from ..grant_guard import ActivityTracker, GrantGuard

__all__ = ["ComponentContext", "run", "run_async"]

log = logging.getLogger("component_manager.sdk")

LIFECYCLE_SERVICE = "component_manager.runtime.v1.Lifecycle"
_FAILED = (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN)
# gRPC shares connections (and their reconnect backoff) between channels to one address by
# default: a channel made to replace a failed one must not inherit that backoff.
_OWN_SUBCHANNELS = (("grpc.use_local_subchannel_pool", 1),)
_DEFAULT_STOP_GRACE_S = 2.0  # no deadline known (an older manager's SIGTERM)
_EXIT_MARGIN_S = 0.25  # of the stop deadline, kept to close and exit before it

UnaryHandler = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]
StopCallback = Callable[[str], Awaitable[None]]


class _Lifecycle(pb_grpc.LifecycleServicer):
    def __init__(self, ctx: ComponentContext):
        self._ctx = ctx

    async def OnStop(self, request, context):
        await self._ctx._stop(request.reason or "requested", request.deadline or None)
        return pb.OnStopReply()


class ComponentContext:
    """A running component's view of the manager. See the module docstring.

    Example::

        async def main(ctx):
            ctx.serve_unary("echo.Echo", "Echo", echo)
            await ctx.serving()
            await ctx.wait_for_stop()
    """

    def __init__(self, startup: StartupInfo, startup_fd: int = -1):
        self.startup = startup
        self._startup_fd = startup_fd  # the manager's startup socket, kept to write SERVING
        self._runtime = RuntimeClient(startup.component_address, startup.token)
        self._tracker: ActivityTracker | None = None
        self._server: grpc.aio.Server | None = None
        self._handlers: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
        self._servicers: list[tuple[Callable, object]] = []
        self._on_stop: list[StopCallback] = []
        self._channels: dict[str, GrantChannel] = {}  # per capability
        self._transports: dict[str, grpc.aio.Channel] = {}  # per provider address, shared
        self._retired: list[grpc.aio.Channel] = []  # replaced transports, closed at aclose
        self._storage: dict[str, object] = {}
        self._config: Mapping | None = None
        self._stopped = asyncio.Event()
        self._stopping: asyncio.Task | None = None
        self._stop_deadline: float | None = None
        self._idle_task: asyncio.Task | None = None
        self._reported = False
        self._reason: str | None = None
        self._health: HealthServicer | None = None
        self._health_status: dict[str, int] = {}  # set_health() before the server starts

    @property
    def moniker(self) -> str:
        return self.startup.moniker

    @property
    def instance_id(self) -> str:
        return self.startup.instance_id

    @property
    def stop_reason(self) -> str | None:
        """Why the component is stopping (``"requested"``, ``"idle"``, ...), or None."""
        return self._reason

    # -- serving -------------------------------------------------------------------------

    def serve_unary(self, service: str, method: str, handler: UnaryHandler) -> None:
        """Serve ``/service/method`` with ``async handler(request: bytes, context) -> bytes``."""
        self._check_not_started()
        rpc = grpc.unary_unary_rpc_method_handler(handler)
        self._handlers.setdefault(service, {})[method] = rpc

    def add_servicer(self, add_to_server: Callable, servicer: object) -> None:
        """Serve a protoc-generated service: ``ctx.add_servicer(add_FooServicer_to_server, Foo())``."""
        self._check_not_started()
        self._servicers.append((add_to_server, servicer))

    def on_stop(self, callback: StopCallback) -> None:
        """Call ``await callback(reason)`` when the component is told to stop (drain, flush)."""
        self._on_stop.append(callback)

    async def set_health(self, serving: bool, protocol: str = "") -> None:
        """Say whether this program (``protocol`` "") or one protocol is healthy, as the
        ``grpc.health.v1.Health`` service the SDK serves answers it. A program whose manifest
        has ``health: { grpc: true }`` is stopped (``health_check_failed``) after ``failures``
        checks in a row find it NOT_SERVING (or find no answer at all)."""
        status = HealthCheckResponse.SERVING if serving else HealthCheckResponse.NOT_SERVING
        self._health_status[protocol] = status
        if self._health is not None:
            await self._health.set(protocol, status)

    async def serving(self) -> None:
        """Start serving the registered services, then tell the manager (ReportServing)."""
        await self._start_server()
        if not self._reported:
            if not self._tell_serving_on_startup_socket():
                await self._runtime.report_serving()
            self._reported = True

    def _tell_serving_on_startup_socket(self) -> bool:
        """Write SERVING where the startup info came from (no connection to set up, unlike
        ReportServing); False if there is no such socket, e.g. for an inproc program."""
        fd, self._startup_fd = self._startup_fd, -1
        if fd < 0:
            return False
        try:
            with socket.socket(fileno=fd) as startup:
                startup.send(SERVING, socket.MSG_NOSIGNAL)
            return True
        except OSError:  # not a socket (an older manager's pipe), or nobody listens
            return False

    async def wait_for_stop(self) -> str:
        """Return the reason once the component was told to stop and its callbacks ran."""
        await self._start_server()
        await self._stopped.wait()
        return self.stop_reason

    def _check_not_started(self) -> None:
        if self._server is not None:
            raise RuntimeError("register services before serving() or wait_for_stop()")

    async def _start_server(self) -> None:
        if self._server is not None or not self._needs_server():
            return
        if not self.startup.serve_address:
            raise RuntimeError(f"{self.moniker} has services to serve but no serve_address")
        self._tracker = ActivityTracker()
        guard = GrantGuard(bytes.fromhex(self.startup.grant_key), self._tracker)
        server = grpc.aio.server()
        registrar = guard.server(server)  # every handler is wrapped once, here
        for service, methods in self._handlers.items():
            registrar.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, methods),))
            registrar.add_registered_method_handlers(service, methods)
        for add_to_server, servicer in self._servicers:
            add_to_server(servicer, registrar)
        if self.startup.stop_event == "notify":
            pb_grpc.add_LifecycleServicer_to_server(_Lifecycle(self), registrar)
        await self._add_health(server)
        server.add_insecure_port(self.startup.serve_address)
        await server.start()
        _let_clients_connect(self.startup.serve_address)
        self._server = server
        if self.startup.idle_timeout_ms > 0:
            self._idle_task = asyncio.create_task(self._watch_idle(), name="cm idle watcher")

    async def _add_health(self, server: grpc.aio.Server) -> None:
        """grpc.health.v1, with a status per protocol (SERVING unless ``set_health`` said
        otherwise). Added beside the grant guard, not through it: a health check needs no
        grant (it tells nothing but the status) and is not activity that keeps a program
        from going idle."""
        self._health = HealthServicer()
        for protocol in self.startup.protocols:
            await self._health.set(protocol, HealthCheckResponse.SERVING)
        for protocol, status in self._health_status.items():
            await self._health.set(protocol, status)
        add_HealthServicer_to_server(self._health, server)

    def _needs_server(self) -> bool:
        return bool(self._handlers or self._servicers or self.startup.stop_event == "notify")

    # -- stopping ------------------------------------------------------------------------

    async def _watch_idle(self) -> None:
        period = self.startup.idle_timeout_ms / 1000
        while not self._stopped.is_set():
            await self._tracker.wait_idle_for(period)
            try:
                reply = await self._runtime.request_stop("idle")
            except grpc.RpcError as e:
                log.warning("RequestStop(idle) failed: %s", e)
                reply = pb.RequestStopReply(accepted=False)
            if reply.accepted:
                await self._stop("idle", None)
                return
            self._tracker.touch()  # refused: wait another idle period

    def _begin_stop(self, reason: str, deadline: float | None) -> asyncio.Task:
        """Start the stop once: later stops (OnStop after an idle stop) join the first."""
        if self._stopping is None:
            self._reason = reason
            self._stop_deadline = deadline
            self._stopping = asyncio.create_task(self._run_stop_callbacks(reason, deadline),
                                                 name="cm stop")
        return self._stopping

    async def _stop(self, reason: str, deadline: float | None) -> None:
        """Run the on_stop callbacks once, then release ``wait_for_stop()``."""
        await asyncio.shield(self._begin_stop(reason, deadline))

    async def _run_stop_callbacks(self, reason: str, deadline: float | None) -> None:
        budget = (deadline - time.time()) if deadline else None
        try:
            async with asyncio.timeout(budget):
                for callback in self._on_stop:
                    await _logged(callback(reason))
        except TimeoutError:
            log.warning("on_stop callbacks did not finish before the stop deadline")
        finally:
            self._stopped.set()

    # -- capabilities, storage, config ---------------------------------------------------

    async def connect(self, capability: str, *, refresh: bool = False) -> GrantChannel:
        """A channel to the protocol ``capability`` (the name this component uses); it sends
        the grant on every call. Starts the provider if needed. Raises grpc.aio.AioRpcError
        with the manager's reason (NOT_FOUND / FAILED_PRECONDITION) if the route is broken.

        The channel is remembered per capability (later calls return it without asking the
        manager; ``refresh=True`` asks again). Channels to one provider address share one
        gRPC connection. A unary call that finds its grant stale (the provider stopped or
        restarted) asks the manager again and is repeated once (see ``GrantChannel``)."""
        channel = None if refresh else self._channels.get(capability)
        if channel is None or channel.closed:
            address, grant = await self._open(capability)
            channel = GrantChannel(self._transport(address), grant, owned=False,
                                   renew=functools.partial(self._renew, capability))
            if refresh:
                self._channels[capability] = channel
            else:  # two concurrent first connects: both get the first one stored
                channel = self._channels.setdefault(capability, channel)
        return channel

    async def _open(self, capability: str) -> tuple[str, bytes]:
        reply = await self._runtime.connect(capability)
        if reply.kind != "protocol":
            raise TypeError(f"'{capability}' is a {reply.kind} capability, not a protocol")
        return reply.address, reply.grant

    async def _renew(self, capability: str, channel: GrantChannel, unavailable: bool) -> None:
        address, grant = await self._open(capability)
        if unavailable and self._transports.get(address) is channel.transport:
            self._retire(address)  # it failed to connect: it would wait out its backoff
        channel.replace(self._transport(address), grant)

    def _transport(self, address: str) -> grpc.aio.Channel:
        """The one gRPC channel to ``address`` (a new one if the old one failed to connect:
        it would wait out its reconnect backoff, up to seconds, before trying again)."""
        transport = self._transports.get(address)
        if transport is None or transport.get_state() in _FAILED:
            self._retire(address)
            transport = self._transports[address] = grpc.aio.insecure_channel(address, options=_OWN_SUBCHANNELS)
        return transport

    def _retire(self, address: str) -> None:
        transport = self._transports.pop(address, None)
        if transport is not None:
            self._retired.append(transport)  # calls still on it end on their own; closed at aclose

    def storage(self, name: str):
        """The ``lmdb.Environment`` of the storage this component uses as ``name``, opened
        once per process. Raises StorageError if the component does not use it."""
        env = self._storage.get(name)
        if env is None:
            path = self.startup.storage.get(name)
            if path is None:
                used = ", ".join(sorted(self.startup.storage)) or "none"
                raise StorageError(self.moniker, name, f"not used by this component (uses: {used})")
            env = self._storage[name] = open_environment(path)
        return env

    async def config(self) -> Mapping:
        """This run's config values, read-only (``types.MappingProxyType``; lists are tuples)."""
        if self._config is None:
            values = json.loads(await self._runtime.get_config())
            self._config = types.MappingProxyType({k: _frozen(v) for k, v in values.items()})
        return self._config

    # -- teardown ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Drain calls in flight (until the stop deadline), close channels and storage."""
        if self._idle_task is not None:
            self._idle_task.cancel()
        if self._server is not None:
            await self._server.stop(self._grace())
        for transport in [*self._transports.values(), *self._retired]:
            await transport.close()
        await self._runtime.close()
        if self._startup_fd >= 0:
            os.close(self._startup_fd)
            self._startup_fd = -1
        for env in self._storage.values():
            env.close()
        self._channels.clear()
        self._transports.clear()
        self._retired.clear()
        self._storage.clear()

    def _grace(self) -> float:
        """How long calls in flight may go on: until the stop deadline, less the time to
        close and exit (the manager forces the stop at the deadline)."""
        if self._stop_deadline:
            left = self._stop_deadline - time.time()
            return max(0.0, left - min(_EXIT_MARGIN_S, left / 10))
        return _DEFAULT_STOP_GRACE_S

    def _sigterm_deadline(self) -> float | None:
        timeout_ms = self.startup.stop_timeout_ms
        return time.time() + timeout_ms / 1000 if timeout_ms > 0 else None


def _frozen(value):
    return tuple(value) if isinstance(value, list) else value


async def _logged(awaitable) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("on_stop callback failed")


async def run_async(main: Callable[[ComponentContext], Awaitable[None]],
                    startup: StartupInfo | None = None) -> int:
    """Run ``main(ctx)`` and clean up; returns the exit code (0, or 1 if ``main`` raised).

    ``startup`` defaults to the one the manager passed through ``CM_STARTUP_FD``; an
    ``inproc`` entry passes its own: ``async def entry(startup): await run_async(main, startup)``.
    """
    own_process = startup is None
    ctx = ComponentContext(*inherited_startup()) if own_process else ComponentContext(startup)
    loop = asyncio.get_running_loop()
    sigterm = own_process and _install_sigterm(loop, ctx)
    try:
        await main(ctx)
        code = 0
    except Exception:
        traceback.print_exc()
        code = 1
    finally:
        if sigterm:
            loop.remove_signal_handler(signal.SIGTERM)
        await ctx.aclose()
    return code


def _let_clients_connect(address: str) -> None:
    """Clients may run under other uids (a manager running as root gives each instance its
    own): they need write access to the socket. The folder it is in, and the grant checked
    on every call, keep out everyone else."""
    if address.startswith("unix:"):
        os.chmod(address.removeprefix("unix:"), 0o666)


def _install_sigterm(loop: asyncio.AbstractEventLoop, ctx: ComponentContext) -> bool:
    """SIGTERM is a stop too (reason "terminated"): callbacks run, then main may return.
    Its deadline is the component's ``stop_timeout`` from now, as for OnStop: calls in
    flight drain until then."""
    try:
        loop.add_signal_handler(signal.SIGTERM, lambda: ctx._begin_stop("terminated", ctx._sigterm_deadline()))
        return True
    except (RuntimeError, ValueError):  # not the main thread
        return False


def run(main: Callable[[ComponentContext], Awaitable[None]]) -> None:
    """The program's entry point: ``sdk.run(main)``. Exits the process with main's code."""
    code = asyncio.run(run_async(main))
    sys.stdout.flush()
    sys.exit(code)
