"""The program's client side: its channel to the manager, and channels to capabilities.

The manager's ComponentRuntime is reached on ``startup.component_address`` with ``cm-token``
metadata on every call (the token of this one run). A channel to a capability (a
``GrantChannel``) carries the grant the manager gave with the address, as ``cm-grant-bin``
metadata on every call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import grpc

from .. import grants
from .._generated import component_pb2 as pb
from .._generated import component_pb2_grpc as pb_grpc
from ..grant_guard import GRANT_WIRE_KEYS

__all__ = ["GrantChannel", "RuntimeClient", "TOKEN_METADATA", "grant_channel"]

TOKEN_METADATA = "cm-token"
# How long a call whose grant keeps going stale (a provider in stop/start churn) is tried
# again, when it has no timeout of its own (with one, until that runs out).
RENEW_WINDOW_S = 30.0


class GrantChannel:
    """A ``grpc.aio.Channel`` view that sends one grant as call metadata on every call.

    No interceptor: each multicallable is wrapped once (when the stub is made) and adds the
    grant to the call's metadata, so a call costs what a plain channel's call costs. Several
    views can share one channel (the grant is per call, not per connection): a component
    keeps one channel per provider address.

    With ``renew`` (what ``ComponentContext.connect`` gives), a unary-unary call that finds
    its grant stale is repeated with a fresh one (until its timeout, or ``RENEW_WINDOW_S``):
    ``renew()`` asks the manager again (which waits for a stop in flight and starts the
    provider again) and updates this view. Stale means the call never ran at the provider:
    no connection could be made (UNAVAILABLE "failed to connect": the provider stopped), the
    provider's server was shutting down before the call reached a handler (CANCELLED, as
    gRPC cancels the calls it has not dispatched when it stops; a call cancelled after it ran
    says "Cancelling all calls" instead), or its grant check refused a grant of an earlier
    run (PERMISSION_DENIED, ``grants.NOT_ISSUED_HERE``). A call that failed after it reached the
    provider (it died mid-call) is not repeated: it may have run. Streaming calls are not
    repeated either (their requests may be consumed): they fail, and the next call uses the
    renewed grant.

    Example::

        async with grant_channel("unix:/run/echo.sock", grant) as channel:
            await channel.unary_unary("/echo.Echo/Echo")(b"hi")
    """

    def __init__(self, channel: grpc.aio.Channel, grant: bytes, *, owned: bool = True,
                 renew: Callable[[GrantChannel, bool], Awaitable[None]] | None = None):
        self._channel = channel
        self._metadata: tuple = ((GRANT_WIRE_KEYS[0], grant),)
        self._owned = owned
        self._renew = renew
        self._renewing: asyncio.Future | None = None
        self.generation = 0  # bumped by each renewal
        self.closed = False

    def replace(self, channel: grpc.aio.Channel, grant: bytes) -> None:
        """Send calls through ``channel`` with ``grant`` from now on (after a renewal)."""
        self._channel = channel
        self._metadata = ((GRANT_WIRE_KEYS[0], grant),)
        self.generation += 1

    @property
    def transport(self) -> grpc.aio.Channel:
        """The gRPC channel the calls go through now."""
        return self._channel

    async def renew(self, seen_generation: int, unavailable: bool) -> None:
        """Get a fresh grant, once for all the calls that found the one of ``seen_generation``
        stale (concurrent callers share the one renewal). ``unavailable``: the channel could
        not reach the provider, so it should be replaced too."""
        if self.generation != seen_generation:
            return  # someone renewed it since that call started
        if self._renewing is None:
            self._renewing = asyncio.ensure_future(self._renew(self, unavailable))
            self._renewing.add_done_callback(self._renewed)
        await asyncio.shield(self._renewing)

    def _renewed(self, future: asyncio.Future) -> None:
        self._renewing = None
        if not future.cancelled():
            future.exception()  # retrieved here; the waiters re-raise it

    def _with_grant(self, metadata):
        if self.closed:
            raise grpc.aio.UsageError("Channel is closed.")
        return self._metadata if metadata is None else (*metadata, *self._metadata)

    def unary_unary(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        make = lambda channel: channel.unary_unary(  # noqa: E731
            method, request_serializer, response_deserializer, _registered_method)
        return (_RenewingUnaryUnary if self._renew else _GrantedMultiCallable)(self, make)

    def unary_stream(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return _GrantedMultiCallable(self, lambda channel: channel.unary_stream(
            method, request_serializer, response_deserializer, _registered_method))

    def stream_unary(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return _GrantedMultiCallable(self, lambda channel: channel.stream_unary(
            method, request_serializer, response_deserializer, _registered_method))

    def stream_stream(self, method, request_serializer=None, response_deserializer=None, _registered_method=False):
        return _GrantedMultiCallable(self, lambda channel: channel.stream_stream(
            method, request_serializer, response_deserializer, _registered_method))

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._channel.channel_ready()

    async def close(self, grace: float | None = None) -> None:
        """Close the view; the channel too if this view owns it (a shared channel is closed
        by the context that shares it)."""
        self.closed = True
        if self._owned:
            await self._channel.close(grace)

    async def __aenter__(self) -> GrantChannel:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close(None)


class _GrantedMultiCallable:
    """A channel's multicallable, made once per channel, that adds the grant to each call."""

    __slots__ = ("_view", "_make", "_channel", "_callable")

    def __init__(self, view: GrantChannel, make: Callable):
        self._view = view
        self._make = make
        self._channel = None
        self._callable = None

    def _current(self):
        if self._channel is not self._view._channel:  # the view was renewed onto another channel
            self._channel = self._view._channel
            self._callable = self._make(self._channel)
        return self._callable

    def __call__(self, request, *, metadata=None, **kwargs):
        return self._current()(request, metadata=self._view._with_grant(metadata), **kwargs)


class _RenewingUnaryUnary(_GrantedMultiCallable):
    __slots__ = ()

    def __call__(self, request, *, metadata=None, **kwargs):
        view = self._view
        call = self._current()(request, metadata=view._with_grant(metadata), **kwargs)
        return _RenewingCall(call, self, (request, metadata, kwargs), view.generation)


class _RenewingCall:
    """Awaits a unary call; if its grant was stale, renews it and awaits the call once more.
    Other attributes are those of the call in progress (``cancel()``, ``code()``, ...)."""

    __slots__ = ("_call", "_multicallable", "_args", "_generation")

    def __init__(self, call, multicallable: _RenewingUnaryUnary, args: tuple, generation: int):
        self._call = call
        self._multicallable = multicallable
        self._args = args
        self._generation = generation

    def __await__(self):
        return self._result().__await__()

    async def _result(self):
        view = self._multicallable._view
        request, metadata, kwargs = self._args
        timeout = kwargs.get("timeout")
        deadline = time.monotonic() + (timeout if timeout is not None else RENEW_WINDOW_S)
        while True:
            try:
                return await self._call
            except grpc.aio.AioRpcError as e:
                if not _stale(e) or time.monotonic() >= deadline:
                    raise
                unavailable = e.code() == grpc.StatusCode.UNAVAILABLE
            await view.renew(self._generation, unavailable)
            self._generation = view.generation
            if timeout is not None:  # the call's own deadline covers all its tries
                kwargs = {**kwargs, "timeout": max(0.0, deadline - time.monotonic())}
            self._call = self._multicallable._current()(request, metadata=view._with_grant(metadata), **kwargs)

    def __getattr__(self, name):
        return getattr(self._call, name)


def _stale(error: grpc.aio.AioRpcError) -> bool:
    """The call never ran at the provider, so it can be repeated (see GrantChannel)."""
    code, details = error.code(), error.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE:  # not "Socket closed": that call may have run
        return "failed to connect" in details
    if code == grpc.StatusCode.CANCELLED:  # by a server shutting down, before any handler
        return details == "CANCELLED"  # (one it cancelled mid-call says "Cancelling all calls")
    return code == grpc.StatusCode.PERMISSION_DENIED and grants.NOT_ISSUED_HERE in details


def grant_channel(address: str, grant: bytes) -> GrantChannel:
    """A channel of its own to ``address`` that sends ``grant`` with every call."""
    return GrantChannel(grpc.aio.insecure_channel(address), grant)


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
