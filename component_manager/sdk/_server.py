"""The program's gRPC server side: grant checks, calls in flight, idleness.

Every incoming call must carry a grant the manager issued for this run of this component and
for the called service (``grants.verify`` with the run's key, capability = the gRPC service's
full name, e.g. ``echo.Echo``); anything else is answered PERMISSION_DENIED before the
handler runs. Accepted calls are counted while they run (a stream counts until it ends), so
the idle watcher knows when nothing has been in flight for ``idle_timeout``.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import time

import grpc

from .. import grants
from ..errors import AccessDenied

__all__ = ["ActivityTracker", "GrantInterceptor", "GRANT_WIRE_KEYS", "current_client"]

# gRPC allows arbitrary bytes only in metadata whose key ends in "-bin"; a grant is bytes, so
# it travels as "cm-grant-bin" (sent first), and "cm-grant" is accepted too.
_BASE_KEY = grants.GRANT_METADATA.removesuffix("-bin")
GRANT_WIRE_KEYS = (_BASE_KEY + "-bin", _BASE_KEY)

_client: contextvars.ContextVar[str] = contextvars.ContextVar("cm_client", default="")


def current_client() -> str:
    """Inside a handler: the moniker of the component that called (from its grant)."""
    return _client.get()


class ActivityTracker:
    """Counts calls in flight and remembers when the last one ended."""

    def __init__(self):
        self.in_flight = 0
        self.last_active = time.monotonic()
        self._changed = asyncio.Event()

    def __enter__(self):
        self.in_flight += 1
        self._changed.set()
        return self

    def __exit__(self, *exc):
        self.in_flight -= 1
        self.last_active = time.monotonic()
        self._changed.set()

    def touch(self) -> None:
        self.last_active = time.monotonic()

    async def wait_idle_for(self, period: float) -> None:
        """Return once no call has been in flight for ``period`` seconds."""
        while True:
            self._changed.clear()
            if self.in_flight:
                await self._changed.wait()
                continue
            remaining = self.last_active + period - time.monotonic()
            if remaining <= 0:
                return
            try:  # a timer, woken early by any call starting or ending
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass


def _grant_of(metadata) -> bytes:
    for key, value in metadata or ():
        if key in GRANT_WIRE_KEYS:
            return value if isinstance(value, bytes) else value.encode()
    return b""


class GrantInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without a valid grant; counts and labels the accepted ones."""

    def __init__(self, key: bytes, tracker: ActivityTracker):
        self._key = key
        self._tracker = tracker

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None:
            return None  # UNIMPLEMENTED, as without the interceptor
        service = details.method.lstrip("/").rpartition("/")[0]
        try:
            if not self._key:
                raise AccessDenied("this component accepts no calls (it has no grant key)")
            client = grants.verify(self._key, _grant_of(details.invocation_metadata), service)
        except AccessDenied as e:
            return _refusing(handler, f"{e} (calling {details.method})")
        return _tracked(handler, self._tracker, client)


def _refusing(handler, message: str):
    async def refuse(_request, context):
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, message)

    async def refuse_stream(_request, context):
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, message)
        yield  # pragma: no cover - makes this an async generator

    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(refuse)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse_stream)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(refuse)
    return grpc.stream_stream_rpc_method_handler(refuse_stream)


async def _finish(result):
    return await result if inspect.isawaitable(result) else result


def _tracked(handler, tracker: ActivityTracker, client: str):
    """The same handler, counted in flight for its whole duration and knowing its caller.

    The wrappers are real ``async def`` functions: grpc.aio runs anything that is not a
    coroutine (or async generator) function in a worker thread.
    """
    ser = {"request_deserializer": handler.request_deserializer,
           "response_serializer": handler.response_serializer}
    inner = (handler.unary_unary or handler.stream_unary
             or handler.unary_stream or handler.stream_stream)

    async def unary(request, context):
        _client.set(client)
        with tracker:
            return await _finish(inner(request, context))

    async def streaming(request, context):
        _client.set(client)
        with tracker:
            result = inner(request, context)
            if inspect.isasyncgen(result):
                async for item in result:
                    yield item
            elif inspect.isgenerator(result):  # a plain (sync) servicer method
                for item in result:
                    yield item
            else:  # a handler that writes with context.write() and returns None
                await _finish(result)

    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary, **ser)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary, **ser)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streaming, **ser)
    return grpc.stream_stream_rpc_method_handler(streaming, **ser)
