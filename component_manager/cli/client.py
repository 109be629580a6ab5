"""The CLI's connection to a running manager: one place that turns gRPC failures into
one-line errors with documented exit codes."""

from __future__ import annotations

import os

import grpc

from ..errors import CmError, ManagerNotRunning

__all__ = ["Client", "RemoteError"]

CALL_TIMEOUT_S = 120.0  # a start may wait for a program's start_timeout; stops for stop_timeout


class RemoteError(CmError):
    """The manager answered with an error status; ``exit_code`` follows cli.main's table."""

    def __init__(self, error: grpc.RpcError):
        from .main import EXIT_ERROR, EXIT_NOT_FOUND

        self.code = error.code()
        self.exit_code = EXIT_NOT_FOUND if self.code == grpc.StatusCode.NOT_FOUND else EXIT_ERROR
        super().__init__(error.details() or self.code.name)


class Client:
    def __init__(self, state_dir: str):
        from .._generated import manager_pb2_grpc as pb_grpc

        self.state_dir = os.path.realpath(state_dir)  # as Path.resolve(), without pathlib's imports
        socket = os.path.join(self.state_dir, "manager.sock")
        if not os.path.exists(socket):
            raise _not_running(self.state_dir)
        self.channel = grpc.insecure_channel(f"unix:{socket}")
        self.lifecycle = pb_grpc.LifecycleControllerStub(self.channel)
        self.realm = pb_grpc.RealmStub(self.channel)
        self.query = pb_grpc.RealmQueryStub(self.channel)
        self.events = pb_grpc.EventStreamStub(self.channel)

    def call(self, method, request, timeout: float = CALL_TIMEOUT_S):
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                raise _not_running(self.state_dir) from None
            raise RemoteError(e) from None


def _not_running(state_dir: str) -> ManagerNotRunning:
    from .main import EXIT_NO_MANAGER

    error = ManagerNotRunning(state_dir)
    error.exit_code = EXIT_NO_MANAGER
    return error
