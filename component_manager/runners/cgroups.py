"""A cgroup per instance: the one place that finds every process of a program, whatever it
forked, re-grouped or daemonized (a process cannot leave its cgroup without the rights to
write another one's ``cgroup.procs``).

Where: cgroup v2 when our own cgroup is delegated to us (writable), else the cgroup v1
``pids`` controller when it is mounted and writable (as root). Each manager has its own
folder, named by a mark of its state directory, so that managers never touch each other's
programs; under it, one folder per instance. Where neither works, ``Cgroups.open`` returns
None and the manager falls back on the recorded process identity (``procinfo``).

The API is small on purpose (limits can reuse it: a controller's files are in ``path(key)``)::

    groups = Cgroups.open(mark)          # None if the host does not allow it
    groups.create(key)                   # a folder for one instance (idempotent)
    groups.add(key, pid)                 # before the program runs: its children follow it
    groups.pids(key)                     # [4242, 4250]
    groups.kill_all(key)                 # SIGKILL all of them; waits until they are gone
    groups.remove(key)                   # rmdir (only once empty)
    groups.keys()                        # every instance folder of this manager
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

__all__ = ["Cgroups", "cgroups_enabled", "manager_mark"]

ENV_SWITCH = "CM_CGROUPS"

_ROOT = Path("/sys/fs/cgroup")
_V1_CONTROLLER = "pids"
_TOP = "component_manager"


def cgroups_enabled(environ=os.environ) -> bool:
    """False when ``CM_CGROUPS`` is 0, off, false or no."""
    return environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "off", "false", "no")


def manager_mark(state_dir: Path) -> str:
    """A short name for one manager: the same state directory, the same mark."""
    return hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:16]


class Cgroups:
    """The cgroup folders of one manager's instances (see the module docstring)."""

    def __init__(self, base: Path, version: int):
        self.base = base
        self.version = version

    @classmethod
    def open(cls, mark: str, root: Path = _ROOT) -> Cgroups | None:
        """This manager's cgroups, made if needed; None where the host does not allow them."""
        for version, parent in ((2, _own_v2_cgroup(root)), (1, root / _V1_CONTROLLER)):
            if parent is None or not (parent / "cgroup.procs").exists():
                continue
            base = parent / _TOP / mark
            try:
                base.mkdir(parents=True, exist_ok=True)
                probe = base / "probe"
                probe.mkdir(exist_ok=True)
                probe.rmdir()
            except OSError:
                continue
            return cls(base, version)
        return None

    def path(self, key: str) -> Path:
        return self.base / key

    def create(self, key: str) -> Path:
        """The instance's folder (made if missing). Raises OSError."""
        path = self.path(key)
        path.mkdir(exist_ok=True)
        return path

    def add(self, key: str, pid: int) -> None:
        """Move ``pid`` into the instance's cgroup. Raises OSError (ESRCH: it is gone)."""
        with open(self.path(key) / "cgroup.procs", "w") as f:
            f.write(str(pid))

    def pids(self, key: str) -> list[int]:
        """The live processes in the instance's cgroup (zombies are not listed)."""
        try:
            text = (self.path(key) / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(line) for line in text.split()]

    def kill_all(self, key: str, timeout: float = 5.0) -> int:
        """SIGKILL every process of the instance, again until none is left (one may fork
        meanwhile) or ``timeout``. Returns how many were signalled."""
        killed: set[int] = set()
        deadline = time.monotonic() + timeout
        delay = 0.001
        while (pids := self.pids(key)) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                except ProcessLookupError:
                    pass
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return len(killed)

    def remove(self, key: str) -> bool:
        """Remove the instance's folder; False while a process is still in it."""
        try:
            self.path(key).rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            return False

    def keys(self) -> list[str]:
        try:
            return [e.name for e in os.scandir(self.base) if e.is_dir()]
        except OSError:
            return []

    def close(self) -> None:
        """Remove the manager's folder if no instance folder is left in it."""
        try:
            self.base.rmdir()
        except OSError:
            pass


def _own_v2_cgroup(root: Path) -> Path | None:
    """Our own cgroup v2 folder, if this is a v2 (unified) host."""
    if not (root / "cgroup.controllers").exists():
        return None
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return root / line[3:].lstrip("/")
    except OSError:
        pass
    return None
