"""Run a policy's command (a hook, a trigger, an exec probe) as a real subprocess, without
blocking the event loop: in the instance's package folder, with the instance's environment,
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
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CommandResult", "command_env", "run_command"]

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


def _env_name(name: str) -> str:
    return "".join(c.upper() if c.isalnum() else "_" for c in name)


async def run_command(command: tuple[str, ...], env: dict[str, str], timeout: float,
                      cwd: Path | None = None) -> CommandResult:
    """Run ``command`` to its end or its timeout; never raises for the command's failure."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *command, cwd=str(cwd) if cwd else None, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    except (OSError, ValueError) as e:  # not found, not executable, a NUL in an argument
        return CommandResult(tuple(command), error=getattr(e, "strerror", None) or str(e))
    tail = bytearray()
    try:
        async with asyncio.timeout(timeout):
            await _read_tail(proc.stdout, tail)
            code = await proc.wait()
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        return CommandResult(tuple(command), None, True, tail=_lines(tail))
    except asyncio.CancelledError:
        _kill_group(proc.pid)
        raise
    return CommandResult(tuple(command), code, tail=_lines(tail))


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
