"""Calls flaky.Echo once and exits 0 if the answer came back."""
from component_manager import sdk


async def main(ctx: sdk.ComponentContext) -> None:
    channel = await ctx.connect("flaky.Echo")
    reply = await channel.unary_unary("/flaky.Echo/Echo")(b"still there?")
    print(f"reply: {reply.decode()}", flush=True)


if __name__ == "__main__":
    sdk.run(main)
