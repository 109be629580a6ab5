"""Healthy for a while (config ``healthy_for_ms``), then tells its health service
NOT_SERVING (``ctx.set_health(False)``) and keeps running: only the probe notices."""

import asyncio

from component_manager import sdk


async def echo(request: bytes, context) -> bytes:
    return request


async def main(ctx: sdk.ComponentContext) -> None:
    ctx.serve_unary("demo.Unhealthy", "Echo", echo)
    await ctx.serving()
    healthy_for = (await ctx.config())["healthy_for_ms"] / 1000
    try:
        await asyncio.wait_for(ctx.wait_for_stop(), healthy_for)
        return
    except TimeoutError:
        print(f"healthy for {healthy_for:g}s; now reporting NOT_SERVING", flush=True)
        await ctx.set_health(False)
    await ctx.wait_for_stop()


if __name__ == "__main__":
    sdk.run(main)
