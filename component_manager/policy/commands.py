"""Run a policy's command (a hook, a trigger, an exec probe) as a real subprocess, without
blocking the event loop, confined as the instance's program is (its uid, its Landlock
domain): in the instance's package folder, with the instance's environment,
its output (stdout and stderr together) kept to a bounded tail, killed with its whole
process group when it outlives its timeout.

Example::

    result = await run_command(("bin/migrate", "--quick"), command_env(inst, {"data": p}), 30.0,
                               cwd=inst.package_dir)
    result.ok         # exit 0 within the timeout
    result.describe() # "exit code 3" / "timed out after 30s" / "cannot run: No such file ..."
    result.tail       # the last lines of its output
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from ..runners import isolation
from ..runners.isolation import Confinement

__all__ = ["CommandResult", "command_env", "confinement", "prepared_confinement", "run_command",
           "storage_paths"]

TAIL_BYTES = 2048  # what a failure's detail keeps of the output
TAIL_LINES = 5


@dataclass(frozen=True, slots=True)
class CommandResult:
    command: tuple[str, ...]
    exit_code: int | None = None  # None: it did not run, or was killed at its timeout
    timed_out: bool = False
    error: str = ""  # why it could not run at all
    tail: str = ""  # the last lines of its output

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def describe(self) -> str:
        if self.error:
            return f"cannot run: {self.error}"
        if self.timed_out:
            return "timed out"
        if self.exit_code is not None and self.exit_code < 0:
            return f"killed by {_signal_name(-self.exit_code)}"
        return f"exit code {self.exit_code}"

    def failure(self, what: str) -> str:
        """``pre_start hook ['bin/migrate'] failed (exit code 3): <last lines>``."""
        text = f"{what} {list(self.command)} failed ({self.describe()})"
        return f"{text}: {self.tail}" if self.tail else text


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def command_env(inst, storage: dict[str, str] | None = None, config: dict | None = None,
                extra: dict[str, str] | None = None) -> dict[str, str]:
    """The manager's environment, the program's ``env``, then who it is for: ``CM_MONIKER``,
    ``CM_INSTANCE_ID``, ``CM_PACKAGE_DIR``, ``CM_STORAGE_<NAME>`` (a path per storage it
    uses), ``CM_CONFIG`` (its config as JSON), and ``extra`` (a trigger's event)."""
    env = dict(os.environ)
    program = inst.decl.program if inst.decl is not None else None
    if program is not None:
        env.update(program.env)
    env.update(CM_MONIKER=inst.moniker_text, CM_INSTANCE_ID=inst.instance_id,
               CM_PACKAGE_DIR=str(inst.package_dir or ""))
    for name, path in (storage or {}).items():
        env[f"CM_STORAGE_{_env_name(name)}"] = path
    if config is not None:
        env["CM_CONFIG"] = json.dumps(config, sort_keys=True, default=list)
    env.update(extra or {})
    return env


def storage_paths(ctx, inst) -> dict[str, str]:
    """Where each storage the instance uses lives (whether or not it exists yet)."""
    return {u.target_name: str(ctx.areas.path_for(inst.instance_id, u.target_name))
            for u in inst.decl.uses if u.kind == "storage"}


def confinement(ctx, inst) -> Confinement | None:
    """A command for an instance runs as its program does (its uid, its Landlock domain)."""
    return isolation.confinement_of(inst.instance_id, inst.package_dir, storage_paths(ctx, inst))


async def prepared_confinement(ctx, inst, storage: dict[str, str]) -> Confinement | None:
    """For a pre_start hook, which may run before the program ever did: the confinement the
    program is about to get (its uid chosen, its files handed to it). Raises StartError."""
    spec = SimpleNamespace(instance_id=inst.instance_id, moniker=inst.moniker_text,
                           package_dir=inst.package_dir, log_path=ctx.log_path(inst),
                           startup=SimpleNamespace(storage=storage))
    return await isolation.prepare(spec)


def _env_name(name: str) -> str:
    return "".join(c.upper() if c.isalnum() else "_" for c in name)


async def run_command(command: tuple[str, ...], env: dict[str, str], timeout: float,
                      cwd: Path | None = None, confinement: Confinement | None = None) -> CommandResult:
    """Run ``command`` to its end or its timeout, in ``confinement`` (its program's uid and
    Landlock domain: ``runners/isolation.py``); never raises for the command's failure.

    The process is spawned from a worker thread (``isolation.popen``: the manager must not
    fork, and a confined spawn takes the program's credentials in a thread of its own); its
    output is read through the event loop, its exit waited for in a thread."""
    try:
        proc = await asyncio.to_thread(
            isolation.popen, confinement, list(command), cwd=str(cwd) if cwd else None, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    except (OSError, ValueError, subprocess.SubprocessError) as e:  # not found, not executable, a NUL
        return CommandResult(tuple(command), error=getattr(e, "strerror", None) or str(e))
    tail = bytearray()
    try:
        async with asyncio.timeout(timeout):
            await _read_tail(await _reader(proc.stdout), tail)
            code = await asyncio.to_thread(proc.wait)
    except TimeoutError:
        _kill_group(proc.pid)
        await asyncio.to_thread(proc.wait)
        return CommandResult(tuple(command), None, True, tail=_lines(tail))
    except asyncio.CancelledError:
        _kill_group(proc.pid)
        raise
    finally:
        proc.stdout.close()
    return CommandResult(tuple(command), code, tail=_lines(tail))


async def _reader(pipe) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader


async def _read_tail(stream: asyncio.StreamReader, tail: bytearray) -> None:
    """Read to the end, keeping only the last ``TAIL_BYTES`` (a chatty command costs no memory)."""
    while chunk := await stream.read(65536):
        tail += chunk
        del tail[:-TAIL_BYTES]


def _lines(tail: bytearray) -> str:
    text = tail.decode("utf-8", "replace").strip()
    return " | ".join(text.splitlines()[-TAIL_LINES:])


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
