"""One served call, start to end, for the python runner's zygote (``runners/zygote.py``).

What a typical program does first: serve a protocol through the SDK (grant check, health
service, the startup socket's ``serving``) and call one, on a new channel. The zygote runs
this once, before it forks anything, so that gRPC's and abseil's once-per-process work is
inherited, and learns which of its pages such a start writes."""

from __future__ import annotations

import socket

from .. import grants
from ..runners.startup import StartupInfo
from ._client import grant_channel
from ._context import ComponentContext

__all__ = ["warm_up"]

_SERVICE = "component_manager.WarmUp"


async def _echo(request: bytes, context) -> bytes:
    return request


async def warm_up(address: str) -> None:
    """Serve ``_SERVICE`` on ``address`` and call it once; stop both. Raises grpc.RpcError."""
    key = grants.new_key()
    ours, theirs = socket.socketpair()
    with ours:
        startup = StartupInfo(moniker="<zygote warm-up>", instance_id="", component_address="",
                              token="", serve_address=address, grant_key=key.hex(),
                              protocols=(_SERVICE,), ready="serving")
        ctx = ComponentContext(startup, startup_fd=theirs.detach())
        try:
            ctx.serve_unary(_SERVICE, "Echo", _echo)
            await ctx.serving()
            async with grant_channel(address, grants.issue(key, "<zygote>", _SERVICE)) as channel:
                await channel.unary_unary(f"/{_SERVICE}/Echo")(b"")
        finally:
            await ctx.aclose()
