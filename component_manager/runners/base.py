"""The runner protocol: how the manager launches a program and learns that it ended.

A runner turns a LaunchSpec into a running Program (or, with ``spec.held``, a program that
exists, has its pid and identity, and waits for ``release()`` before it runs any of its code). The stop protocol itself (OnStop, then
SIGTERM, then SIGKILL) lives in ``actions/stop.py``; a runner only gives it the primitives:
``signal_group`` and ``wait``. Every program runs in its own process group so that one signal
reaches everything it spawned.

Example::

    program = await RUNNERS["python"].launch(spec)
    ...
    program.signal_group(signal.SIGTERM)
    status = await program.wait()     # ExitStatus(exit_code=0, signal=None)
"""

from __future__ import annotations

import asyncio
import signal as _signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..manifest.decl import ProgramDecl
from .procinfo import ProcessIdentity  # here: /proc alone, light enough for a Ray node
from .startup import StartupInfo

__all__ = ["ExitStatus", "LaunchSpec", "Program", "ProcessIdentity", "Runner", "WatchedProcess"]


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a program ended: by itself with ``exit_code``, or by ``signal``. Neither: its end
    was noticed but not how (a zygote child whose zygote died first); recorded as a crash."""

    exit_code: int | None = None
    signal: int | None = None

    @property
    def signal_name(self) -> str:
        return _signal.Signals(self.signal).name if self.signal else ""


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    moniker: str
    instance_id: str
    program: ProgramDecl
    package_dir: Path  # where the component came from: module search root, binary base dir
    log_path: Path  # stdout and stderr are appended here
    startup: StartupInfo
    extra_env: tuple[tuple[str, str], ...] = ()
    on_serving: Callable[[], None] | None = None  # called when the program reports it serves
    held: bool = False  # launch it held: it runs nothing of its own until ``release()``


class Program(Protocol):
    """A launched program. ``identity`` is None for an in-process (inproc) program."""

    pid: int
    identity: ProcessIdentity | None
    limits: object  # limits.Enforcement, or None (no limits, or an in-process program)

    async def wait(self) -> ExitStatus:
        """Wait until the program has ended; safe to call many times and concurrently."""

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the program's whole process group; no error if it is gone."""

    def release(self) -> None:
        """Let a program launched ``held`` run. Until then it runs none of its own code, and
        if the manager dies first it exits (127) without having run any: the start records
        it durably in between (intent before effect). A no-op for a program not held."""

    @property
    def exited(self) -> bool: ...


class Runner(Protocol):
    name: str

    async def launch(self, spec: LaunchSpec) -> Program:
        """Start the program. Raises StartError (with the moniker) if it cannot be spawned."""


class WatchedProcess:
    """What the process-backed Programs share: ``_done`` gets the ExitStatus once it ended."""

    pid: int
    _done: asyncio.Future
    limits = None  # a limits.Enforcement when the program runs under limits

    async def wait(self) -> ExitStatus:
        """The exit status; any number of waiters, and a cancelled waiter cancels nothing."""
        return await asyncio.shield(self._done)

    @property
    def exited(self) -> bool:
        return self._done.done()

    def __repr__(self) -> str:
        state = f"exited {self._done.result()}" if self.exited else "running"
        return f"<{type(self).__name__} pid={self.pid} {state}>"
