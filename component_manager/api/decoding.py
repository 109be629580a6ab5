"""Undecodable requests are the caller's mistake: INVALID_ARGUMENT, not a traceback.

gRPC deserializes a request before any servicer code runs; bytes that are not the method's
message make it log a traceback and answer UNKNOWN. ``DecodingRegistrar`` stands in for the
server when services are added (``add_FooServicer_to_server(servicer, registrar)``) and
hands gRPC handlers that take the raw bytes and parse them themselves, once wrapped per
method (no per-call interceptor). A library stub that raises NotImplementedError is answered
UNIMPLEMENTED, also without a traceback.
"""

from __future__ import annotations

import inspect

import grpc

__all__ = ["DecodingRegistrar", "decoding"]


class DecodingRegistrar:
    """What ``add_*_to_server`` sees instead of ``server``: every handler decodes safely."""

    def __init__(self, server):
        self._server = server

    def add_generic_rpc_handlers(self, handlers) -> None:
        self._server.add_generic_rpc_handlers(tuple(_Generic(h) for h in handlers))

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        self._server.add_registered_method_handlers(
            service, {name: decoding(h, f"/{service}/{name}") for name, h in handlers.items()})


class _Generic(grpc.GenericRpcHandler):
    def __init__(self, inner: grpc.GenericRpcHandler):
        self._inner = inner
        self._wrapped: dict[str, tuple] = {}

    def service(self, details):
        handler = self._inner.service(details)
        if handler is None:
            return None
        known = self._wrapped.get(details.method)
        if known is None or known[0] is not handler:
            known = self._wrapped[details.method] = (handler, decoding(handler, details.method))
        return known[1]


def decoding(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """``handler`` taking raw bytes: a request that does not parse is INVALID_ARGUMENT."""
    parse = handler.request_deserializer
    if parse is None:
        return handler
    serialize = handler.response_serializer
    if handler.request_streaming:
        inner = handler.stream_unary or handler.stream_stream
        wrapped = _stream_request(inner, parse, method, handler.response_streaming)
        make = grpc.stream_stream_rpc_method_handler if handler.response_streaming else grpc.stream_unary_rpc_method_handler
        return make(wrapped, response_serializer=serialize)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(_unary_stream(handler.unary_stream, parse, method),
                                                    response_serializer=serialize)
    return grpc.unary_unary_rpc_method_handler(_unary_unary(handler.unary_unary, parse, method),
                                               response_serializer=serialize)


async def _decode(parse, raw: bytes, method: str, context):
    try:
        return parse(raw)
    except Exception:  # noqa: BLE001 - DecodeError, or whatever a parser raises on bad bytes
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                            f"the request to {method} is not a valid message ({len(raw)} bytes)")


async def _result(value):
    return await value if inspect.isawaitable(value) else value


async def _unimplemented(context, method: str):
    """A library servicer's stub for a method its proto gained (grpc_health's ``List``):
    UNIMPLEMENTED, as for an unknown method, without the traceback gRPC would log."""
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented")


def _unary_unary(inner, parse, method):
    async def unary_unary(raw, context):
        request = await _decode(parse, raw, method, context)
        try:
            return await _result(inner(request, context))
        except NotImplementedError:
            await _unimplemented(context, method)
    return unary_unary


def _unary_stream(inner, parse, method):
    async def unary_stream(raw, context):
        request = await _decode(parse, raw, method, context)
        try:
            async for item in _items(inner(request, context)):
                yield item
        except NotImplementedError:
            await _unimplemented(context, method)
    return unary_stream


def _stream_request(inner, parse, method, streaming_response: bool):
    async def requests(raw_requests, context):
        async for raw in raw_requests:
            yield await _decode(parse, raw, method, context)

    if streaming_response:
        async def stream_stream(raw_requests, context):
            async for item in _items(inner(requests(raw_requests, context), context)):
                yield item
        return stream_stream

    async def stream_unary(raw_requests, context):
        return await _result(inner(requests(raw_requests, context), context))
    return stream_unary


async def _items(result):
    """What a streaming handler produces: an async generator, a generator, or (when it
    writes with ``context.write``) an awaitable."""
    if inspect.isasyncgen(result):
        async for item in result:
            yield item
    elif inspect.isgenerator(result):
        for item in result:
            yield item
    else:
        await _result(result)
