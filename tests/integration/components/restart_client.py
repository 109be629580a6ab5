"""Gets a grant for test.X, then (on SIGUSR1, after the test stopped the provider) connects
again, which starts the provider anew, and tries the OLD grant on the new run."""
import asyncio
import signal

from attempts import call, report, runtime_connect
from component_manager import sdk


async def main(ctx: sdk.ComponentContext) -> None:
    info = ctx.startup
    go_on = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, go_on.set)
    old, seen = await runtime_connect(info.component_address, info.token, "test.X")
    print("first run: " + await call(old.address, "/test.X/Echo", old.grant), flush=True)
    await ctx.serving()  # `cm start` returns now: the old grant is in hand
    await go_on.wait()
    new, seen = await runtime_connect(info.component_address, info.token, "test.X")
    print("second run, new grant: " + await call(new.address, "/test.X/Echo", new.grant), flush=True)
    refused = report("grant_of_earlier_run", await call(new.address, "/test.X/Echo", old.grant))
    RESULT.append(0 if refused else 1)


RESULT: list[int] = []

if __name__ == "__main__":
    code = asyncio.run(sdk.run_async(main))
    raise SystemExit(code or (RESULT[0] if RESULT else 99))
