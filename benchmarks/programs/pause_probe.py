"""The client of the pause benchmark (``bench_govern.py``). Args: WORKDIR N.

N times: wait for the driver's file ``go-I`` in WORKDIR (the driver has paused the provider),
then ``ctx.connect("bench.Echo", refresh=True)``, which waits in the manager until the
driver resumes the provider; note the monotonic time the answer came (``perf_counter`` is
CLOCK_MONOTONIC: the driver's clock too). Prints one ``BENCH {json}`` line and exits 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from component_manager import sdk


async def main(ctx: sdk.ComponentContext) -> None:
    workdir, n = sys.argv[1], int(sys.argv[2])
    await ctx.connect("bench.Echo")  # the provider runs, and this client knows it
    answered = []
    for i in range(n):
        while not os.path.exists(os.path.join(workdir, f"go-{i}")):
            await asyncio.sleep(0.001)  # not timed: the driver paused the provider meanwhile
        await ctx.connect("bench.Echo", refresh=True)
        answered.append(time.perf_counter())
    print("BENCH " + json.dumps({"mode": "paused", "answered": answered}), flush=True)


if __name__ == "__main__":
    sdk.run(main)
