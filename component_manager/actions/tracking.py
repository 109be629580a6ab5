"""Where a program's processes are tracked: its instance's cgroup (``runners/cgroups.py``),
when the manager has cgroups. Joined while the program is held (before it runs, so that
everything it forks is in it too), emptied and removed once the program has ended: nothing
a program leaves behind (a daemonized child, a new session) outlives its stop.
"""

from __future__ import annotations

import asyncio
import logging

from .context import ActionContext

log = logging.getLogger("component_manager.actions")

__all__ = ["clear", "join"]


def join(ctx: ActionContext, inst, program) -> str:
    """Put the held ``program`` in ``inst``'s cgroup; its path, or "" without one."""
    groups = ctx.cgroups
    if groups is None or not program.pid:
        return ""
    try:
        path = groups.create(inst.instance_id)
        groups.add(inst.instance_id, program.pid)
    except OSError as e:
        log.warning("%s: cannot use cgroup (%s); found by its process identity instead", inst.moniker, e)
        return ""
    return str(path)


async def clear(ctx: ActionContext, inst) -> None:
    """Kill what is left in ``inst``'s cgroup (its program has ended) and remove it."""
    groups = ctx.cgroups
    if groups is None:
        return
    key = inst.instance_id
    if groups.pids(key):
        killed = await asyncio.to_thread(groups.kill_all, key)
        log.info("%s: killed %d process(es) its program left behind", inst.moniker, killed)
    groups.remove(key)
