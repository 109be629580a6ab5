"""Serves sick.Sick; after argv[1] seconds it tells its health service NOT_SERVING."""
import asyncio
import sys

from component_manager import sdk


async def echo(request: bytes, context) -> bytes:
    return request


async def main(ctx: sdk.ComponentContext) -> None:
    ctx.serve_unary("sick.Sick", "Echo", echo)
    await ctx.serving()
    try:
        await asyncio.wait_for(ctx.wait_for_stop(), float(sys.argv[1]))
    except TimeoutError:
        await ctx.set_health(False)
        await ctx.wait_for_stop()


if __name__ == "__main__":
    sdk.run(main)
