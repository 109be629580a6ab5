"""BURSTS (argv[1]) bursts of N (argv[2]) simultaneous connects to test.Slow, each followed by
one call through what it got (the SDK's channel: a call that never reached the provider is
repeated once with a fresh grant). Prints "burst K" as each begins, then "ok=K failed=F
errors=[...]"; exits 0 only if every connect and call succeeded."""
import asyncio
import sys

import grpc

from component_manager import sdk

RESULT: list[int] = []


async def connect_and_call(ctx) -> str:
    try:
        channel = await ctx.connect("test.Slow", refresh=True)
    except grpc.aio.AioRpcError as e:
        return f"connect: {e.code().name}: {e.details()}"
    try:
        await channel.unary_unary("/test.Slow/Call")(b"x", timeout=60)
        return "OK"
    except grpc.aio.AioRpcError as e:
        return f"call: {e.code().name}: {e.details()}"


async def main(ctx: sdk.ComponentContext) -> None:
    bursts, n = int(sys.argv[1]), int(sys.argv[2])
    results = []
    for burst in range(bursts):
        print(f"burst {burst}", flush=True)
        results += await asyncio.gather(*(connect_and_call(ctx) for _ in range(n)))
    failed = [r for r in results if r != "OK"]
    print(f"ok={len(results) - len(failed)} failed={len(failed)} errors={sorted(set(failed))[:5]}", flush=True)
    RESULT.append(0 if not failed else 1)


if __name__ == "__main__":
    code = asyncio.run(sdk.run_async(main))
    raise SystemExit(code or (RESULT[0] if RESULT else 99))
