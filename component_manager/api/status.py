"""The one mapping from the error tree to gRPC status codes.

Servicer methods are wrapped with ``@reports_errors``: a CmError becomes a status with its
code from CODES, its one-line message, and its class name in trailing metadata
``cm-error``. Anything else is a bug: it is logged with its traceback and answered as
INTERNAL with one line, and the manager keeps serving.
"""

from __future__ import annotations

import functools
import inspect
import logging

import grpc

from .. import errors as e

log = logging.getLogger("component_manager.api")

__all__ = ["CODES", "bounded", "code_for", "reports_errors"]

C = grpc.StatusCode
CODES: dict[type, grpc.StatusCode] = {
    e.InstanceNotFound: C.NOT_FOUND,
    e.CollectionNotFound: C.NOT_FOUND,
    e.MonikerError: C.INVALID_ARGUMENT,
    e.UrlError: C.INVALID_ARGUMENT,
    e.ManifestError: C.INVALID_ARGUMENT,
    e.InvalidArgument: C.INVALID_ARGUMENT,
    e.UsageError: C.INVALID_ARGUMENT,  # client side (cm's exit 2), coded as its parent
    e.CompiledManifestError: C.INVALID_ARGUMENT,
    e.InstanceAlreadyExists: C.ALREADY_EXISTS,
    e.InvalidTransition: C.FAILED_PRECONDITION,
    e.InvalidRequest: C.FAILED_PRECONDITION,
    e.StartError: C.FAILED_PRECONDITION,
    e.StartAborted: C.ABORTED,  # nothing failed: try again
    e.LimitNotEnforceable: C.FAILED_PRECONDITION,
    e.ResourceExhausted: C.RESOURCE_EXHAUSTED,
    e.ConfigError: C.FAILED_PRECONDITION,
    e.RouteError: C.FAILED_PRECONDITION,
    e.DependencyCycle: C.FAILED_PRECONDITION,  # the manifests' strong dependencies form a cycle
    e.StorageError: C.INTERNAL,
    e.AccessDenied: C.PERMISSION_DENIED,
    # Never answered by the manager, coded so that the table covers the whole tree: the
    # daemon raises ManagerAlreadyRunning before it serves, and ManagerNotRunning is what a
    # client makes of UNAVAILABLE.
    e.ManagerAlreadyRunning: C.ALREADY_EXISTS,
    e.RootMismatch: C.FAILED_PRECONDITION,
    e.RayUnavailable: C.FAILED_PRECONDITION,
    e.ManagerNotRunning: C.UNAVAILABLE,
}


def code_for(error: Exception) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in CODES:
            return CODES[cls]
    return C.INTERNAL


MAX_MESSAGE = 1000  # an error quotes what it was given: a 1 MB moniker is not sent back whole


def bounded(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "..."


async def _abort(context, error: Exception):
    if isinstance(error, e.CmError):
        context.set_trailing_metadata((("cm-error", type(error).__name__),))
        await context.abort(code_for(error), bounded(str(error)))
    log.exception("internal error", exc_info=error)
    await context.abort(C.INTERNAL, bounded(f"internal error: {type(error).__name__}: {error}"))


def reports_errors(method):
    """Wrap a unary or server-streaming aio servicer method with the status mapping."""
    if inspect.isasyncgenfunction(method):
        @functools.wraps(method)
        async def stream(self, request, context):
            try:
                async for item in method(self, request, context):
                    yield item
            except Exception as error:  # noqa: BLE001 - mapped, never leaked as a traceback
                await _abort(context, error)
        return stream

    @functools.wraps(method)
    async def unary(self, request, context):
        try:
            return await method(self, request, context)
        except Exception as error:  # noqa: BLE001 - mapped, never leaked as a traceback
            await _abort(context, error)
    return unary
