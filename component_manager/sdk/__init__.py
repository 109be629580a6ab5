"""The component author's API: a running program's context, given by its manager.

Example (a whole component)::

    from component_manager import sdk

    async def echo(request: bytes, context) -> bytes:
        return b"hello: " + request

    async def main(ctx: sdk.ComponentContext):
        ctx.serve_unary("echo.Echo", "Echo", echo)   # raw bytes, no codegen needed
        ctx.on_stop(flush)                           # await flush(reason) on OnStop / idle
        db = ctx.storage("data")                     # lmdb.Environment of this instance
        cfg = await ctx.config()                     # read-only mapping
        await ctx.serving()                          # serve, then tell the manager
        await ctx.wait_for_stop()                    # after OnStop or an accepted idle stop

    sdk.run(main)                                    # exits 0, or 1 if main raised

Clients: ``channel = await ctx.connect("echo.Echo")`` gives a channel (used like a
``grpc.aio.Channel``: stubs, ``unary_unary``, ...) that sends the manager's grant on every
call; channels to one provider share one connection, and a unary call whose grant went stale
(the provider stopped or restarted) gets a new grant and is repeated once. Calls that arrive
without a valid grant for the called service are refused with PERMISSION_DENIED before any
handler runs. Inside a handler, ``sdk.current_client()`` is the caller's moniker.
"""

from __future__ import annotations

from ._context import ComponentContext, run, run_async
from ..grant_guard import current_client

__all__ = ["ComponentContext", "current_client", "run", "run_async"]
