"""Connects to test.Deep and calls it once; prints the answer or the manager's error."""
import sys

import grpc

from component_manager import sdk


async def main(ctx: sdk.ComponentContext) -> None:
    try:
        channel = await ctx.connect("test.Deep")
        reply = await channel.unary_unary("/test.Deep/Echo")(b"ping")
    except grpc.RpcError as e:
        print(f"connect failed: {e.details()}", flush=True)
        sys.exit(3)
    print(f"answer: {reply.decode()}", flush=True)


if __name__ == "__main__":
    sdk.run(main)
