"""Serves every protocol its manifest declares (raw-bytes echo) until it is told to stop."""
from component_manager import sdk


async def echo(request: bytes, context) -> bytes:
    return request


async def main(ctx: sdk.ComponentContext) -> None:
    for protocol in ctx.startup.protocols:
        ctx.serve_unary(protocol, "Echo", echo)
    await ctx.serving()
    await ctx.wait_for_stop()


if __name__ == "__main__":
    sdk.run(main)
