"""The ``process`` runner: run any executable in its own session and process group.

``binary`` is relative to the component's package directory unless it is absolute; the
program runs with the package directory as its working directory, its stdout and stderr
appended to the instance's log file, and the startup info on an inherited socket
(``CM_STARTUP_FD``; see ``_startup_channel``). The python runner reuses :func:`spawn` with another command line.

Example::

    program = await ProcessRunner().launch(spec)   # binary "bin/server", args ("--fast",)
    program.pid                                    # 4242, also its process group id
    program.signal_group(signal.SIGTERM)
    await program.wait()                           # ExitStatus(exit_code=None, signal=15)

The exit is learned from a pidfd watched by the event loop (no thread, no polling); on a
kernel without pidfds, from ``waitpid`` in a worker thread.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import LimitNotEnforceable, StartError
from . import isolation
from .base import ExitStatus, LaunchSpec, ProcessIdentity, WatchedProcess
from .procinfo import identity_of
from .startup import ENV_STARTUP_FD, SERVING

__all__ = ["ChildProgram", "ProcessRunner", "spawn"]


class ChildProgram(WatchedProcess):
    """A program we spawned (we are its parent, so we reap it). Implements ``base.Program``."""

    def __init__(self, popen: subprocess.Popen, identity: ProcessIdentity | None, go_fd: int | None = None):
        self.pid = popen.pid
        self.identity = identity
        self._popen = popen
        self._go_fd = -1 if go_fd is None else go_fd  # held: the write end of its stdin gate
        self._done: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
        self._done.add_done_callback(lambda _f: self._close_go())
        self._watch()

    def release(self) -> None:
        if self._go_fd >= 0:
            try:
                os.write(self._go_fd, _GO)
            except OSError:
                pass  # it died meanwhile: its end is reported like any other
            self._close_go()

    def _close_go(self) -> None:
        fd, self._go_fd = self._go_fd, -1
        if fd >= 0:
            os.close(fd)

    def _watch(self) -> None:
        loop = self._done.get_loop()
        try:
            pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            loop.run_in_executor(None, self._popen.wait).add_done_callback(lambda _f: self._reap())
            return
        loop.add_reader(pidfd, self._on_pidfd, pidfd)

    def _on_pidfd(self, pidfd: int) -> None:
        self._done.get_loop().remove_reader(pidfd)
        os.close(pidfd)
        self._reap()

    def _reap(self) -> None:
        code = self._popen.wait()  # it has ended: this does not block
        status = ExitStatus(signal=-code) if code < 0 else ExitStatus(exit_code=code)
        if not self._done.done():
            self._done.set_result(status)

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)  # start_new_session: its pgid is its pid
        except ProcessLookupError:
            pass


async def spawn(spec: LaunchSpec, argv: Sequence[str], env_defaults: Mapping[str, str] = {},
                enforcement=None) -> ChildProgram:
    """Start ``argv`` for ``spec``: own session, log appended, startup info on a socket;
    under ``enforcement`` (``limits.py``), joined to its cgroup before it runs.

    Environment: the manager's, then ``TMPDIR`` (its own folder), then ``env_defaults``,
    then the program's ``env``, then the spec's ``extra_env``, then ``CM_STARTUP_FD``. Raises StartError if it cannot be spawned.
    The fork and exec run in a spawner thread (see ``_SPAWNERS``); the program is watched
    by the running event loop.

    Held (``spec.held``): ``/bin/sh`` runs first and waits on its stdin, a pipe, for "go"
    (``ChildProgram.release``), then execs the program in place (same pid, same identity)
    with stdin on ``/dev/null``. If the manager dies first, the pipe reads EOF and the shell
    exits without running the program. This costs one small exec (~1 ms). A limited program
    already waits at such a gate (``limits.wrap``) until it is in its cgroup: held, that one
    gate is opened by ``release()`` instead, once it is in its cgroup.
    """
    if spec.held:
        _check_executable(spec, argv[0])
    confinement = await isolation.prepare(spec)  # isolation: its uid, Landlock, non-dumpable
    log_fd = _open_log(spec)
    try:
        read_end = _startup_channel(spec)
    except OSError as e:
        os.close(log_fd)
        raise StartError(spec.moniker, f"cannot pass the startup info: {e.strerror}") from None
    env = _environment(spec, env_defaults, read_end, confinement)
    gated = spec.held or enforcement is not None
    gate_r, gate_w = os.pipe2(os.O_CLOEXEC) if gated else (None, None)
    command = list(argv)
    if enforcement is not None:
        command = enforcement.wrap(command)  # its gate is the hold too
    elif spec.held:
        command = [_SHELL, "-c", _HOLD, *command]
    launched = asyncio.get_running_loop().run_in_executor(
        _SPAWNERS, _popen, command, spec.package_dir, env, log_fd, read_end, confinement, gate_r)
    try:
        popen, identity = await asyncio.shield(launched)
        if enforcement is not None:
            _let_in(spec, popen, enforcement, None if spec.held else gate_w)
    except asyncio.CancelledError:
        _close(gate_w)  # at its gate, it reads EOF and never runs
        launched.add_done_callback(_kill_unowned)  # the start was aborted meanwhile
        raise
    except OSError as e:
        _close(gate_w)
        raise StartError(spec.moniker, _describe(e, argv[0])) from None
    except BaseException:
        _close(gate_w)
        raise
    if not spec.held:
        _close(gate_w)  # said "go" already, if there was a gate
        gate_w = None
    return with_limits(ChildProgram(popen, identity, gate_w), enforcement)


_SHELL = "/bin/sh"
_GO = b"go\n"
# Read one line from stdin (the go pipe); anything but "go" (EOF: the manager died) exits 127.
_HOLD = 'read -r go && [ "$go" = go ] || exit 127; exec "$0" "$@" </dev/null'


def _check_executable(spec: LaunchSpec, executable: str) -> None:
    """Held programs are exec'd by the shell: say what a direct spawn would have said."""
    if not os.access(executable, os.X_OK):
        error = os.strerror(errno.ENOENT if not os.path.exists(executable) else errno.EACCES)
        raise StartError(spec.moniker, f"cannot run {executable}: {error}")


def _close(fd: int | None) -> None:
    if fd is not None and fd >= 0:
        os.close(fd)


def _let_in(spec: LaunchSpec, popen, enforcement, gate_w: int | None) -> None:
    """Put the spawned program, waiting at its gate (``limits.wrap``), into its cgroup, then
    (``gate_w``: not held) let it exec. We do it, as root: the program may already run under
    its own uid and Landlock (isolation.py), which cannot reach the cgroup files."""
    try:
        enforcement.join(popen.pid)
        if gate_w is not None:
            os.write(gate_w, _GO)
    except OSError as e:
        os.killpg(popen.pid, signal.SIGKILL)
        _SPAWNERS.submit(popen.wait)
        raise LimitNotEnforceable(spec.moniker, "memory" if enforcement.limits.memory else "cpu",
                                  f"cannot put it in its cgroup: {e.strerror or e}") from None


def with_limits(program, enforcement):
    """``program``, watched under ``enforcement`` (None: no limits)."""
    if enforcement is not None:
        program.limits = enforcement
        enforcement.attach(program.pid)
        program._done.add_done_callback(lambda done: enforcement.verdict(done.result()))  # frees its cgroup
    return program


# vfork + exec blocks the calling thread until the child has exec'd (most of a spawn's
# 0.5-1 ms here), with the GIL released: four threads spawn 200 programs 2-2.5x faster than
# a loop calling Popen, and the event loop goes on serving meanwhile.
_SPAWNERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cm-spawn")


def _popen(argv: list[str], cwd, env: dict[str, str], log_fd: int, read_end: int, confinement=None,
           gate: int | None = None):
    """In a spawner thread: the process and its identity. Closes our copies of the fds.
    ``gate``: the read end of a pipe on its stdin (a limited program waits there, see
    ``limits.wrap``); else stdin is /dev/null."""
    try:
        popen = isolation.popen(
            confinement, argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL if gate is None else gate,
            stdout=log_fd, stderr=log_fd, pass_fds=(read_end,), start_new_session=True,
        )
    finally:
        os.close(log_fd)
        os.close(read_end)
        if gate is not None:
            os.close(gate)
    return popen, _identity(popen.pid)


def _kill_unowned(launched: asyncio.Future) -> None:
    if launched.cancelled() or launched.exception() is not None:
        return
    popen, _identity_ = launched.result()
    try:
        os.killpg(popen.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _SPAWNERS.submit(popen.wait)  # reap it off the loop


def _open_log(spec: LaunchSpec) -> int:
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    try:
        try:
            return os.open(spec.log_path, flags, 0o600)
        except FileNotFoundError:  # its folder is gone (or was never made): make it once
            spec.log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            return os.open(spec.log_path, flags, 0o600)
    except OSError as e:
        raise StartError(spec.moniker, f"cannot open log {spec.log_path}: {e.strerror}") from None


def _startup_channel(spec: LaunchSpec) -> int:
    """The program's end of a Unix socket pair that already holds its startup info, our
    write side shut (it reads to EOF); returns that end's descriptor.

    Written before the spawn so that a program that never reads it cannot block us (the
    buffer is grown first for data over 64 KiB). We keep our end only when the start waits
    for ``ready: serving``: the SDK writes ``SERVING`` there once it serves, which tells us
    without a gRPC connection (a ReportServing call costs a new program ~4 ms of handshake).
    """
    data = spec.startup.to_json()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if len(data) > 65536:
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2 * len(data))
        # The kernel caps that size (net.core.wmem_max) without a word: data that still
        # does not fit fails here (BlockingIOError) instead of blocking us forever.
        ours.setblocking(False)
        ours.sendall(data)
        ours.shutdown(socket.SHUT_WR)
    except OSError:
        ours.close()
        theirs.close()
        raise
    if spec.on_serving is None:
        ours.close()
    else:
        _hear_serving(ours, spec.on_serving)
    return theirs.detach()


def _hear_serving(ours: socket.socket, on_serving) -> None:
    """Call ``on_serving()`` when the program writes SERVING; close at that or at EOF (the
    program and whatever inherited its end are gone), so no descriptor outlives them."""
    loop = asyncio.get_running_loop()
    heard = bytearray()

    def readable() -> None:
        try:
            chunk = ours.recv(64)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        heard.extend(chunk)
        if chunk and len(heard) < len(SERVING):
            return
        loop.remove_reader(ours.fileno())
        ours.close()
        if heard.startswith(SERVING):
            on_serving()

    loop.add_reader(ours.fileno(), readable)


def _environment(spec: LaunchSpec, defaults: Mapping[str, str], startup_fd: int,
                 confinement=None) -> dict[str, str]:
    env = dict(os.environ)
    if confinement is not None and confinement.scratch:
        env["TMPDIR"] = confinement.scratch  # its own folder (runners/isolation.py); env may differ
    env.update(defaults)
    env.update(spec.program.env)
    env.update(spec.extra_env)
    env[ENV_STARTUP_FD] = str(startup_fd)
    return env


def _identity(pid: int) -> ProcessIdentity | None:
    try:
        return identity_of(pid)
    except (ProcessLookupError, OSError):
        return None  # /proc is not readable here: the program runs, but cannot be recovered


def _describe(error: OSError, executable: str) -> str:
    what = error.filename if error.filename is not None else executable
    return f"cannot run {what}: {error.strerror or error}"


def resolve_binary(spec: LaunchSpec) -> str:
    """The program's executable: ``binary`` as is if absolute, else under the package dir."""
    if not spec.program.binary:
        raise StartError(spec.moniker, "the process runner needs program.binary")
    binary = Path(spec.program.binary)
    return str(binary if binary.is_absolute() else Path(spec.package_dir) / binary)


class ProcessRunner:
    """Runs ``program.binary`` with ``program.args``."""

    name = "process"

    async def launch(self, spec: LaunchSpec) -> ChildProgram:
        argv = [resolve_binary(spec), *spec.program.args]
        return await spawn(spec, argv, enforcement=limits_for(spec))


def limits_for(spec: LaunchSpec):
    """The Enforcement of ``spec``'s limits, or None. Raises LimitNotEnforceable."""
    from .limits import prepare, tag_of

    return prepare(spec.moniker, spec.instance_id, spec.program, tag_of(spec.log_path.parent))
