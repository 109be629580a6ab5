"""Remove: the second half of destroy, for an instance already shut down. Its children are
removed (in parallel, each through its own action set), its storage areas, storage snapshot
and log are deleted, and its records go with its ``destroyed`` event in one durable commit.

Intent before effect: a tombstone is committed first. A manager killed after it (with the
storage half deleted, or not yet) finishes the destroy when it boots (``actions/boot.py``):
an instance is never listed without its storage.

``destroy.py`` runs shutdown and then this; a shutdown runs it for its transient children,
which end with their parent.
"""

from __future__ import annotations

import asyncio
import logging
import shutil

from ..faults import crash_point
from ..model.action_set import ActionKind
from ..model.states import State, transition
from ..runners import get_runner
from .context import ActionContext

log = logging.getLogger("component_manager.actions")

__all__ = ["remove", "remove_all", "remove_now", "remove_transient_children"]


async def remove(ctx: ActionContext, inst) -> None:
    """Remove a shut-down ``inst`` as the action destroy (joining a destroy in flight)."""
    await inst.actions.register(ActionKind.DESTROY, lambda: remove_now(ctx, inst))


async def remove_all(ctx: ActionContext, instances) -> None:
    """Remove each of ``instances`` in parallel; raise the first failure once all ended."""
    results = await asyncio.gather(*(remove(ctx, c) for c in instances), return_exceptions=True)
    failed = next((r for r in results if isinstance(r, BaseException)), None)
    if failed is not None:
        raise failed


async def remove_transient_children(ctx: ActionContext, inst) -> None:
    """Remove the shut-down children of ``inst`` in transient collections; a failure is
    logged, not raised: the parent's shutdown has happened all the same."""
    try:
        await remove_all(ctx, inst.transient_children())
    except Exception as e:  # noqa: BLE001 - logged; the rest were removed
        log.warning("removing the transient children of %s: %s", inst.moniker, e)


async def remove_now(ctx: ActionContext, inst) -> None:
    """The body: for a caller that already holds the instance's destroy action."""
    if inst.state is State.DESTROYED:
        return
    await ctx.bury(inst)  # intent before effect: a tombstone, then the storage goes
    crash_point("destroy.tombstone")
    await remove_all(ctx, list(inst.children.values()))
    ctx.areas.delete(inst.instance_id)
    get_runner("ray").forget_areas(inst.instance_id)  # its copies on Ray nodes, where reachable
    if ctx.snapshots.info(inst.instance_id) is not None:  # one LMDB read; the commit only for the few
        ctx.snapshots.delete(inst.instance_id)
    ctx.log_path(inst).unlink(missing_ok=True)
    shutil.rmtree(ctx.socket_path(inst).parent, ignore_errors=True)  # its own folder (TMPDIR)
    crash_point("destroy.deleted")
    transition(inst, State.DESTROYED)  # shutdown -> destroyed
    await ctx.remove(inst)
