"""Serves test.Slow/Call: each call sleeps DELAY seconds (argv[1]) before it answers; prints
"busy" once BUSY (argv[2], optional) calls are in its handler at once, and handled=N (calls
its handler ran) as it exits."""
import asyncio
import atexit
import sys

from component_manager import sdk

HANDLED = [0]


async def main(ctx: sdk.ComponentContext) -> None:
    delay = float(sys.argv[1])
    busy = int(sys.argv[2]) if sys.argv[2:] else 0
    in_handler = [0]

    async def slow(request: bytes, context) -> bytes:
        HANDLED[0] += 1
        in_handler[0] += 1
        if in_handler[0] == busy:
            print("busy", flush=True)
        try:
            await asyncio.sleep(delay)
        finally:
            in_handler[0] -= 1
        return request

    ctx.serve_unary("test.Slow", "Call", slow)
    await ctx.serving()
    await ctx.wait_for_stop()


if __name__ == "__main__":
    atexit.register(lambda: print(f"handled={HANDLED[0]}", flush=True))
    sdk.run(main)
