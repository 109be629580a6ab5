"""Build the manager's gRPC servers and the guard in front of the control API.

* control: LifecycleController, Realm, RealmQuery, EventStream, health, reflection. Served
  on a *hidden* socket (no name anyone can connect to, see ``relay.py``); reached through
  ``manager.sock`` (mode 0600), a relay that refuses component programs (SO_PEERCRED).
* ``component.sock``: ComponentRuntime for running programs (each call authenticated by
  its run token). The control API is never on the address programs are given.
* ``framework.sock``: the control services again, for components that *use* one of them
  ``from: "framework"``; every call needs a grant for its service, issued by Connect.
* ``query.sock``: RealmQuery's ListInstances and GetInstance as JSON, for `cm list` and
  `cm show` without grpc (``query_socket.py``); the same peers as ``manager.sock``.
"""

from __future__ import annotations

import grpc
from pathlib import Path

from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from .. import grants
from ..grant_guard import ActivityTracker, GrantInterceptor
from .._generated import component_pb2_grpc, manager_pb2, manager_pb2_grpc
from .control import EventStreamServicer, LifecycleServicer, RealmQueryServicer, RealmServicer
from .decoding import DecodingRegistrar
from .query_socket import QueryServer
from .query_wire import QUERY_SOCKET
from .relay import ControlRelay, HiddenSocket
from .runtime import RuntimeServicer

__all__ = ["CONTROL_SOCKET", "FRAMEWORK_SOCKET", "QUERY_SOCKET", "RUNTIME_SOCKET", "Servers", "start_servers"]

CONTROL_SOCKET = "manager.sock"
RUNTIME_SOCKET = "component.sock"
FRAMEWORK_SOCKET = "framework.sock"


def _add_control_services(model, server) -> None:
    server = DecodingRegistrar(server)  # bytes that do not parse: INVALID_ARGUMENT
    manager_pb2_grpc.add_LifecycleControllerServicer_to_server(LifecycleServicer(model), server)
    manager_pb2_grpc.add_RealmServicer_to_server(RealmServicer(model), server)
    manager_pb2_grpc.add_RealmQueryServicer_to_server(RealmQueryServicer(model), server)
    manager_pb2_grpc.add_EventStreamServicer_to_server(EventStreamServicer(model), server)


def running_program_sessions(model) -> set[int]:
    """Session ids of the programs the manager runs now (each leads its own session)."""
    sessions = set()
    for inst in list(model.index.values()):
        run = inst.run
        program = run.program if run is not None else None
        if program is not None and program.identity is not None:
            sessions.add(program.pid)
    return sessions


class Servers:
    """What ``start_servers`` started; ``stop()`` ends them all."""

    def __init__(self, grpc_servers, relay: ControlRelay, hidden: HiddenSocket, query: QueryServer,
                 runtime_tcp: str = ""):
        self.grpc_servers = grpc_servers
        self.relay = relay
        self.hidden = hidden
        self.query = query
        self.runtime_tcp = runtime_tcp  # ComponentRuntime on TCP ("host:port"), for Ray nodes

    @property
    def control_target(self) -> str:
        """The control server without the relay, for this process only (measurements)."""
        return self.hidden.target

    async def stop(self, grace: float = 0.5) -> None:
        await self.query.stop()
        await self.relay.stop()
        for server in self.grpc_servers:
            await server.stop(grace=grace)
        self.hidden.close()


# gRPC core cancels calls that wait for a handler once more than 1,000 wait (randomly) or
# 3,000 (all): a client creating 10,000 children at once saw CANCELLED for thousands of them.
# A local manager would rather queue them: each waits only for the event loop.
_SERVER_OPTIONS = (
    ("grpc.server.max_pending_requests", 100_000),
    ("grpc.server.max_pending_requests_hard_limit", 100_000),
)


async def start_servers(model, state_dir: Path, tcp_host: str = "") -> Servers:
    """``tcp_host``: also serve ComponentRuntime on TCP there (an ephemeral port), for
    programs on Ray nodes; every call still needs its run's token (docs/security.md)."""
    control_path = state_dir / CONTROL_SOCKET
    runtime_path = state_dir / RUNTIME_SOCKET
    framework_path = state_dir / FRAMEWORK_SOCKET
    for path in (control_path, runtime_path, framework_path):
        path.unlink(missing_ok=True)

    control = grpc.aio.server(options=_SERVER_OPTIONS)
    _add_control_services(model, control)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, DecodingRegistrar(control))
    services = [s.full_name for s in manager_pb2.DESCRIPTOR.services_by_name.values()]
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(  # enable_server_reflection, decoding
        reflection.aio.ReflectionServicer(
            [*services, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]),
        DecodingRegistrar(control))
    hidden = HiddenSocket()
    control.add_insecure_port(hidden.bind_address)

    model.framework_key = grants.new_key()
    framework = grpc.aio.server(interceptors=[GrantInterceptor(model.framework_key, ActivityTracker())],
                                options=_SERVER_OPTIONS)
    _add_control_services(model, framework)
    framework.add_insecure_port(f"unix:{framework_path}")

    runtime = grpc.aio.server(options=_SERVER_OPTIONS)
    component_pb2_grpc.add_ComponentRuntimeServicer_to_server(RuntimeServicer(model), DecodingRegistrar(runtime))
    runtime.add_insecure_port(f"unix:{runtime_path}")
    runtime_tcp = ""
    if tcp_host:
        host = f"[{tcp_host}]" if ":" in tcp_host else tcp_host
        runtime_tcp = f"{host}:{runtime.add_insecure_port(f'{host}:0')}"

    await runtime.start()
    await framework.start()
    await control.start()
    hidden.hide()
    model.framework_address = f"unix:{framework_path}"
    relay = ControlRelay(control_path, hidden.connect_path, lambda: running_program_sessions(model))
    await relay.start()
    query = QueryServer(model, state_dir / QUERY_SOCKET, lambda: running_program_sessions(model))
    await query.start()
    for name in ("", *services):  # the server as a whole, and each service by its full name
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return Servers([control, framework, runtime], relay, hidden, query, runtime_tcp)
