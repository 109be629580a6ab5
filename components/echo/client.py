"""Calls echo.Echo/Echo once with b"hi", prints the reply, exits 0."""

from component_manager import sdk


async def main(ctx: sdk.ComponentContext) -> None:
    channel = await ctx.connect("echo.Echo")
    reply = await channel.unary_unary("/echo.Echo/Echo")(b"hi")
    print(reply.decode(), flush=True)


if __name__ == "__main__":
    sdk.run(main)
