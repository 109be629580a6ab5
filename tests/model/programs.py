"""In-process programs for the model tier (runner ``inproc``)."""

import asyncio


async def run_forever(startup) -> None:
    await asyncio.Event().wait()


async def fail_fast(startup) -> None:
    raise RuntimeError("fails on purpose")

