"""The program's client side: its channel to the manager, and channels to capabilities.

The manager's ComponentRuntime is reached on ``startup.component_address`` with ``cm-token``
metadata on every call (the token of this one run). A channel to a capability carries the
grant the manager gave with the address, as ``cm-grant-bin`` metadata on every call.
"""

from __future__ import annotations

import grpc

from .._generated import component_pb2 as pb
from .._generated import component_pb2_grpc as pb_grpc
from ._server import GRANT_WIRE_KEYS

__all__ = ["MetadataInterceptor", "RuntimeClient", "TOKEN_METADATA", "grant_channel"]

TOKEN_METADATA = "cm-token"


class MetadataInterceptor(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor,
                          grpc.aio.StreamUnaryClientInterceptor, grpc.aio.StreamStreamClientInterceptor):
    """Adds one metadata entry to every call, of every kind."""

    def __init__(self, key: str, value: str | bytes):
        self._entry = (key, value)

    def _details(self, details):
        metadata = grpc.aio.Metadata(*(details.metadata or ()), self._entry)
        return details._replace(metadata=metadata)

    async def intercept_unary_unary(self, continuation, details, request):
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation, details, request):
        return await continuation(self._details(details), request)

    async def intercept_stream_unary(self, continuation, details, request_iterator):
        return await continuation(self._details(details), request_iterator)

    async def intercept_stream_stream(self, continuation, details, request_iterator):
        return await continuation(self._details(details), request_iterator)


def grant_channel(address: str, grant: bytes) -> grpc.aio.Channel:
    """A channel to ``address`` that sends ``grant`` with every call."""
    return grpc.aio.insecure_channel(address, interceptors=[MetadataInterceptor(GRANT_WIRE_KEYS[0], grant)])


class RuntimeClient:
    """The four ComponentRuntime calls, each with this run's token. The channel is made on
    first use (never at import, never before a fork)."""

    def __init__(self, address: str, token: str):
        self._address = address
        self._metadata = ((TOKEN_METADATA, token),)
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.ComponentRuntimeStub | None = None

    def _runtime(self) -> pb_grpc.ComponentRuntimeStub:
        if self._stub is None:
            if not self._address:
                raise RuntimeError("no component_address in the startup info: no manager to call")
            self._channel = grpc.aio.insecure_channel(self._address)
            self._stub = pb_grpc.ComponentRuntimeStub(self._channel)
        return self._stub

    async def report_serving(self) -> None:
        await self._runtime().ReportServing(pb.ReportServingRequest(), metadata=self._metadata)

    async def connect(self, capability: str) -> pb.ConnectReply:
        return await self._runtime().Connect(pb.ConnectRequest(capability=capability), metadata=self._metadata)

    async def request_stop(self, reason: str) -> pb.RequestStopReply:
        return await self._runtime().RequestStop(pb.RequestStopRequest(reason=reason), metadata=self._metadata)

    async def get_config(self) -> str:
        reply = await self._runtime().GetConfig(pb.GetConfigRequest(), metadata=self._metadata)
        return reply.values_json

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = self._stub = None
