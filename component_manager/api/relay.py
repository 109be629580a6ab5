"""The guard in front of the control API: a byte relay that refuses component programs.

Unless the manager runs as root with per-instance uids (``runners/isolation.py``), every
program it runs has the manager's uid, so the file mode of ``manager.sock`` (0600) keeps
out other users but not the manager's own programs. So the
control gRPC server (LifecycleController, Realm, RealmQuery, EventStream, health,
reflection) is not served on ``manager.sock`` at all. It listens on a *hidden* socket: bound
in a fresh private directory whose path is unlinked right after the bind, so no process can
connect to it by name; the manager keeps an ``O_PATH`` descriptor of the socket and reaches it
as ``/proc/self/fd/N``. The manager also marks itself non-dumpable
(``prctl(PR_SET_DUMPABLE, 0)``), which makes its ``/proc/PID/fd`` (and ``mem``) unreadable
to other processes of the same uid that lack CAP_SYS_PTRACE.

``manager.sock`` is served by :class:`ControlRelay`, a small asyncio Unix-socket relay. For
each incoming connection it reads the peer's credentials with ``SO_PEERCRED`` (pid, uid,
gid, as of ``connect()``) and closes the connection at once, before one byte is relayed, when

* the peer's uid is not the manager's (effective) uid; or
* the peer is gone, or its ``/proc/PID/stat`` cannot be read; or
* the peer's session id (``/proc/PID/stat`` field 6) is the session of a program the
  manager is running: programs start with ``start_new_session``, so a program's session id
  is its own pid and everything it spawns inherits it; or
* the manager itself is one of the peer's ancestors (a program, or a descendant that left
  the program's session with ``setsid`` but still hangs under the manager).

Everything else (the ``cm`` tool, the test harness, an operator's script) is relayed both
ways, byte for byte, with large buffers. A refused client sees its call fail with
UNAVAILABLE (the connection closes before the HTTP/2 handshake).

A component that needs the control API gets it by routing, not through this socket: a use
of ``component_manager.v1.RealmQuery`` (or ``LifecycleController``, ``Realm``,
``EventStream``) ``from: "framework"`` is answered by Connect with the address of the
*framework* server, which serves the same services but refuses any call without a grant
for that very service (see ``actions/open.py``).

Limits, honestly:

* This is a check of *who connects*, by process ancestry and session, among processes of
  one uid. A program that double-forks, calls ``setsid`` in the grandchild and lets it be
  reparented to init (a classic daemon) has neither the program's session nor the manager
  as an ancestor, and is let through. So is any same-uid process the manager did not
  start but that a program asked to act for it (a shell the user left open, cron, ...).
* A same-uid process with CAP_SYS_PTRACE, or on a system where the manager could not be
  made non-dumpable, can reach the hidden socket through ``/proc/<manager>/fd``.
* ``SO_PEERCRED`` names the process that called ``connect()``; a connected socket
  descriptor passed to another process keeps the first one's credentials.

With per-instance uids (as root) every program, and whatever it leaves behind, is refused
by uid; otherwise this keeps honest programs and casual mistakes out, and makes every
refusal visible in the manager's log, but on its own it is not a security boundary against
a hostile program of the same user (docs/security.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from ..runners.isolation import make_non_dumpable

log = logging.getLogger("component_manager.api")

__all__ = ["ControlRelay", "HiddenSocket", "admitted", "peer_refusal", "make_non_dumpable", "serve_owner_only"]

_BUFFER = 1 << 20  # socket buffer sizes of relayed connections
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class HiddenSocket:
    """A Unix socket path for a server to bind, that nobody can connect to by name afterwards.

    ``bind_address`` is for ``add_insecure_port`` (``unix:/tmp/cm-ctl-XXXX/c.sock``); after
    the server has bound it, ``hide()`` keeps an ``O_PATH`` descriptor of the socket and
    removes its name and directory; ``connect_path`` (``/proc/self/fd/N``) then reaches it
    from this process only.
    """

    def __init__(self):
        self._dir = Path(tempfile.mkdtemp(prefix="cm-ctl-"))  # mode 0700
        self._path = self._dir / "c.sock"
        self._fd: int | None = None

    @property
    def bind_address(self) -> str:
        return f"unix:{self._path}"

    def hide(self) -> None:
        self._fd = os.open(self._path, os.O_PATH | os.O_CLOEXEC)
        self._path.unlink(missing_ok=True)
        self._dir.rmdir()

    @property
    def connect_path(self) -> str:
        if self._fd is None:
            raise RuntimeError("hide() the socket first")
        return f"/proc/self/fd/{self._fd}"

    @property
    def target(self) -> str:
        """A gRPC target for this process itself (the manager's own clients, tests)."""
        return f"unix:{self.connect_path}"

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._path.unlink(missing_ok=True)
        if self._dir.exists():
            self._dir.rmdir()


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat from field 3 (state) on; field N is ``fields[N - 3]``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def peer_refusal(pid: int, uid: int, program_sessions: Iterable[int], *,
                 manager_pid: int | None = None, manager_uid: int | None = None) -> str:
    """Why a peer (from SO_PEERCRED) may not use the control API, or "" to let it in."""
    manager_pid = os.getpid() if manager_pid is None else manager_pid
    manager_uid = os.geteuid() if manager_uid is None else manager_uid
    if uid != manager_uid:
        return f"peer runs as uid {uid}, not the manager's uid {manager_uid}"
    if pid <= 0:
        return "peer process unknown (no SO_PEERCRED pid)"
    if pid == manager_pid:
        return ""  # the manager itself (inproc programs included: one process, nothing to guard)
    fields = _stat(pid)
    if fields is None:
        return f"peer pid {pid} is gone"
    sid = int(fields[6 - 3])
    if sid in set(program_sessions):
        return f"peer pid {pid} is in the session of component program {sid}"
    ppid, hops = int(fields[4 - 3]), 0
    while ppid > 1 and hops < 64:
        if ppid == manager_pid:
            return f"peer pid {pid} descends from the manager (a program or a child of one)"
        parent = _stat(ppid)
        if parent is None:
            break
        ppid, hops = int(parent[4 - 3]), hops + 1
    return ""


async def serve_owner_only(path: Path, protocol_factory) -> asyncio.AbstractServer:
    """A Unix socket server at ``path`` (replacing a stale socket), created owner-only (0600)
    with no window in which another user could connect."""
    path.unlink(missing_ok=True)
    old_umask = os.umask(0o177)
    try:
        return await asyncio.get_running_loop().create_unix_server(protocol_factory, path=str(path))
    finally:
        os.umask(old_umask)


def admitted(transport: asyncio.Transport, program_sessions: Callable[[], Iterable[int]], what: str) -> bool:
    """Whether the peer of a new connection may use ``what`` (``peer_refusal`` on its
    SO_PEERCRED); a refusal is logged. The control relay and the query socket both ask."""
    sock = transport.get_extra_info("socket")
    pid, uid, _gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    why = peer_refusal(pid, uid, program_sessions())
    if why:
        log.warning("refused a connection to %s: %s", what, why)
    return not why


class ControlRelay:
    """Accept on ``listen_path`` (created 0600), refuse component programs, relay the rest
    to ``connect_path``. ``program_sessions()`` returns the session ids of running programs.

    The bytes are moved by protocol callbacks (data in on one side, written out on the
    other), not by stream tasks awaiting reads and drains: a relayed call costs the event
    loop about a third less. Back-pressure: a side whose peer cannot take more stops reading.
    """

    def __init__(self, listen_path: Path, connect_path: str,
                 program_sessions: Callable[[], Iterable[int]]):
        self.listen_path = Path(listen_path)
        self.connect_path = connect_path
        self.program_sessions = program_sessions
        self.refused = 0
        self._server: asyncio.AbstractServer | None = None
        self._open: set[_Side] = set()

    async def start(self) -> None:
        self._server = await serve_owner_only(self.listen_path, lambda: _Downstream(self))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for side in list(self._open):
            side.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self.listen_path.unlink(missing_ok=True)

    def _admit(self, transport: asyncio.Transport) -> bool:
        if not admitted(transport, self.program_sessions, "the control API"):
            self.refused += 1
            return False
        _set_buffers(transport.get_extra_info("socket"))
        return True


class _Side(asyncio.Protocol):
    """One connection of a relayed pair: what it receives is written to its peer."""

    def __init__(self, relay: ControlRelay, peer: _Side | None = None):
        self.relay = relay
        self.transport: asyncio.Transport | None = None
        self.peer = peer

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.relay._open.add(self)

    def data_received(self, data: bytes) -> None:
        self.peer.transport.write(data)

    def eof_received(self) -> bool:
        if self.peer is not None and self.peer.transport.can_write_eof():
            self.peer.transport.write_eof()
        return True  # keep the other direction open until it ends too

    def pause_writing(self) -> None:  # our peer sends faster than we can write: slow it
        if self.peer is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc) -> None:
        self.relay._open.discard(self)
        if self.peer is not None:
            self.peer.close()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class _Downstream(_Side):
    """The client's connection: checked, then joined to a new connection to the server."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if not self.relay._admit(transport):
            transport.close()
            return
        transport.pause_reading()  # until the upstream connection exists
        self._connecting = asyncio.ensure_future(self._connect_upstream())  # referenced: not collected

    async def _connect_upstream(self) -> None:
        try:
            # its peer is known from the start: the server may write before we are back here
            _transport, upstream = await asyncio.get_running_loop().create_unix_connection(
                lambda: _Side(self.relay, peer=self), self.relay.connect_path)
        except OSError as e:
            log.warning("control relay: cannot reach the control server: %s", e)
            self.close()
            return
        _set_buffers(upstream.transport.get_extra_info("socket"))
        if self.transport.is_closing():  # the client went away meanwhile
            upstream.close()
            return
        self.peer = upstream
        self.transport.resume_reading()


def _set_buffers(sock) -> None:
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, _BUFFER)
        except OSError:
            pass
