"""A program left running by a manager that died, adopted by the next one.

We are not its parent, so we cannot reap it or learn its exit status; a pidfd still tells
the event loop when it ends (``ExitStatus()``, neither code nor signal: its end was seen,
not how). It is signalled by process group, as any program. Implements ``base.Program``.

Example::

    program = AdoptedProgram.adopt(identity)   # None if that very process is gone
    program.signal_group(signal.SIGTERM)
    await program.wait()                       # ExitStatus(exit_code=None, signal=None)
"""

from __future__ import annotations

import asyncio
import os

from .base import ExitStatus, ProcessIdentity, WatchedProcess
from .procinfo import is_alive

__all__ = ["AdoptedProgram"]


class AdoptedProgram(WatchedProcess):
    def __init__(self, identity: ProcessIdentity, pidfd: int):
        self.pid = identity.pid
        self.identity = identity
        self._pidfd = pidfd
        self._done: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
        self._done.get_loop().add_reader(pidfd, self._on_pidfd)

    @classmethod
    def adopt(cls, identity: ProcessIdentity) -> AdoptedProgram | None:
        """Watch the process of ``identity``; None if it is gone (or its pid was reused).
        The identity is checked after the pidfd is open, so the pidfd is that process's."""
        try:
            pidfd = os.pidfd_open(identity.pid)
        except OSError:
            return None
        if not is_alive(identity):
            os.close(pidfd)
            return None
        return cls(identity, pidfd)

    def _on_pidfd(self) -> None:
        self._done.get_loop().remove_reader(self._pidfd)
        os.close(self._pidfd)
        if not self._done.done():
            self._done.set_result(ExitStatus())

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.identity.pgid, sig)
        except ProcessLookupError:
            pass

    def release(self) -> None:
        """It runs already."""
