"""N (argv[1]) concurrent calls to test.Slow/Call through one SDK channel; prints
"ok=K failed=F errors=[...]" and exits 0 only if every call succeeded."""
import asyncio
import sys

import grpc

from component_manager import sdk

RESULT: list[int] = []


async def one(channel) -> str:
    try:
        await channel.unary_unary("/test.Slow/Call")(b"x", timeout=60)
        return "OK"
    except grpc.aio.AioRpcError as e:
        return f"{e.code().name}: {e.details()}"


async def main(ctx: sdk.ComponentContext) -> None:
    channel = await ctx.connect("test.Slow")
    results = await asyncio.gather(*(one(channel) for _ in range(int(sys.argv[1]))))
    failed = [r for r in results if r != "OK"]
    print(f"ok={len(results) - len(failed)} failed={len(failed)} errors={sorted(set(failed))[:5]}", flush=True)
    RESULT.append(0 if not failed else 1)


if __name__ == "__main__":
    code = asyncio.run(sdk.run_async(main))
    raise SystemExit(code or (RESULT[0] if RESULT else 99))
