"""The server side of grants: every call checked, calls in flight counted, idleness.

Used by the SDK (a program's own server) and by the manager (its framework server).

Every incoming call must carry a grant the manager issued for this run of this component and
for the called service (``grants.verify`` with the run's key, capability = the gRPC service's
full name, e.g. ``echo.Echo``); anything else is answered PERMISSION_DENIED before the
handler runs. The check lives in each method handler, wrapped once when the service is
registered (``GrantGuard``), with one HMAC per grant rather than per call. Accepted calls are
counted while they run (a stream counts until it ends), so the idle watcher knows when
nothing has been in flight for ``idle_timeout``.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import time

import grpc

from . import grants
from .errors import AccessDenied

__all__ = ["ActivityTracker", "GrantGuard", "GrantInterceptor", "GRANT_WIRE_KEYS", "current_client"]

# gRPC allows arbitrary bytes only in metadata whose key ends in "-bin"; a grant is bytes, so
# it travels as "cm-grant-bin" (sent first), and "cm-grant" is accepted too.
_BASE_KEY = grants.GRANT_METADATA.removesuffix("-bin")
GRANT_WIRE_KEYS = (_BASE_KEY + "-bin", _BASE_KEY)

_client: contextvars.ContextVar[str] = contextvars.ContextVar("cm_client", default="")


def current_client() -> str:
    """Inside a handler: the moniker of the component that called (from its grant)."""
    return _client.get()


class ActivityTracker:
    """Counts calls in flight and remembers when the last one ended.

    A call only bumps a counter and a timestamp; the idle watcher is a timer that looks at
    them when it fires (and waits for the calls in flight to end), so calls never wake it.
    """

    def __init__(self):
        self.in_flight = 0
        self.last_active = time.monotonic()
        self._drained: asyncio.Event | None = None  # set when in_flight falls to 0

    def __enter__(self):
        self.in_flight += 1
        return self

    def __exit__(self, *exc):
        self.in_flight -= 1
        self.last_active = time.monotonic()
        if not self.in_flight and self._drained is not None:
            self._drained.set()

    def touch(self) -> None:
        self.last_active = time.monotonic()

    async def wait_idle_for(self, period: float) -> None:
        """Return once no call has been in flight for ``period`` seconds."""
        while True:
            if self.in_flight:
                self._drained = asyncio.Event()
                await self._drained.wait()
                continue
            remaining = self.last_active + period - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(remaining)  # a timer: activity meanwhile moves the deadline


def _grant_of(metadata) -> bytes:
    for key, value in metadata or ():
        if key in GRANT_WIRE_KEYS:
            return value if isinstance(value, bytes) else value.encode()
    return b""


class GrantGuard:
    """Wraps a service's method handlers, once, so that each call is checked and counted.

    A wrapped handler first verifies the call's grant for its service (``grants.Verifier``:
    one HMAC per grant, not per call) and answers PERMISSION_DENIED if it fails; only then
    does it deserialize the request, set ``current_client()`` and run the servicer's method,
    counted in flight by the tracker. Doing this in the handler rather than in a
    ``grpc.aio.ServerInterceptor`` saves the interceptor's per-call work (an extra coroutine
    and a new handler object for every call).

    Example::

        guard = GrantGuard(key, tracker)
        server.add_generic_rpc_handlers((guard.generic(generic_handler),))
        server.add_registered_method_handlers(service, guard.methods(service, handlers))
    """

    def __init__(self, key: bytes, tracker: ActivityTracker):
        self.verifier = grants.Verifier(key)
        self.tracker = tracker

    def methods(self, service: str, handlers: dict) -> dict:
        """``{method name: handler}`` of ``service``, each wrapped."""
        return {name: self.wrap(handler, f"/{service}/{name}") for name, handler in handlers.items()}

    def generic(self, handler: grpc.GenericRpcHandler) -> grpc.GenericRpcHandler:
        return _GuardedGenericHandler(handler, self)

    def server(self, server: grpc.aio.Server) -> _GuardedRegistrar:
        """A stand-in for ``server`` that wraps what a generated ``add_*_to_server`` adds."""
        return _GuardedRegistrar(server, self)

    def client_of(self, context, method: str) -> str:
        """The caller's moniker; raises AccessDenied."""
        service = method[1:method.rindex("/")]
        return self.verifier.verify(_grant_of(context.invocation_metadata()), service)

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """The same handler, refusing calls without a valid grant, counted and labelled."""
        if handler.request_streaming:
            return _wrap_stream_request(handler, method, self)
        return _wrap_unary_request(handler, method, self)


async def _refuse(context, denied: AccessDenied, method: str):
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{denied} (calling {method})")


async def _finish(result):
    return await result if inspect.isawaitable(result) else result


async def _stream_items(result):
    """Yield what a streaming servicer method produces, whatever its shape."""
    if inspect.isasyncgen(result):
        async for item in result:
            yield item
    elif inspect.isgenerator(result):  # a plain (sync) servicer method
        for item in result:
            yield item
    else:  # a handler that writes with context.write() and returns None
        await _finish(result)


def _wrap_unary_request(handler, method: str, guard: GrantGuard):
    """Unary request: the request arrives as bytes and is deserialized after the check, so
    a refused call never reaches the servicer's deserializer either.

    The wrappers are real ``async def`` functions: grpc.aio runs anything that is not a
    coroutine (or async generator) function in a worker thread."""
    deserialize = handler.request_deserializer
    tracker = guard.tracker

    if handler.unary_unary:
        inner = handler.unary_unary
        direct = inspect.iscoroutinefunction(inner)

        async def unary_unary(raw, context):
            try:
                client = guard.client_of(context, method)
            except AccessDenied as e:
                return await _refuse(context, e, method)
            request = raw if deserialize is None else deserialize(raw)
            _client.set(client)
            with tracker:
                return await (inner(request, context) if direct else _finish(inner(request, context)))

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, response_serializer=handler.response_serializer)

    inner = handler.unary_stream

    async def unary_stream(raw, context):
        try:
            client = guard.client_of(context, method)
        except AccessDenied as e:
            await _refuse(context, e, method)
            return
        request = raw if deserialize is None else deserialize(raw)
        _client.set(client)
        with tracker:
            async for item in _stream_items(inner(request, context)):
                yield item

    return grpc.unary_stream_rpc_method_handler(
        unary_stream, response_serializer=handler.response_serializer)


def _wrap_stream_request(handler, method: str, guard: GrantGuard):
    """Streaming request: gRPC deserializes each message as the servicer reads it, after the
    check; the wrapper keeps the deserializer."""
    ser = {"request_deserializer": handler.request_deserializer,
           "response_serializer": handler.response_serializer}
    tracker = guard.tracker

    if handler.stream_unary:
        inner = handler.stream_unary

        async def stream_unary(requests, context):
            try:
                client = guard.client_of(context, method)
            except AccessDenied as e:
                return await _refuse(context, e, method)
            _client.set(client)
            with tracker:
                return await _finish(inner(requests, context))

        return grpc.stream_unary_rpc_method_handler(stream_unary, **ser)

    inner = handler.stream_stream

    async def stream_stream(requests, context):
        try:
            client = guard.client_of(context, method)
        except AccessDenied as e:
            await _refuse(context, e, method)
            return
        _client.set(client)
        with tracker:
            async for item in _stream_items(inner(requests, context)):
                yield item

    return grpc.stream_stream_rpc_method_handler(stream_stream, **ser)


class _GuardedGenericHandler(grpc.GenericRpcHandler):
    """A generic handler whose answers are wrapped: once per method, remembered as long as
    the inner handler keeps answering with the same handler object."""

    def __init__(self, inner: grpc.GenericRpcHandler, guard: GrantGuard):
        self._inner = inner
        self._guard = guard
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def service(self, handler_call_details):
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None  # UNIMPLEMENTED, as without the guard
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is None or known[0] is not handler:
            known = self._wrapped[method] = (handler, self._guard.wrap(handler, method))
        return known[1]


class _GuardedRegistrar:
    """What ``add_FooServicer_to_server(servicer, registrar)`` sees instead of the server."""

    def __init__(self, server: grpc.aio.Server, guard: GrantGuard):
        self._server = server
        self._guard = guard

    def add_generic_rpc_handlers(self, handlers) -> None:
        self._server.add_generic_rpc_handlers(tuple(self._guard.generic(h) for h in handlers))

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        self._server.add_registered_method_handlers(service, self._guard.methods(service, handlers))


class GrantInterceptor(grpc.aio.ServerInterceptor):
    """The same check as an interceptor, for a server whose services are added by code
    that does not go through a ``GrantGuard`` (the manager's framework server)."""

    def __init__(self, key: bytes, tracker: ActivityTracker):
        self._guard = GrantGuard(key, tracker)

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None:
            return None  # UNIMPLEMENTED, as without the interceptor
        return self._guard.wrap(handler, details.method)
