"""Build the manager's two gRPC servers on Unix sockets.

``manager.sock`` (mode 0600): the control API, health and reflection. ``component.sock``:
ComponentRuntime for running programs (each call authenticated by its run token). Two
sockets so that the control API is never on the address programs are given.
"""

from __future__ import annotations

import os
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from .._generated import component_pb2_grpc, manager_pb2, manager_pb2_grpc
from .control import EventStreamServicer, LifecycleServicer, RealmQueryServicer, RealmServicer
from .runtime import RuntimeServicer

__all__ = ["CONTROL_SOCKET", "RUNTIME_SOCKET", "start_servers"]

CONTROL_SOCKET = "manager.sock"
RUNTIME_SOCKET = "component.sock"


async def start_servers(model, state_dir: Path) -> list[grpc.aio.Server]:
    control_path, runtime_path = state_dir / CONTROL_SOCKET, state_dir / RUNTIME_SOCKET
    for path in (control_path, runtime_path):
        path.unlink(missing_ok=True)

    control = grpc.aio.server()
    manager_pb2_grpc.add_LifecycleControllerServicer_to_server(LifecycleServicer(model), control)
    manager_pb2_grpc.add_RealmServicer_to_server(RealmServicer(model), control)
    manager_pb2_grpc.add_RealmQueryServicer_to_server(RealmQueryServicer(model), control)
    manager_pb2_grpc.add_EventStreamServicer_to_server(EventStreamServicer(model), control)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, control)
    services = [s.full_name for s in manager_pb2.DESCRIPTOR.services_by_name.values()]
    reflection.enable_server_reflection(
        [*services, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        control)
    old_umask = os.umask(0o177)  # the socket is created owner-only, with no window
    try:
        control.add_insecure_port(f"unix:{control_path}")
    finally:
        os.umask(old_umask)

    runtime = grpc.aio.server()
    component_pb2_grpc.add_ComponentRuntimeServicer_to_server(RuntimeServicer(model), runtime)
    runtime.add_insecure_port(f"unix:{runtime_path}")

    await runtime.start()
    await control.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    return [control, runtime]
