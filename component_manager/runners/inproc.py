"""The ``inproc`` runner: a coroutine function run as a task in the manager's event loop.

For tests (the model tier: an in-process manager with in-process programs) and for tiny
built-in components. ``entry`` is ``"package.module:function"``; the function is called with
the StartupInfo and awaited. There is no process: ``pid`` is 0, ``identity`` None, and a
"signal" is a cancellation.

Example::

    # program: { runner: "inproc", entry: "tests.fakes:serve_forever" }
    program = await InprocRunner().launch(spec)
    program.signal_group(signal.SIGTERM)   # cancels the task
    await program.wait()                   # ExitStatus(exit_code=None, signal=15)

Exit statuses: normal return -> exit code 0; an exception -> exit code 1 (logged);
cancelled by ``signal_group(sig)`` -> ``signal=sig``.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import signal

from ..errors import StartError
from .base import ExitStatus, LaunchSpec

__all__ = ["InprocProgram", "InprocRunner"]

log = logging.getLogger("component_manager.runners.inproc")

_STOPPING_SIGNALS = frozenset({signal.SIGTERM, signal.SIGKILL, signal.SIGINT})


class InprocProgram:
    """A task playing a program. Implements ``base.Program``."""

    pid = 0
    identity = None

    def __init__(self, moniker: str, coro):
        self._moniker = moniker
        self._signal: int | None = None
        self._task = asyncio.get_running_loop().create_task(coro, name=f"inproc {moniker}")
        self._done: asyncio.Future[ExitStatus] = self._task.get_loop().create_future()
        self._task.add_done_callback(self._on_done)

    def _on_done(self, task: asyncio.Task) -> None:
        if task.cancelled():
            status = ExitStatus(signal=self._signal or signal.SIGKILL)
        elif task.exception() is not None:
            log.error("in-process program %s failed", self._moniker, exc_info=task.exception())
            status = ExitStatus(exit_code=1)
        else:
            status = ExitStatus(exit_code=0)
        self._done.set_result(status)

    async def wait(self) -> ExitStatus:
        return await asyncio.shield(self._done)

    def signal_group(self, sig: int) -> None:
        """SIGTERM, SIGKILL and SIGINT cancel the task; other signals are ignored."""
        if sig in _STOPPING_SIGNALS and not self._task.done():
            if self._signal is None:
                self._signal = int(sig)
            self._task.cancel()

    def release(self) -> None:
        """Nothing to hold: it lives and dies with a manager (no process of its own to find)."""

    @property
    def exited(self) -> bool:
        return self._done.done()


def load_entry(moniker: str, entry: str):
    """The coroutine function named by ``"package.module:function"``. Raises StartError."""
    module_name, sep, attr = entry.partition(":")
    if not sep or not module_name or not attr:
        raise StartError(moniker, f"inproc entry {entry!r} is not 'package.module:function'")
    try:
        func = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise StartError(moniker, f"cannot load inproc entry {entry!r}: {e}") from None
    if not inspect.iscoroutinefunction(func):
        raise StartError(moniker, f"inproc entry {entry!r} is not a coroutine function")
    return func


class InprocRunner:
    name = "inproc"

    async def launch(self, spec: LaunchSpec) -> InprocProgram:
        func = load_entry(spec.moniker, spec.program.entry)
        return InprocProgram(spec.moniker, func(spec.startup))
