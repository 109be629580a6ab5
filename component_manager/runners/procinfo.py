"""Process identity from ``/proc``, and killing a process group we are not the parent of.

A bare pid can be reused once its process is gone; (pid, start time in clock ticks since
boot, boot id) cannot. The manager records this identity for every program it launches, so
that after its own crash (even ``kill -9``) a new manager can find what the old one left
running and stop it, without ever killing an unrelated process that got the same pid.

Example::

    ident = identity_of(proc.pid)      # ProcessIdentity(pid, pgid, start_ticks, boot_id)
    ... the manager dies, a new one starts ...
    kill_group(ident)                  # -> 2: the program and the `sleep` it spawned

Only recovery polls ``/proc`` (we are not the parent of those processes, so nothing else
tells us they have ended); a live runner learns of exits from its child watcher.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ENV_MARK", "ProcessIdentity", "boot_id", "identity_of", "is_alive", "kill_group", "kill_pids", "marked"]

ENV_MARK = "CM_INSTANCE_MARK"  # "<manager mark>/<instance id>", in every program's environment

_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """A process as the kernel knows it across our own restarts: a bare pid can be reused,
    (pid, start time in clock ticks since boot, boot id) cannot. ``pgid`` is its group."""

    pid: int
    pgid: int
    start_ticks: int
    boot_id: str


_boot_id: str | None = None


def boot_id() -> str:
    """This boot's id (``/proc/sys/kernel/random/boot_id``), read once."""
    global _boot_id
    if _boot_id is None:
        _boot_id = (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    return _boot_id


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name, or None if it is gone.

    The name is in parentheses and may itself hold spaces and ')', so split after the
    *last* ')'. The returned list starts at field 3 (state): field N is ``fields[N - 3]``.
    """
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    try:
        text = os.read(fd, 4096)  # one line, well under a page
    except ProcessLookupError:  # it ended between the open and the read
        return None
    finally:
        os.close(fd)
    return text[text.rindex(b")") + 2:].decode().split()


def _pgid_ticks_state(pid: int) -> tuple[int, int, str, int] | None:
    """(process group, start ticks, state, session) of ``pid``, or None."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return int(fields[5 - 3]), int(fields[22 - 3]), fields[3 - 3], int(fields[6 - 3])


def _member(identity: ProcessIdentity, found) -> bool:
    """Alive, in the identity's group or session (a program's session id is its pid, as
    is its group's: a child that made a group of its own is still in the session), and
    started no earlier than the identity's process."""
    return (_live(found) and identity.pgid in (found[0], found[3])
            and found[1] >= identity.start_ticks)


def identity_of(pid: int) -> ProcessIdentity:
    """The identity of a live process. Raises ProcessLookupError if it does not exist."""
    found = _pgid_ticks_state(pid)
    if found is None:
        raise ProcessLookupError(pid)
    pgid, ticks, _state, _session = found
    return ProcessIdentity(pid=pid, pgid=pgid, start_ticks=ticks, boot_id=boot_id())


def _live(found: tuple | None) -> bool:
    return found is not None and found[2] not in ("Z", "X")


def is_alive(identity: ProcessIdentity) -> bool:
    """True if the very process of ``identity`` still runs (not a reused pid, not a zombie)."""
    if identity.boot_id != boot_id():
        return False
    found = _pgid_ticks_state(identity.pid)
    return _live(found) and found[1] == identity.start_ticks


def _group_members(identity: ProcessIdentity) -> list[int]:
    """Live processes in the identity's group that started no earlier than its leader."""
    members = []
    for entry in os.scandir(_PROC):
        if not entry.name.isdigit():
            continue
        if _member(identity, _pgid_ticks_state(int(entry.name))):
            members.append(int(entry.name))
    return members


def kill_group(identity: ProcessIdentity, timeout: float = 5.0) -> int:
    """SIGKILL every live member of the identity's process group or session and wait until
    they are gone.

    A member is a process whose pgid is the identity's and that started no earlier than the
    identity's process (so a recycled pgid of a later, unrelated group that started before
    is spared... and a group of an earlier boot is never touched). Returns how many processes
    were signalled. Waits at most ``timeout`` seconds, polling ``/proc``; processes that are
    left (unkillable, in D state) are logged by the caller through the count only.
    """
    if identity.boot_id != boot_id():
        return 0
    members = _group_members(identity)
    for pid in members:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _wait_gone(identity, members, timeout)
    return len(members)


def _wait_gone(identity: ProcessIdentity, pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.001
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if _still_member(identity, p)]
        if pids:
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def _still_member(identity: ProcessIdentity, pid: int) -> bool:
    return _member(identity, _pgid_ticks_state(pid))


def marked(manager_mark: str) -> dict[int, str]:
    """Live processes whose environment (as it was at their exec) carries ``ENV_MARK`` of
    this manager: pid -> instance id. A program's children inherit it, whatever session or
    group they make; a process that clears its environment before exec is not found."""
    needle = f"{ENV_MARK}={manager_mark}/".encode()
    found = {}
    for entry in os.scandir(_PROC):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                environ = f.read(1 << 20)
        except OSError:
            continue
        start = environ.find(needle)
        if start >= 0 and (start == 0 or environ[start - 1] == 0):
            value = environ[start + len(needle):].split(b"\0", 1)[0]
            if _live(_pgid_ticks_state(int(entry.name))):
                found[int(entry.name)] = value.decode(errors="replace")
    return found


def kill_pids(pids: list[int]) -> int:
    """SIGKILL each of ``pids`` (found just before); how many were signalled."""
    killed = 0
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            pass
    return killed
