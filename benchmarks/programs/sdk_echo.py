"""The provider: serves bench.Echo/Echo (raw bytes, returns the request) through the SDK,
so every call passes the grant-checking interceptor. No storage, no config: the smallest
SDK server, for the lazy-start, warm-connect and call-overhead figures."""

from component_manager import sdk


async def echo(request: bytes, context) -> bytes:
    return request


async def main(ctx: sdk.ComponentContext) -> None:
    ctx.serve_unary("bench.Echo", "Echo", echo)
    await ctx.serving()
    await ctx.wait_for_stop()


if __name__ == "__main__":
    sdk.run(main)
