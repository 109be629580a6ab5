"""An ``inproc`` program that does nothing until it is cancelled (stopped): the cheapest
running instance, for the ordered-shutdown tree."""

import asyncio


async def idle(startup) -> None:
    await asyncio.Event().wait()
