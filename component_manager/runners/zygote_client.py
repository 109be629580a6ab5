"""The manager's side of the zygote (the process and its wire protocol: ``zygote.py``).

The manager starts one zygote when it starts (``Zygote.start``: it becomes ready in the
background, ~150 ms later) and stops it when it stops. ``Zygote.launch`` asks it to fork a
program and returns a :class:`ZygoteProgram`, or None whenever the zygote cannot run this
program faithfully or at all (not ready yet, dead, refusing, too slow): the python runner
then spawns the program as before, so a start never fails because of the zygote. A dead
zygote is started again as soon as its death is noticed, or by the next launch (at most
``MAX_FAILED_STARTS`` times in a row if it dies before it is ready: then python programs
are spawned for the rest of the manager's life, and the manager's log says so).

Example::

    zygote = Zygote(state_dir / "zygote.log")
    zygote.start()
    ...
    program = await zygote.launch(spec, {"PYTHONPATH": ..., "PYTHONUNBUFFERED": "1"})
    if program is None:
        program = await spawn(spec, argv, env_defaults)  # the plain path
    status = await program.wait()                       # ExitStatus(exit_code=0, signal=None)
    await zygote.stop()

How a program's end is learned: the zygote reaps its children and sends ``exit PID STATUS``;
that resolves the program. The zygote also passes a pidfd of each child, watched here: if
the zygote dies while a program runs, the program's end is still noticed, but its status is
lost (init reaps it), so it is reported as ``ExitStatus()`` with neither code nor signal,
which the start action records as a crash. (So is a program whose zygote was killed in the
instant between answering the manager and letting the child run: the child then exits
without running the program, as it cannot know whether the manager heard of it.)

Switch it off with ``CM_ZYGOTE=0`` in the manager's environment.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from . import isolation
from .base import ExitStatus, LaunchSpec, ProcessIdentity, WatchedProcess
from .process import _environment, _open_log, _startup_channel, with_limits
from .procinfo import boot_id
from .zygote import received_fds

__all__ = ["ENV_SWITCH", "Zygote", "ZygoteProgram", "zygote_enabled"]

log = logging.getLogger("component_manager.runners.zygote")

ENV_SWITCH = "CM_ZYGOTE"
LAUNCH_TIMEOUT_S = 5.0  # a zygote this slow to answer is killed; starts spawn meanwhile
STOP_TIMEOUT_S = 2.0
MAX_FAILED_STARTS = 3
UNKNOWN_STATUS = ExitStatus()  # ended while its zygote was dead: nobody saw how
_PASSED_THROUGH = frozenset({"PYTHONPATH", "PYTHONUNBUFFERED"})
# Read when an interpreter starts (PYTHON*: -X options, hash seed, ...; the locale) or when a
# preloaded library is imported (grpc, protobuf's implementation, lmdb's binding).
_STARTUP_PREFIXES = ("PYTHON", "LC_", "GRPC_", "PROTOCOL_BUFFERS_", "LMDB_")


def zygote_enabled(environ=os.environ) -> bool:
    """False when ``CM_ZYGOTE`` is 0, off, false or no."""
    return environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "off", "false", "no")


def startup_variables(env) -> dict[str, str]:
    """The variables a forked child cannot take, as they acted when the zygote started or
    imported its modules: a program runs in the zygote only if they equal the zygote's."""
    return {k: v for k, v in env.items()
            if (k.startswith(_STARTUP_PREFIXES) and k not in _PASSED_THROUGH) or k == "LANG"}


class ZygoteProgram(WatchedProcess):
    """A program the zygote forked (its parent is the zygote). Implements ``base.Program``."""

    def __init__(self, pid: int, identity: ProcessIdentity, pidfd: int, zygote: Zygote | None = None):
        self.pid = pid
        self.identity = identity
        self._zygote = zygote  # set while it is held: the zygote says "go" for us
        self._done: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
        self._pidfd = pidfd
        self._ended = False  # its pidfd fired: it has ended, its status may still be on the way
        self._zygote_lost = False
        self._done.get_loop().add_reader(pidfd, self._on_pidfd)

    def _on_pidfd(self) -> None:
        self._close_pidfd()
        self._ended = True
        if self._zygote_lost:
            self._resolve(UNKNOWN_STATUS)

    def release(self) -> None:
        zygote, self._zygote = self._zygote, None
        if zygote is not None:
            zygote.say_go(self.pid)

    def on_exit_status(self, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        self._resolve(ExitStatus(signal=-code) if code < 0 else ExitStatus(exit_code=code))

    def on_zygote_lost(self) -> None:
        self._zygote_lost = True
        if self._ended:
            self._resolve(UNKNOWN_STATUS)

    def _resolve(self, status: ExitStatus) -> None:
        self._close_pidfd()
        if not self._done.done():
            self._done.set_result(status)

    def _close_pidfd(self) -> None:
        if self._pidfd >= 0:
            self._done.get_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)  # after its setsid, its pgid is its pid
        except ProcessLookupError:
            self._signal_before_setsid(sig)

    def _signal_before_setsid(self, sig: int) -> None:
        """No group yet: the child has not reached its setsid (it runs nothing else before
        it), so it is alone and is signalled by its pidfd (never a reused pid)."""
        if self._pidfd >= 0:
            try:
                signal.pidfd_send_signal(self._pidfd, sig)
            except ProcessLookupError:
                pass


class Zygote:
    """The manager's handle on its zygote process: start, launch, stop; restart on demand."""

    def __init__(self, log_path: Path):
        self.log_path = Path(log_path)
        self._process: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._ready = False
        self._became_ready: asyncio.Event | None = None
        self._startup_env: dict[str, str] = {}
        self._pending: dict[int, asyncio.Future] = {}  # launch number -> reply
        self._programs: dict[int, ZygoteProgram] = {}  # pid -> running program
        self._launches = 0
        self._failed_starts = 0
        self._stopped = False

    @property
    def ready(self) -> bool:
        return self._ready

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until the zygote is ready; False if it is not within ``timeout`` seconds."""
        if self._became_ready is None:
            self._became_ready = asyncio.Event()
            if self._ready:
                self._became_ready.set()
        try:
            async with asyncio.timeout(timeout):
                await self._became_ready.wait()
        except TimeoutError:
            return False
        return self._ready

    @property
    def given_up(self) -> bool:
        """True once it died before it was ready ``MAX_FAILED_STARTS`` times in a row."""
        return self._failed_starts >= MAX_FAILED_STARTS

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # ---- the process -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the zygote process unless it runs; it becomes ready in the background."""
        if self._stopped or self._process is not None or self.given_up:
            return
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except OSError as e:
            self._failed_starts += 1
            log.warning("cannot start the zygote (python programs are spawned): %s", e)
            return
        try:
            with open(self.log_path, "ab", opener=_owner_only) as log_file:
                self._process = subprocess.Popen(
                    [sys.executable, "-P", "-m", "component_manager.runners.zygote", str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=log_file,
                    stderr=log_file, cwd="/")
        except OSError as e:
            self._failed_starts += 1
            ours.close()
            log.warning("cannot start the zygote (python programs are spawned): %s", e)
            return
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._startup_env = startup_variables(os.environ)
        asyncio.get_running_loop().add_reader(ours, self._on_readable)

    async def stop(self) -> None:
        """Close the control socket (the zygote exits on EOF); kill it if it lingers.
        Idempotent. Programs it forked keep running; their ends are still noticed."""
        self._stopped = True
        process = self._process
        self._lost("stopped")
        if process is not None and not await _exited_within(process, STOP_TIMEOUT_S):
            process.kill()
            await _exited_within(process, STOP_TIMEOUT_S)

    def _lost(self, why: str) -> None:
        """The zygote is gone (or being stopped): forget it, let waiting launches spawn."""
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock)
            self._sock.close()
            self._sock = None
        if self._process is not None:
            if not self._ready and not self._stopped:
                self._failed_starts += 1
                log.warning("the zygote ended before it was ready (%s); see %s%s", why, self.log_path,
                            "; giving up on it" if self.given_up else "")
            _reap_when_ended(self._process)
            self._process = None
        self._ready = False
        if self._became_ready is not None:
            self._became_ready.clear()
        for future in self._pending.values():
            if not future.done():
                future.set_result(None)
        self._pending.clear()
        for program in self._programs.values():
            program.on_zygote_lost()
        self._programs.clear()
        if not self._stopped:
            self.start()  # at once, so that it is ready again for the next start

    # ---- messages ----------------------------------------------------------------------------

    def _on_readable(self) -> None:
        while self._sock is not None:
            try:
                data, ancillary, _flags, _ = self._sock.recvmsg(
                    65536, socket.CMSG_SPACE(4 * 4), socket.MSG_CMSG_CLOEXEC)
            except BlockingIOError:
                return
            except OSError as e:
                data, ancillary = b"", []
                log.warning("zygote control socket failed: %s", e)
            fds = received_fds(ancillary)
            if not data:
                _close_all(fds)
                self._lost("it exited")
                return
            try:
                self._dispatch(json.loads(data), fds)
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                _close_all(fds)
                log.warning("ignoring a malformed message from the zygote: %r", e)

    def _dispatch(self, message: dict, fds: list[int]) -> None:
        if "exit" in message:
            program = self._programs.pop(message["exit"], None)
            if program is not None:
                program.on_exit_status(message["status"])
        elif "launched" in message and len(fds) == 1:
            self._on_launched(message, fds[0])
            return
        elif "refused" in message:
            future = self._pending.pop(message["refused"], None)
            log.debug("the zygote refused a launch: %s", message.get("error"))
            if future is not None and not future.done():
                future.set_result(None)
        elif "ready" in message:
            self._ready = True
            self._failed_starts = 0
            if self._became_ready is not None:
                self._became_ready.set()
            log.info("zygote ready (pid %s)", message["ready"])
        _close_all(fds)

    def _on_launched(self, message: dict, pidfd: int) -> None:
        pid, number = int(message["pid"]), message["launched"]
        identity = ProcessIdentity(pid=pid, pgid=pid, start_ticks=int(message["start_ticks"]), boot_id=boot_id())
        program = self._programs[pid] = ZygoteProgram(pid, identity, pidfd, self)  # owns the pidfd now
        future = self._pending.pop(number, None)
        if future is None or future.done():
            program.signal_group(signal.SIGKILL)  # its start gave up waiting: nobody owns it
        else:
            future.set_result(program)

    # ---- launching ---------------------------------------------------------------------------

    async def launch(self, spec: LaunchSpec, env_defaults, enforcement=None) -> ZygoteProgram | None:
        """Fork ``spec``'s module from the zygote; None if the caller must spawn it instead.
        Under ``enforcement`` the child joins its cgroup and sets its rlimits before it runs.

        Raises StartError only as ``process.spawn`` would (the log cannot be opened)."""
        if not self._ready:
            self.start()  # on demand, if it died; a no-op while one is starting
            return None
        confinement = await isolation.prepare(spec)  # isolation: entered by the child before "go"
        log_fd = _open_log(spec)
        read_end = -1
        try:
            read_end = _startup_channel(spec)
            env = _environment(spec, env_defaults, read_end, confinement)
            if startup_variables(env) != self._startup_env:
                log.debug("%s: sets interpreter start-up variables; spawning it", spec.moniker)
                return None
            request = {"module": spec.program.module, "args": list(spec.program.args), "moniker": spec.moniker,
                       "cwd": str(spec.package_dir), "env": env, "startup_fd": read_end,
                       "confine": confinement and confinement.to_dict(), "held": spec.held}
            if enforcement is not None:
                request["limits"] = enforcement.for_zygote()
            program = await self._request(spec.moniker, request, [log_fd, read_end])
            return with_limits(program, enforcement) if program is not None else None
        finally:
            os.close(log_fd)
            if read_end >= 0:
                os.close(read_end)

    def say_go(self, pid: int) -> None:
        """Let a held child run. If the zygote is gone, so is the child (it exits unrun)."""
        if self._sock is None:
            return
        try:
            socket.send_fds(self._sock, [json.dumps({"go": pid}).encode()], [])
        except OSError as e:
            log.warning("cannot tell the zygote to run %d: %s", pid, e)

    async def _request(self, moniker: str, request: dict, fds: list[int]) -> ZygoteProgram | None:
        self._launches += 1
        number = request["launch"] = self._launches
        future = self._pending[number] = asyncio.get_running_loop().create_future()
        try:
            socket.send_fds(self._sock, [json.dumps(request).encode()], fds)
            async with asyncio.timeout(LAUNCH_TIMEOUT_S):
                return await future
        except OSError as e:  # full socket buffer, an environment too large for one message
            log.debug("%s: cannot ask the zygote (%s); spawning it", moniker, e)
            return None
        except TimeoutError:
            log.warning("the zygote did not answer within %gs; killing it (python programs are "
                        "spawned until a new one is ready)", LAUNCH_TIMEOUT_S)
            if self._process is not None:
                self._process.kill()
            return None
        finally:
            self._pending.pop(number, None)


def _owner_only(path, flags: int) -> int:
    return os.open(path, flags, 0o600)  # the manager's files are its own (runners/isolation.py)


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _reap_when_ended(process: subprocess.Popen) -> None:
    """Reap the zygote when it has exited, from the event loop (no thread, no polling)."""
    if process.poll() is not None:
        return
    loop = asyncio.get_running_loop()
    pidfd = os.pidfd_open(process.pid)

    def reap() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        process.poll()

    loop.add_reader(pidfd, reap)


async def _exited_within(process: subprocess.Popen, timeout: float) -> bool:
    """Wait until ``process`` has exited (and reap it); False after ``timeout`` seconds."""
    if process.poll() is not None:
        return True
    loop = asyncio.get_running_loop()
    ended = loop.create_future()
    pidfd = os.pidfd_open(process.pid)
    loop.add_reader(pidfd, lambda: ended.done() or ended.set_result(None))
    try:
        await asyncio.wait_for(ended, timeout)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    process.poll()
    return True
