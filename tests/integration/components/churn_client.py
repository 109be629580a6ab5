"""BURSTS (argv[1]) bursts of N (argv[2]) simultaneous connects to test.Slow, each followed by
one call through what it got (the SDK's channel: a call that never reached the provider is
repeated once with a fresh grant). Prints "burst K" as each begins, then "ok=K failed=F
errors=[...]"; exits 0 only if every connect and call succeeded."""
import asyncio
import sys

import grpc
from slow_calls import call, exit_code, report

from component_manager import sdk


async def connect_and_call(ctx) -> str:
    try:
        channel = await ctx.connect("test.Slow", refresh=True)
    except grpc.aio.AioRpcError as e:
        return f"connect: {e.code().name}: {e.details()}"
    outcome = await call(channel)
    return outcome if outcome == "OK" else f"call: {outcome}"


async def main(ctx: sdk.ComponentContext) -> None:
    bursts, n = int(sys.argv[1]), int(sys.argv[2])
    results = []
    for burst in range(bursts):
        print(f"burst {burst}", flush=True)
        results += await asyncio.gather(*(connect_and_call(ctx) for _ in range(n)))
    report(results)


if __name__ == "__main__":
    raise SystemExit(exit_code(asyncio.run(sdk.run_async(main))))
