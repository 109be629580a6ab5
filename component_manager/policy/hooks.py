"""Lifecycle hooks (``program.hooks``), sequenced with the lifecycle.

``pre_start`` commands run in order before the program launches, in its package folder,
with its environment, storage paths and config (``commands.command_env``); one that fails or
times out fails the start: ``start_failed``, with a detail that names the hook and ends with
the last lines of its output. They run as the program will (``commands.py``). ``post_stop`` commands all run, in order, after every stop of
a running program, even when one fails; their failures are added to the stop record
(``hook_failures``, shown by ``cm show``).

Both are registered in the model's hook lists (``pre_start_hooks``, ``post_stop_hooks``),
which the start and stop actions call at their hook points.
"""

from __future__ import annotations

import dataclasses

from ..errors import StartError
from ..model import persist
from .commands import command_env, confinement, prepared_confinement, run_command, storage_paths

__all__ = ["post_stop", "pre_start"]


async def pre_start(ctx, inst, storage: dict[str, str], config: dict) -> None:
    """Raises StartError naming the first hook that failed."""
    hooks = inst.decl.program.hooks
    if not hooks.pre_start:
        return
    env = command_env(inst, storage, config)
    confined = await prepared_confinement(ctx, inst, storage)
    for command in hooks.pre_start:
        result = await run_command(command, env, hooks.timeout_ms / 1000, inst.package_dir, confined)
        if not result.ok:
            raise StartError(inst.moniker_text, result.failure("pre_start hook"))


async def post_stop(ctx, inst, record) -> None:
    """Run every post_stop hook; record the failures on the instance's last stop."""
    program = inst.decl.program if inst.decl is not None else None
    if record is None or program is None or not program.hooks.post_stop:
        return
    env = command_env(inst, storage_paths(ctx, inst), extra={"CM_STOP_REASON": record.reason.value})
    confined = confinement(ctx, inst)
    failures = []
    for command in program.hooks.post_stop:
        result = await run_command(command, env, program.hooks.timeout_ms / 1000, inst.package_dir, confined)
        if not result.ok:
            failures.append(result.failure("post_stop hook"))
    if failures and inst.last_stop is record:
        inst.last_stop = dataclasses.replace(record, hook_failures=tuple(failures))
        batch = ctx.store.new_batch()
        persist.save(batch, inst)
        await ctx.store.commit(batch)
