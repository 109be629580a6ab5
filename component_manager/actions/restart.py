"""Restart: stop (reason ``requested``) then start again (start reason ``restarted by
request``), as one request. A restart of a stopped instance just starts it."""

from __future__ import annotations

from ..model.reasons import START_RESTARTED, StopReason, StopRecord
from .context import ActionContext
from .start import start
from .stop import stop

__all__ = ["restart"]


async def restart(ctx: ActionContext, inst) -> StopRecord | None:
    """The record of the stop (None if it was not running). Raises what start raises."""
    record = await stop(ctx, inst, StopReason.REQUESTED)
    await start(ctx, inst, START_RESTARTED)
    return record
