"""Start: run an instance's program and wait until it is serving.

In order: resolve; check config; create storage areas on first use; run pre_start hooks;
launch the program *held* through its runner (its startup info carries a fresh token and
grant key, so grants and tokens of an earlier run stop working); put it in its cgroup and
commit its start and process record (intent before effect: a manager killed before this
commit leaves a held program that exits without running, one killed after it leaves a
recorded program the next manager adopts); release it; wait until it reports serving (or,
for ``ready: spawned``, nothing more) within ``start_timeout``; publish ``started``. Eager children are started afterwards, outside this action, so a child that asks
its parent for a capability while starting does not wait on its own start.

A start that fails, times out or is aborted by a stop kills what it launched and records a
``start_failed`` stop, so nothing half-started stays behind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import secrets
import signal
import time

from ..errors import CmError, ConfigError, InvalidRequest, RouteError, StartError, StorageError
from ..faults import crash_point
from ..grants import new_key
from ..model.action_set import ActionKind
from ..model.config import config_values
from ..model.instance import Run
from ..model.reasons import START_EAGER, StopReason, StopRecord
from ..model.states import State, transition
from ..routing.route import route_use
from ..runners import get_runner, procinfo
from ..runners.base import LaunchSpec
from ..runners.files import files_stamp
from ..runners.startup import StartupInfo
from . import tracking
from .context import ActionContext
from .resolve import RoutingView, resolve_async
from .stop import stop

log = logging.getLogger("component_manager.actions")

__all__ = ["mark_serving", "node_of", "placed_program", "start", "watch_exit"]


async def start(ctx: ActionContext, inst, reason: str, gate=None) -> bool:
    """Start ``inst``; join a start in flight. Returns True if it was already running.
    ``gate``: the CommitGate of a batch ``inst`` is in (``batch.py``), for its records.

    Raises StartError, ConfigError, UrlError (resolution), InvalidRequest (shut down).
    """
    was_running = await inst.actions.register(ActionKind.START, lambda: _start(ctx, inst, reason, gate))
    if not was_running:
        _start_eager_children(ctx, inst)
    return was_running


async def _start(ctx: ActionContext, inst, reason: str, gate=None) -> bool:
    if inst.state is State.STARTED:
        return True
    if inst.state in (State.SHUTDOWN, State.DESTROYED):
        raise InvalidRequest(str(inst.moniker), f"is {inst.state.value}; it cannot start again")
    if inst.parent is not None and inst.parent.state is not State.STARTED:
        if gate is not None:
            gate.leave(inst)  # its parent may be in the batch too: never wait on each other
        await start(ctx, inst.parent, f"parent of '{inst.moniker}', which is starting")
    await resolve_async(ctx, inst)
    if inst.decl.program is None:
        inst.run = Run(token="", grant_key=b"", serve_address="", start_reason=reason)
        transition(inst, State.STARTED)  # resolved -> started
        await ctx.record_start(inst, reason, 0)
        return False
    try:
        config = {key: value for key, (value, _source) in config_values(RoutingView(ctx), inst).items()}
        storage = _prepare_storage(ctx, inst)
    except (ConfigError, StartError, StorageError) as e:  # nothing launched; still a failed start
        await ctx.record_stop(inst, StopRecord.start_failed(None, 0.0, str(e)))
        raise
    await _run_pre_start_hooks(ctx, inst, storage, config)
    await _launch(ctx, inst, reason, storage, config, gate.commit_for(inst) if gate is not None else None)
    return False


async def _run_pre_start_hooks(ctx: ActionContext, inst, storage: dict[str, str], config: dict) -> None:
    """``hook(inst, storage, config)`` for each; one that raises StartError fails the start,
    recorded as a ``start_failed`` stop (its detail names the hook)."""
    try:
        for hook in ctx.pre_start_hooks:
            await hook(inst, storage, config)
    except StartError as e:
        await ctx.record_stop(inst, StopRecord.start_failed(None, 0.0, e.reason))
        raise


def _prepare_storage(ctx: ActionContext, inst) -> dict[str, str]:
    """The storage it uses, name -> its area here, made on first use. A program on a Ray
    node gets its areas there (runners/ray_runner.py): names only."""
    on_ray = placed_program(ctx, inst).runner == "ray"
    paths = {}
    for use in inst.decl.uses:
        if use.kind != "storage":
            continue
        try:
            result = route_use(RoutingView(ctx), inst.moniker, use)
        except RouteError as e:
            raise StartError(str(inst.moniker), str(e)) from None
        if result.status != "ok":
            continue
        if on_ray:
            paths[use.target_name] = ""
            continue
        try:
            paths[use.target_name] = str(ctx.areas.create(inst.instance_id, use.target_name))
        except OSError as e:
            raise StorageError(str(inst.moniker), use.target_name, e.strerror or str(e)) from None
    return paths


def node_of(ctx: ActionContext, inst) -> str:
    """The Ray node ``inst`` runs on, or, stopped, would start on ("" for the manager's host
    or any node Ray picks)."""
    if inst.run is not None:
        return inst.run.node
    if inst.decl is None or inst.decl.program is None:
        return ""
    program = placed_program(ctx, inst)
    return program.node if program.runner == "ray" else ""


def placed_program(ctx: ActionContext, inst):
    """The instance's program as it will run: ``cm manager run --ray-place MONIKER=NODE`` moves
    a python program to that Ray node (the ray runner runs the same module)."""
    program = inst.decl.program
    node = ctx.placements.get(inst.moniker_text)
    if node is None or program.runner not in ("python", "ray"):
        return program
    return dataclasses.replace(program, runner="ray", node=node)


async def _launch(ctx: ActionContext, inst, reason: str, storage: dict[str, str], config: dict,
                  commit=None) -> None:
    program = placed_program(ctx, inst)
    protocols = tuple(c.name for c in inst.decl.capabilities if c.kind == "protocol")
    serve_address = ""
    if protocols or program.stop_event == "notify":
        serve_path = ctx.socket_path(inst)
        serve_path.parent.mkdir(mode=0o700, exist_ok=True)  # its own folder (runners/isolation.py)
        serve_path.unlink(missing_ok=True)  # a socket an earlier run left behind
        serve_address = f"unix:{serve_path}"
    run = Run(token=secrets.token_urlsafe(24), grant_key=new_key(), serve_address=serve_address,
              start_reason=reason)
    run.config = config
    run.files_stamp = files_stamp(program, inst.package_dir)  # a reload compares it
    run.serving = asyncio.get_running_loop().create_future()
    startup = StartupInfo(
        moniker=str(inst.moniker), instance_id=inst.instance_id,
        component_address=ctx.component_address, token=run.token,
        serve_address=run.serve_address, grant_key=run.grant_key.hex(), protocols=protocols,
        storage=storage, stop_event=program.stop_event, ready=program.ready,
        idle_timeout_ms=program.idle_timeout_ms, stop_timeout_ms=program.stop_timeout_ms,
    )
    spec = LaunchSpec(str(inst.moniker), inst.instance_id, program, inst.package_dir,
                      ctx.log_path(inst), startup, held=True,
                      extra_env=((procinfo.ENV_MARK, f"{ctx.mark}/{inst.instance_id}"),),
                      on_serving=functools.partial(mark_serving, run) if program.ready == "serving" else None)
    ctx.tokens[run.token] = (inst, run)
    _mark_log(spec.log_path, reason)
    try:
        run.program = await get_runner(program.runner).launch(spec)
        # a runner that chooses where the program serves and runs (ray: its node's TCP address)
        run.serve_address = getattr(run.program, "serve_address", run.serve_address)
        run.node = getattr(run.program, "node", "")
        crash_point("start.launched")
        await _record_then_release(ctx, inst, run, reason, commit)
        if program.ready == "serving":
            await _wait_serving(inst, run, program.start_timeout_ms / 1000)
        inst.run = run
        transition(inst, State.STARTED)  # resolved -> started
        ctx.events.publish("started", inst, reason=reason)
    except BaseException as e:
        await _abandon(ctx, inst, run, e)
        raise
    ctx.owner.spawn(watch_exit(ctx, inst, run), f"watch {inst.moniker}")


def _mark_log(path, reason: str) -> None:
    """A line between runs in the program's log (`cm logs` shows where each run begins);
    the file is made as the runner makes it (owner-only, no link followed)."""
    line = f"-- started {time.strftime('%Y-%m-%d %H:%M:%S')} ({reason}) --\n".encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError:
        return  # the runner reports a log it cannot open
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


async def _record_then_release(ctx: ActionContext, inst, run: Run, reason: str, commit=None) -> None:
    """Intent before effect: the held program joins its cgroup, its process record (how to
    find it, what adopting it needs) is committed (by ``commit``: with the rest of its
    batch), and only then may it run."""
    cgroup = await tracking.join_off_loop(ctx, inst, run.program)
    info = _run_info(run, reason, cgroup)
    identity = run.program.identity
    # a program on another host (ray) is recorded by its identity there, never adopted here
    recorded = identity or getattr(run.program, "record_identity", None)
    await ctx.store_start(inst, reason, run.pid, recorded, run.started_at, info, commit)
    crash_point("start.recorded")
    run.program.release()
    if identity is not None:
        ctx.note_released(inst, identity, run.started_at, info)
    crash_point("start.released")


def _run_info(run: Run, reason: str, cgroup: str) -> dict:
    """What a restarted manager needs to adopt the program (stored in its own LMDB)."""
    info = {"token": run.token, "grant_key": run.grant_key.hex(), "serve_address": run.serve_address,
            "reason": reason, "config": run.config, "cgroup": cgroup}
    if run.node:  # the ray runner's: a restarted manager ends the actor by its name
        info.update(node=run.node, actor=run.program.actor_name)
    return info


def mark_serving(run: Run) -> None:
    """The program reports it serves (on its startup socket, or by ReportServing)."""
    if run.serving is not None and not run.serving.done():
        run.serving.set_result(True)


async def _wait_serving(inst, run: Run, timeout: float) -> None:
    exited = asyncio.ensure_future(run.program.wait())
    try:
        done, _ = await asyncio.wait({run.serving, exited}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        exited.cancel()
    if run.serving in done:
        return
    if exited in done and not exited.cancelled():
        status = exited.result()
        how = f"signal {status.signal_name}" if status.signal else f"exit code {status.exit_code}"
        raise StartError(str(inst.moniker), f"the program ended ({how}) before it was serving")
    raise StartError(str(inst.moniker), f"the program was not serving within {timeout:g}s (start_timeout)")


async def _abandon(ctx: ActionContext, inst, run: Run, error: BaseException) -> None:
    """Undo a failed or aborted start: kill the program, record why, forget the run."""
    ctx.tokens.pop(run.token, None)
    status = None
    if run.program is not None:
        run.program.signal_group(signal.SIGKILL)
        status = await asyncio.shield(run.program.wait())
    detail = str(error) if isinstance(error, CmError) else (
        "aborted by a stop" if isinstance(error, asyncio.CancelledError) else f"{type(error).__name__}: {error}")
    if run.program is not None:
        await tracking.clear(ctx, inst)
        await ctx.record_stop(inst, StopRecord.start_failed(
            status, time.monotonic() - run.started_monotonic, detail))


async def watch_exit(ctx: ActionContext, inst, run: Run) -> None:
    """A program that ends by itself is stopped as exited (with its code) or crashed."""
    status = await run.program.wait()
    if run.stopping or inst.run is not run:
        return
    unknown = status.exit_code is None and status.signal is None  # its end was seen, not how
    reason = StopReason.CRASHED if status.signal or unknown else StopReason.EXITED
    over = limit_verdict(run.program)
    if over:
        reason = StopReason.RESOURCE_LIMIT
    lost = getattr(run.program, "node_lost", "")  # the ray runner's: the node went away
    if lost:
        reason, over = StopReason.NODE_LOST, f"Ray node {lost} was lost"
    try:
        await stop(ctx, inst, reason, detail=over)
    except CmError as e:
        log.warning("recording the end of %s: %s", inst.moniker, e)


def limit_verdict(program) -> str:
    """Which limit the ended ``program`` went over, with the value seen; "" if none."""
    limits = getattr(program, "limits", None)
    return limits.verdict() if limits is not None else ""


def _start_eager_children(ctx: ActionContext, inst) -> None:
    for child in list(inst.children.values()):
        decl = inst.decl.child(child.moniker.leaf.name) if not child.is_dynamic else None
        if decl is not None and decl.startup == "eager":
            ctx.owner.spawn(_start_quietly(ctx, child), f"eager start {child.moniker}")


async def _start_quietly(ctx: ActionContext, inst) -> None:
    try:
        await start(ctx, inst, START_EAGER)
    except CmError as e:
        log.warning("eager start of %s failed: %s", inst.moniker, e)
