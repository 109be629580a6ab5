"""Where a program's processes are tracked: its instance's cgroup (``runners/cgroups.py``,
the one ``runners/limits.py`` uses for a limited program; for one without limits, the same
folder in one controller alone, ``Hierarchy.tracking``), when the manager has cgroups.
Joined while the program is held (before it runs, so that everything it forks is in it
too), emptied and removed once the program has ended: nothing a program leaves behind (a
daemonized child, a new session) outlives its stop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import time

from .context import ActionContext

log = logging.getLogger("component_manager.actions")

__all__ = ["clear", "empty", "group_name", "group_of", "join", "join_off_loop", "remove"]

EMPTY_TIMEOUT_S = 5.0


def group_name(instance_id: str) -> str:
    """The cgroup folder's name: the id's first 16 characters, as ``limits.py`` names it."""
    return instance_id[:16]


def group_of(ctx: ActionContext, instance_id: str):
    """The cgroup of ``instance_id`` (it may not exist), or None without cgroups."""
    hier = ctx.cgroups
    if hier is None:
        return None
    name = group_name(instance_id)
    return hier.group_class({c: folder / name for c, folder in _tag_folders(hier, ctx.cgroup_tag).items()})


@functools.cache
def _tag_folders(hier, tag: str) -> dict:
    """controller -> this manager's folder of cgroups in it (made once: a stop asks each time)."""
    return {c: base / f"cm-{tag}" for c, base in hier.bases.items()}


def _local_pid(program) -> int:
    """The program's pid on this host; 0 for one in-process or on another host (a Ray node:
    its pid is that node's)."""
    return 0 if getattr(program, "node", "") else program.pid


def join(ctx: ActionContext, inst, program) -> str:
    """Put the held ``program`` in ``inst``'s cgroup; its folder, or "" without one."""
    hier = ctx.cgroups
    if hier is None or not _local_pid(program):
        return ""
    limits = getattr(program, "limits", None)
    if limits is not None and getattr(limits, "group", None) is not None:
        return str(next(iter(limits.group.dirs.values())))  # in its limits' cgroup already
    try:
        controllers = (hier.tracking,) if hier.tracking else None
        group = hier.make_group(group_name(inst.instance_id), ctx.cgroup_tag, controllers)
        for path in group.procs_paths:
            with open(path, "w") as f:
                f.write(str(program.pid))
    except OSError as e:
        log.warning("%s: cannot use a cgroup (%s); found by its process identity instead", inst.moniker, e)
        return ""
    return str(next(iter(group.dirs.values())))


async def join_off_loop(ctx: ActionContext, inst, program) -> str:
    """``join``, in a worker thread: its cgroup writes take 0.2-2 ms each (longer while
    other threads fork), and many starts at once would stall the event loop on them. An
    aborted start still waits for it, so that its clean-up finds the group it made."""
    if ctx.cgroups is None or not _local_pid(program):
        return ""
    joining = asyncio.ensure_future(asyncio.to_thread(join, ctx, inst, program))
    try:
        return await asyncio.shield(joining)
    except asyncio.CancelledError:
        await asyncio.wait([joining])
        raise


async def clear(ctx: ActionContext, inst) -> None:
    """Kill what is left in ``inst``'s cgroup (its program has ended) and remove it; in a
    worker thread (a dozen cgroup file operations, off the event loop)."""
    group = group_of(ctx, inst.instance_id)
    if group is None:
        return
    killed = await asyncio.to_thread(_clear, group, ctx.cgroups.tracking)
    if killed:
        log.info("%s: killed %d process(es) its program left behind", inst.moniker, killed)


def _clear(group, tracking: str) -> int:
    """Whatever its program left is in the tracking controller's folder: a program without
    limits joined that one, one with limits all of them."""
    killed = empty(group) if group.pids(tracking) else 0
    remove(group)
    return killed


def empty(group, timeout: float = EMPTY_TIMEOUT_S) -> int:
    """SIGKILL everything in ``group`` until it is empty (one may fork meanwhile) or
    ``timeout``; how many were signalled."""
    group.thaw()  # a frozen task cannot die
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    delay = 0.001
    while (pids := group.pids()) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return len(killed)


def remove(group) -> None:
    try:
        group.remove()
    except OSError as e:
        log.warning("removing cgroup %s: %s", next(iter(group.dirs.values())), e)
