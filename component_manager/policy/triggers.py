"""Triggers (``program.on``): commands fired after an event, without blocking the lifecycle.

``start`` fires once the program is started; ``exit`` after every stop of a running
program; ``failure`` after a stop that was a failure (crashed, exited non-zero, failed a
health check, ...). Each runs in the package folder with the instance's environment and
storage paths plus
``CM_EVENT`` (start, exit, failure), ``CM_STOP_REASON``, ``CM_EXIT_CODE`` and ``CM_SIGNAL``
(empty when they do not apply). Each outcome is an event: ``trigger_succeeded`` or
``trigger_failed`` (detail: the command and how it ended).
"""

from __future__ import annotations

from .commands import command_env, confinement, run_command, storage_paths

__all__ = ["fire"]

TIMEOUT_S = 60.0  # a trigger that runs longer is killed (and reported as failed)


def fire(ctx, inst, event: str, record=None) -> None:
    """Start the ``event`` triggers of ``inst`` in the background (owned by the model)."""
    program = inst.decl.program if inst.decl is not None else None
    commands = getattr(program.on, event) if program is not None else ()
    if not commands:
        return
    env = command_env(inst, storage_paths(ctx, inst), extra=_event_env(event, record))
    confined = confinement(ctx, inst)
    for command in commands:
        ctx.owner.spawn(_run(ctx, inst, event, command, env, confined), f"on.{event} of {inst.moniker}")


def _event_env(event: str, record) -> dict[str, str]:
    env = {"CM_EVENT": event, "CM_STOP_REASON": "", "CM_EXIT_CODE": "", "CM_SIGNAL": ""}
    if record is not None:
        env["CM_STOP_REASON"] = record.reason.value
        env["CM_EXIT_CODE"] = "" if record.exit_code is None else str(record.exit_code)
        env["CM_SIGNAL"] = "" if record.signal is None else str(record.signal)
    return env


async def _run(ctx, inst, event: str, command, env, confined) -> None:
    result = await run_command(command, env, TIMEOUT_S, inst.package_dir, confined)
    outcome = "trigger_succeeded" if result.ok else "trigger_failed"
    detail = f"on.{event} {list(command)}: {result.describe()}" + (f": {result.tail}" if result.tail and not result.ok else "")
    ctx.events.publish(outcome, inst, reason=event, detail=detail)
