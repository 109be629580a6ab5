"""Recovery, at boot: finish what a dead manager left half done, adopt what it left running.

- **Interrupted destroys.** Every tombstone (``remove.py`` commits one before deleting
  anything) is finished: the instance's subtree loses its storage, logs and records.
- **Programs.** Every program of this manager is found by something it cannot miss: its
  instance's cgroup where the manager has cgroups, and in every case its process record,
  committed before the program was allowed to run (``start.py``), whose identity (pid,
  start time, boot id) names the process, and whose group and session name what it spawned;
  and the mark in the environment of every program and all it executes (``procinfo.marked``).
  A recorded program that was released and still runs, of an instance that still exists
  and resolves, is **adopted**: same pid, same token, grant key and serve address (kept in the record), so
  its clients are undisturbed; its end is watched by pidfd and recorded like any other.
  Everything else is killed (its whole group, session and cgroup) and its stop recorded:
  a program without a record, of a destroyed instance, or of an older record format.
  There is never a second copy: a start after recovery finds the instance started.
- **Programs on Ray nodes** (the record names their actor) are never adopted: their actor
  was owned by the dead manager and dies with it; recovery makes sure (ends the actor by
  name and waits for its end, kills the keeper's group where it is on this host) and records
  a ``system_shutdown`` stop.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..model.instance import Run
from ..model.reasons import Disposition, StopReason, StopRecord
from ..model.states import State, transition
from ..runners import procinfo
from ..runners.adopted import AdoptedProgram
from ..runners.base import ProcessIdentity
from . import tracking
from .context import ActionContext
from .resolve import resolve
from .start import watch_exit

log = logging.getLogger("component_manager.actions")

__all__ = ["finish_destroys", "recover_processes"]


def finish_destroys(ctx: ActionContext) -> None:
    """Finish every destroy whose tombstone is committed (before the tree is built)."""
    tombstones = ctx.store.tombstones()
    if not tombstones:
        return
    records = {r.moniker: r for r in ctx.store.all_instances()}
    for moniker in tombstones:
        log.warning("finishing the destroy of %s, interrupted by a manager that died", moniker)
        ctx.forget_subtree(moniker, records)


def recover_processes(ctx: ActionContext, records: dict) -> None:
    """Adopt or stop every program a dead manager left (after the tree is built from
    ``records``, the stored instance records by moniker)."""
    adopted: set[str] = set()
    for record in list(ctx.store.all_processes()):
        identity = ProcessIdentity(record.pid, record.pgid, record.start_ticks, record.boot_id)
        inst = ctx.index.get(record.moniker)
        if inst is not None and inst.instance_id != record.instance_id:
            inst = None
        remote = bool(record.run and record.run.get("actor"))  # on a Ray node: never adopted
        if not remote and inst is not None and _resolvable(ctx, inst, records) \
                and _adopt(ctx, inst, record, identity):
            adopted.add(record.instance_id)
            continue
        killed = procinfo.kill_group(identity) + _kill_cgroup(ctx, record.instance_id)
        if remote:
            killed += _end_ray_actor(record.run["actor"])
        if inst is not None and (killed or remote):
            run_time = max(0.0, time.time() - record.started_at)
            detail = ("its manager died; its Ray actor ended with it, never adopted" if remote else
                      "left running by a manager that died; not adoptable, stopped")
            stop = StopRecord(StopReason.SYSTEM_SHUTDOWN, Disposition.KILLED, None, 9, run_time,
                              time.time(), detail)
            ctx.record_stop_now(inst, stop)
        else:
            ctx.store.delete_process(record.instance_id)
        if killed:
            log.warning("recovered %s: killed %d process(es) left by a dead manager", record.moniker, killed)
    _sweep_cgroups(ctx, adopted)
    _sweep_marked(ctx, adopted)


def _resolvable(ctx: ActionContext, inst, records: dict) -> bool:
    """Resolve ``inst`` if boot left it unresolved (a dynamic child resolves on first use);
    False if it cannot be."""
    if inst.decl is None:
        try:
            resolve(ctx, inst, records)
        except Exception as e:  # noqa: BLE001 - reported; its program is stopped instead
            log.warning("cannot resolve %s to adopt its program: %s", inst.moniker, e)
            return False
    return True


def _adopt(ctx: ActionContext, inst, record, identity: ProcessIdentity) -> bool:
    """Take over a program that still runs; False if it cannot be (then it is stopped)."""
    info = record.run
    decl = inst.decl
    if not info or not info.get("released") or inst.state is not State.RESOLVED \
            or decl is None or decl.program is None:
        return False  # not released: it is held, and exits on its own as its manager is gone
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False  # no event loop to watch it from (a model built outside the manager)
    program = AdoptedProgram.adopt(identity)
    if program is None:
        return False
    run = Run(token=info["token"], grant_key=bytes.fromhex(info["grant_key"]),
              serve_address=info["serve_address"], start_reason=info["reason"],
              started_at=record.started_at,
              started_monotonic=time.monotonic() - max(0.0, time.time() - record.started_at))
    run.config = dict(info.get("config") or {})
    run.program = program
    inst.run = run
    transition(inst, State.STARTED)  # resolved -> started
    ctx.tokens[run.token] = (inst, run)
    ctx.owner.spawn(watch_exit(ctx, inst, run), f"watch {inst.moniker}")
    log.warning("adopted %s (pid %d), left running by a manager that died", inst.moniker, identity.pid)
    return True


def _end_ray_actor(name: str) -> int:
    """End the Ray actor of a run a dead manager left (it dies with its owner, the dead
    manager; this makes sure before anything starts again). 1 if one was found."""
    from ..runners import get_runner

    try:
        return int(get_runner("ray").end_left_over(name))
    except Exception as e:  # noqa: BLE001 - Ray unreachable: it died with its owner, or will
        log.warning("cannot end the Ray actor %s: %s", name, e)
        return 0


def _kill_cgroup(ctx: ActionContext, instance_id: str) -> int:
    group = tracking.group_of(ctx, instance_id)
    if group is None:
        return 0
    killed = tracking.empty(group)
    tracking.remove(group)
    return killed


def _sweep_cgroups(ctx: ActionContext, adopted: set[str]) -> None:
    """Kill whatever is in a cgroup of this manager that no adopted program owns."""
    if ctx.cgroups is None:
        return
    owned = {tracking.group_name(instance_id) for instance_id in adopted}
    for group in ctx.cgroups.groups(ctx.cgroup_tag):
        if next(iter(group.dirs.values())).name not in owned:
            killed = tracking.empty(group)
            tracking.remove(group)
            if killed:
                log.warning("killed %d unrecorded process(es) of this manager", killed)


def _sweep_marked(ctx: ActionContext, adopted: set[str]) -> None:
    """Kill every process carrying this manager's mark that no adopted program owns (what
    a program spawned into a session of its own, on a host without cgroups)."""
    strays = [pid for pid, instance_id in procinfo.marked(ctx.mark).items() if instance_id not in adopted]
    if strays:
        log.warning("killed %d unrecorded process(es) of this manager", procinfo.kill_pids(strays))
