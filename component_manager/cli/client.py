"""The CLI's connection to a running manager: one place that turns gRPC failures into
one-line errors with documented exit codes."""

from __future__ import annotations

import os

import grpc

from .._generated import manager_pb2_grpc
from ..errors import CmError, ManagerNotRunning

__all__ = ["Client", "RemoteError"]

CALL_TIMEOUT_S = 120.0  # a start may wait for a program's start_timeout; stops for stop_timeout
# gRPC refuses replies over 4 MiB by default; `cm list --json` of 100,000 instances is ~15 MiB.
CHANNEL_OPTIONS = (("grpc.max_receive_message_length", -1),)


class RemoteError(CmError):
    """The manager answered with an error status ``code`` (its exit code: cli/exitcodes.py)."""

    def __init__(self, error: grpc.RpcError):
        self.code = error.code()
        super().__init__(error.details() or self.code.name)

    @classmethod
    def answered(cls, code: str, message: str) -> RemoteError:
        """The same error, answered by the query socket with the code's name (cli/reads.py)."""
        error = cls.__new__(cls)
        error.code = grpc.StatusCode.__members__.get(code, grpc.StatusCode.UNKNOWN)
        CmError.__init__(error, message or code)
        return error


class Client:
    """A channel to the manager at ``state_dir`` and the generated stubs of its four services
    (``client.query.GetInstance(request, timeout=...)``, or through ``call`` for one-line
    errors). Raises ManagerNotRunning when there is no socket."""

    def __init__(self, state_dir: str):
        self.state_dir = os.path.realpath(state_dir)
        socket = os.path.join(self.state_dir, "manager.sock")
        if not os.path.exists(socket):
            raise ManagerNotRunning(self.state_dir)
        self.channel = grpc.insecure_channel(f"unix:{socket}", options=CHANNEL_OPTIONS)
        self.lifecycle = manager_pb2_grpc.LifecycleControllerStub(self.channel)
        self.realm = manager_pb2_grpc.RealmStub(self.channel)
        self.query = manager_pb2_grpc.RealmQueryStub(self.channel)
        self.events = manager_pb2_grpc.EventStreamStub(self.channel)

    def call(self, method, request, timeout: float = CALL_TIMEOUT_S):
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                raise ManagerNotRunning(self.state_dir) from None
            raise RemoteError(e) from None
