"""The ``local`` runner: the program is a coroutine in *another* process (a test), which
serves a small launcher socket; the manager asks it to run the program.

This is what ``component_manager.testing.RealmBuilder.add_local_child`` uses: the test
process registers ``main`` coroutines by name and serves a Unix socket; the generated
manifest says ``program: { runner: "local", entry: "unix:/tmp/cm-x/local.sock#client" }``.

Wire protocol (one JSON object per line, one connection per run):

    manager -> harness   {"name": "client", "startup": {...StartupInfo...}}
    harness -> manager   {"ok": true}            or {"ok": false, "error": "..."}
    manager -> harness   {"signal": 15}          (any time: cancel the coroutine)
    harness -> manager   {"exit_code": 0}        or {"signal": 9}   (the coroutine ended)

A run that loses its connection has ended: on the manager's side as if killed (SIGKILL),
on the harness side the coroutine is cancelled (its manager is gone). There is no process:
``pid`` is 0, ``identity`` None, exactly as for ``inproc``.

Example::

    program = await LocalRunner().launch(spec)   # entry "unix:/tmp/cm-x/local.sock#client"
    program.signal_group(signal.SIGKILL)         # the harness cancels the coroutine
    await program.wait()                         # ExitStatus(exit_code=None, signal=9)
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal

from ..errors import StartError
from .base import ExitStatus, LaunchSpec

__all__ = ["LocalProgram", "LocalRunner", "parse_entry"]

log = logging.getLogger("component_manager.runners.local")

CONNECT_TIMEOUT_S = 10.0


def parse_entry(moniker: str, entry: str) -> tuple[str, str]:
    """``"unix:/path#name"`` -> (``"/path"``, ``"name"``). Raises StartError."""
    address, sep, name = entry.rpartition("#")
    if not sep or not address.startswith("unix:/") or not name:
        raise StartError(moniker, f"local entry {entry!r} is not 'unix:/path/to/socket#name'")
    return address[len("unix:"):], name


class LocalProgram:
    """A run of a local component, seen from the manager. Implements ``base.Program``."""

    pid = 0
    identity = None

    def __init__(self, moniker: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._moniker = moniker
        self._reader = reader
        self._writer = writer
        self._done: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
        self._task = asyncio.get_running_loop().create_task(self._read(), name=f"local {moniker}")

    async def _read(self) -> None:
        status = ExitStatus(signal=signal.SIGKILL)  # a dropped connection: the run is gone
        try:
            while line := await self._reader.readline():
                message = json.loads(line)
                if "exit_code" in message or "signal" in message:
                    status = ExitStatus(exit_code=message.get("exit_code"), signal=message.get("signal"))
                    break
        except (OSError, ValueError) as e:
            log.warning("local program %s: launcher connection failed: %s", self._moniker, e)
        finally:
            self._writer.close()
            if not self._done.done():
                self._done.set_result(status)

    async def wait(self) -> ExitStatus:
        return await asyncio.shield(self._done)

    def signal_group(self, sig: int) -> None:
        """Ask the harness to cancel the coroutine (any signal ends it)."""
        if self._done.done() or self._writer.is_closing():
            return
        try:
            self._writer.write(json.dumps({"signal": int(sig)}).encode() + b"\n")
        except (OSError, RuntimeError):
            pass

    def release(self) -> None:
        """Nothing to hold: it lives and dies with a manager (no process of its own to find)."""

    @property
    def exited(self) -> bool:
        return self._done.done()


class LocalRunner:
    name = "local"

    async def launch(self, spec: LaunchSpec) -> LocalProgram:
        path, name = parse_entry(spec.moniker, spec.program.entry)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                reader, writer = await asyncio.open_unix_connection(path)
                request = {"name": name, "startup": json.loads(spec.startup.to_json())}
                writer.write(json.dumps(request).encode() + b"\n")
                await writer.drain()
                reply = json.loads(await reader.readline() or b"{}")
        except (OSError, ValueError, TimeoutError) as e:
            raise StartError(spec.moniker, f"local launcher {path} did not run {name!r}: {e!r}") from None
        if not reply.get("ok"):
            writer.close()
            raise StartError(spec.moniker, f"local launcher refused {name!r}: {reply.get('error', 'no reply')}")
        return LocalProgram(spec.moniker, reader, writer)
