"""N concurrent ComponentRuntime.Connect calls for test.X (raw, with this run's token: the
SDK would cache one channel), then one call through each answer. Prints how many calls
succeeded; exits 0 only if all N did."""
import asyncio
import sys

from attempts import call, runtime_connect
from component_manager import sdk


async def main(ctx: sdk.ComponentContext) -> None:
    n = int(sys.argv[1])
    info = ctx.startup
    answers = await asyncio.gather(*(runtime_connect(info.component_address, info.token, "test.X")
                                     for _ in range(n)))
    connected = [reply for reply, seen in answers if reply is not None]
    errors = sorted({seen for reply, seen in answers if reply is None})
    results = await asyncio.gather(*(call(r.address, "/test.X/Echo", r.grant) for r in connected))
    succeeded = sum(result == "OK" for result in results)
    print(f"connects={len(connected)}/{n} calls_ok={succeeded}/{n} errors={errors}", flush=True)
    RESULT.append(0 if succeeded == n else 1)


RESULT: list[int] = []

if __name__ == "__main__":
    code = asyncio.run(sdk.run_async(main))
    raise SystemExit(code or (RESULT[0] if RESULT else 99))
