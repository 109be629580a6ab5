"""The CLI's connection to a running manager: one place that turns gRPC failures into
one-line errors with documented exit codes."""

from __future__ import annotations

import os

import grpc

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


class Client:
    """A channel to the manager at ``state_dir`` and its four services, called as the
    generated stubs are (``client.query.GetInstance(request, timeout=...)``, or through
    ``call`` for one-line errors). Raises ManagerNotRunning when there is no socket."""

    def __init__(self, state_dir: str):
        self.state_dir = os.path.realpath(state_dir)  # as Path.resolve(), without pathlib's imports
        socket = os.path.join(self.state_dir, "manager.sock")
        if not os.path.exists(socket):
            raise ManagerNotRunning(self.state_dir)
        self.channel = grpc.insecure_channel(f"unix:{socket}", options=CHANNEL_OPTIONS)
        self.lifecycle = _Service(self.channel, "LifecycleController")
        self.realm = _Service(self.channel, "Realm")
        self.query = _Service(self.channel, "RealmQuery")
        self.events = _Service(self.channel, "EventStream")

    def call(self, method, request, timeout: float = CALL_TIMEOUT_S):
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                raise ManagerNotRunning(self.state_dir) from None
            raise RemoteError(e) from None


# (client streams, server streams) -> the grpc.Channel method that makes such a call
_CHANNEL_METHOD = {(False, False): "unary_unary", (False, True): "unary_stream",
                   (True, False): "stream_unary", (True, True): "stream_stream"}


class _Service:
    """One service of manager.proto, its methods made on first use from the descriptors in
    manager_pb2, as the generated stub makes them. The CLI does not import manager_pb2_grpc:
    to call one method, a command would compile and run its 650 lines of servicers, server
    registrations and stubs (~3 ms of `cm show`)."""

    def __init__(self, channel: grpc.Channel, name: str):
        from .._generated import manager_pb2

        self._channel = channel
        self._service = manager_pb2.DESCRIPTOR.services_by_name[name]

    def __getattr__(self, name: str):
        from google.protobuf.message_factory import GetMessageClass

        method = self._service.methods_by_name.get(name)
        if method is None:
            raise AttributeError(f"service {self._service.full_name} has no method {name!r}")
        make = getattr(self._channel, _CHANNEL_METHOD[method.client_streaming, method.server_streaming])
        multicallable = make(f"/{self._service.full_name}/{name}",
                             request_serializer=GetMessageClass(method.input_type).SerializeToString,
                             response_deserializer=GetMessageClass(method.output_type).FromString,
                             _registered_method=True)
        setattr(self, name, multicallable)  # found as an attribute from now on
        return multicallable

