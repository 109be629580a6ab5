"""N (argv[1]) concurrent calls to test.Slow/Call through one SDK channel; prints
"ok=K failed=F errors=[...]" and exits 0 only if every call succeeded."""
import asyncio
import sys

from slow_calls import call, exit_code, report

from component_manager import sdk


async def main(ctx: sdk.ComponentContext) -> None:
    channel = await ctx.connect("test.Slow")
    report(await asyncio.gather(*(call(channel) for _ in range(int(sys.argv[1])))))


if __name__ == "__main__":
    raise SystemExit(exit_code(asyncio.run(sdk.run_async(main))))
