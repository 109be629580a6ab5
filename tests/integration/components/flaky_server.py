"""Serves flaky.Echo; on its first run (no marker file yet, argv[1]) it crashes (SIGSEGV)
0.2 s after it is serving. Later runs serve until stopped."""
import asyncio
import os
import signal
import sys
from pathlib import Path

from component_manager import sdk


async def echo(request: bytes, context) -> bytes:
    return request


async def main(ctx: sdk.ComponentContext) -> None:
    ctx.serve_unary("flaky.Echo", "Echo", echo)
    await ctx.serving()
    marker = Path(sys.argv[1])
    if not marker.exists():
        marker.touch()
        await asyncio.sleep(0.2)
        os.kill(os.getpid(), signal.SIGSEGV)
    await ctx.wait_for_stop()


if __name__ == "__main__":
    sdk.run(main)
