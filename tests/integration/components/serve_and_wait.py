"""Serves every protocol its manifest declares (raw-bytes echo) until it is told to stop;
with an argument, only after sleeping that many seconds (a slow start)."""
import asyncio
import sys

from component_manager import sdk


async def echo(request: bytes, context) -> bytes:
    return request


async def main(ctx: sdk.ComponentContext) -> None:
    if sys.argv[1:]:
        await asyncio.sleep(float(sys.argv[1]))
    for protocol in ctx.startup.protocols:
        ctx.serve_unary(protocol, "Echo", echo)
    await ctx.serving()
    await ctx.wait_for_stop()


if __name__ == "__main__":
    sdk.run(main)
