"""Storage: delete an instance's areas (``cm storage delete``), keep a snapshot of them
(``cm storage snapshot``), put them back from it (``cm storage restore``). The instance
keeps its identity throughout.

The manager keeps one snapshot per instance (``storage/snapshots.py``): the last one taken,
here or, for an instance on another node, when it stopped there. Deleting the storage
deletes the snapshot too: what was deleted does not come back on the next start elsewhere.

Example: ``cm storage snapshot /counter`` (running or not: a read transaction), later
``cm stop /counter; cm storage restore /counter`` puts every key back as it was.
"""

from __future__ import annotations

import asyncio

from ..errors import InvalidRequest, StorageError
from ..model.action_set import ActionKind
from ..model.states import State
from ..storage.snapshots import SnapshotError, SnapshotInfo, pack_areas, unpack_areas
from ..runners import get_runner
from .context import ActionContext
from .start import placed_program

__all__ = ["LOCAL_NODE", "delete_storage", "restore_storage", "snapshot_storage"]

LOCAL_NODE = "local"  # the node of a snapshot taken on the manager's own host


async def delete_storage(ctx: ActionContext, inst, names: list[str]) -> None:
    """Delete ``inst``'s storage areas and its snapshot; ``names`` (the areas it uses) go in
    the event.

    Raises InvalidRequest while it runs or starts, or its storage is being copied."""
    # No await from the check to the delete: a start cannot slip in between.
    _refuse_while_running(inst, "deleting its storage")
    _refuse_while_copying(inst)
    if ctx.snapshots.info(inst.instance_id) is not None:  # one LMDB read; the commit only for the few
        ctx.snapshots.delete(inst.instance_id)  # the record first, then the file
    ctx.areas.delete(inst.instance_id)
    get_runner("ray").forget_areas(inst.instance_id)  # its copies on Ray nodes, where reachable
    await ctx.events.record("storage_deleted", inst, detail=", ".join(names))


async def snapshot_storage(ctx: ActionContext, inst, names: list[str]) -> tuple[SnapshotInfo, list[str]]:
    """Keep a compacted copy of ``inst``'s areas among ``names`` (those that exist) as its
    snapshot, replacing the last one; return it and the areas it holds. A running program
    goes on meanwhile: the copy is its last commit.

    Raises InvalidRequest (no area yet, being shut down), StorageError (an area cannot be read)."""
    _refuse_while_ending(inst)
    _refuse_on_ray(ctx, inst)
    return await inst.actions.register(ActionKind.SNAPSHOT, lambda: _snapshot(ctx, inst, names))


async def _snapshot(ctx: ActionContext, inst, names: list[str]) -> tuple[SnapshotInfo, list[str]]:
    paths = {n: ctx.areas.path_for(inst.instance_id, n) for n in names}
    areas = {n: p for n, p in paths.items() if (p / "data.mdb").is_file()}
    if not areas:
        what = "uses no storage" if not names else "has no storage area yet (it never started)"
        raise InvalidRequest(inst.moniker_text, f"{what}: nothing to snapshot")

    def pack_and_keep() -> SnapshotInfo:
        return ctx.snapshots.put(inst.instance_id, pack_areas(areas), LOCAL_NODE)

    info = await _off_loop(inst, list(areas), pack_and_keep)
    await ctx.events.record("storage_snapshotted", inst, detail=f"{', '.join(areas)}: {info.size} bytes")
    return info, sorted(areas)


async def restore_storage(ctx: ActionContext, inst, names: list[str]) -> tuple[SnapshotInfo, list[str]]:
    """Put ``inst``'s areas among ``names`` back as its snapshot has them (each area whole:
    the old one stays until the new one is complete); return the snapshot and the areas
    restored. Areas the snapshot lacks are left as they are.

    Raises InvalidRequest (it runs or starts, it has no snapshot), StorageError (the kept
    snapshot fails its checksum: nothing is written)."""
    # No await from the checks to the registration: a start registered later waits for it.
    _refuse_while_running(inst, "restoring its storage")
    _refuse_while_ending(inst)
    _refuse_on_ray(ctx, inst)
    if ctx.snapshots.info(inst.instance_id) is None:
        raise InvalidRequest(inst.moniker_text, "has no storage snapshot: take one with `cm storage snapshot`")
    return await inst.actions.register(ActionKind.RESTORE, lambda: _restore(ctx, inst, names))


async def _restore(ctx: ActionContext, inst, names: list[str]) -> tuple[SnapshotInfo, list[str]]:
    dest = {n: ctx.areas.path_for(inst.instance_id, n) for n in names}

    def fetch_and_unpack() -> tuple[SnapshotInfo, list[str]]:
        kept = ctx.snapshots.get(inst.instance_id)
        if kept is None:
            raise InvalidRequest(inst.moniker_text, "has no storage snapshot (deleted meanwhile)")
        info, blob = kept
        return info, unpack_areas(blob, dest)

    info, restored = await _off_loop(inst, names, fetch_and_unpack)
    await ctx.events.record("storage_restored", inst,
                            detail=f"{', '.join(restored) or 'no area'} from {info.node}")
    return info, restored


async def _off_loop(inst, names: list[str], work):
    """Run ``work`` in a thread (it reads, writes and fsyncs megabytes); its SnapshotError
    becomes a StorageError of the instance."""
    try:
        return await asyncio.to_thread(work)
    except SnapshotError as e:
        raise StorageError(inst.moniker_text, ", ".join(names), str(e)) from None


def _refuse_while_running(inst, doing: str) -> None:
    if inst.run is not None or inst.actions.in_flight(ActionKind.START):
        raise InvalidRequest(inst.moniker_text, f"is running; stop it before {doing}")


def _refuse_on_ray(ctx: ActionContext, inst) -> None:
    """Its areas live on a Ray node, and the runner snapshots them at each stop: a copy of
    this host's empty area would be taken for its data."""
    if inst.decl is not None and inst.decl.program is not None and placed_program(ctx, inst).runner == "ray":
        raise InvalidRequest(inst.moniker_text, "runs on Ray: its storage is on its node, snapshotted at each "
                                                "stop and restored on another node by the ray runner (docs/scale-out.md)")


def _refuse_while_copying(inst) -> None:
    if inst.actions.in_flight(ActionKind.SNAPSHOT) or inst.actions.in_flight(ActionKind.RESTORE):
        raise InvalidRequest(inst.moniker_text, "its storage is being snapshotted or restored; try again")


def _refuse_while_ending(inst) -> None:
    """A shutdown or destroy in flight would delete the storage under the copy."""
    ending = inst.actions.in_flight(ActionKind.SHUTDOWN) or inst.actions.in_flight(ActionKind.DESTROY)
    if ending or inst.state in (State.SHUTDOWN, State.DESTROYED):
        raise InvalidRequest(inst.moniker_text, "is being shut down or destroyed")
