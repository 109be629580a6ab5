"""Counts its starts in storage; on every second start it crashes (SIGSEGV) 0.3 s after it
is serving, so its restart policy has something to do."""

import asyncio
import os
import signal

from component_manager import sdk


async def main(ctx: sdk.ComponentContext) -> None:
    with ctx.storage("data").begin(write=True) as txn:
        start = int(txn.get(b"starts", b"0")) + 1
        txn.put(b"starts", str(start).encode())
    crash = start % 2 == 0
    print(f"start {start}: {'will crash' if crash else 'running'}", flush=True)
    await ctx.serving()
    if crash:
        await asyncio.sleep(0.3)
        os.kill(os.getpid(), signal.SIGSEGV)
    await ctx.wait_for_stop()


if __name__ == "__main__":
    sdk.run(main)
