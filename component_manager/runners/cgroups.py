"""A cgroup per limited program: cgroup v2 where the manager has a delegated cgroup, the v1
controllers (memory, cpu, pids, freezer) where the host mounts them writable, else none.

The hierarchy is found once (``hierarchy()``); ``CM_CGROUPS=v2|v1|none`` in the manager's
environment forces a choice (tests use ``none`` to exercise the rlimit path anywhere). Each
program gets one group named after its instance id under ``cm-<tag>``, a folder per manager
state directory, under the manager's own cgroup::

    /sys/fs/cgroup/memory/<manager's cgroup>/cm-1a2b3c4d5e/0123456789abcdef/   (v1, per controller)
    /sys/fs/cgroup/<manager's cgroup>/cm-1a2b3c4d5e/0123456789abcdef/          (v2, one folder)

The program joins its group itself before it runs any code of its own (``procs_paths``:
the ``cgroup.procs`` files it writes its pid to; see ``limits.py``), so nothing it forks can
escape. Going over the memory limit is an OOM kill by the kernel; v2 kills the whole group
(``memory.oom.group``), v1 tells us through an eventfd (``memory.oom_control``) and we kill
the group. Either way ``counters()`` says afterwards which limit was hit.

Example::

    h = hierarchy()                       # V1Hierarchy(...) on these machines, as root
    group = h.make_group("0123456789abcdef", tag="1a2b3c4d5e")
    group.set_limits(memory=64 << 20, cpu=0.5, pids=32)
    ... the program writes its pid to each of group.procs_paths ...
    group.counters()                      # Counters(oom_kills=1, pids_refused=0, memory_peak=67108864)
    group.remove()
"""

from __future__ import annotations

import errno
import os
import signal
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Counters", "Group", "ENV_SWITCH", "hierarchy"]

ENV_SWITCH = "CM_CGROUPS"
ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000
V1_CONTROLLERS = ("memory", "cpu", "pids", "freezer", "cpuacct")


@dataclass(frozen=True, slots=True)
class Counters:
    oom_kills: int = 0
    pids_refused: int = 0  # forks the pids limit refused
    memory_peak: int = 0
    memory_current: int = 0
    cpu_s: float = 0.0
    memory_hits: int = 0  # times its use reached the limit (counted before any OOM kill)


class Group:
    """One program's cgroup: a folder per controller (v1) or one folder (v2)."""

    version = ""
    controllers: frozenset[str] = frozenset()

    def __init__(self, dirs: dict[str, Path]):
        self.dirs = dirs  # controller -> folder (v2: every controller -> the one folder)

    @property
    def procs_paths(self) -> list[str]:
        return sorted({str(d / "cgroup.procs") for d in self.dirs.values()})

    def _write(self, controller: str, name: str, value: str) -> None:
        (self.dirs[controller] / name).write_text(value)

    def _read(self, controller: str, name: str) -> str:
        try:
            return (self.dirs[controller] / name).read_text()
        except (OSError, KeyError):
            return ""

    def pids(self, controller: str = "") -> list[int]:
        """The processes in it (in ``controller``'s folder alone, if given)."""
        found = set()
        paths = [str(self.dirs[controller] / "cgroup.procs")] if controller else self.procs_paths
        for path in paths:
            try:
                found.update(int(p) for p in Path(path).read_text().split())
            except OSError:
                pass
        return sorted(found)

    def kill_all(self) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def remove(self) -> bool:
        """Remove the folders; False while a process is still in them (thawed and killed
        meanwhile: a frozen v1 task cannot die, so cannot leave)."""
        gone = True
        for folder in set(self.dirs.values()):
            try:
                folder.rmdir()
            except FileNotFoundError:
                pass
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                gone = False
        if not gone:
            self.thaw()
            self.kill_all()
        return gone


class V1Group(Group):
    version = "v1"

    def set_limits(self, memory: int = 0, cpu: float = 0.0, pids: int = 0) -> None:
        if memory:
            self._write("memory", "memory.limit_in_bytes", str(memory))
        if cpu:
            self._write("cpu", "cpu.cfs_period_us", str(CPU_PERIOD_US))
            self._write("cpu", "cpu.cfs_quota_us", str(max(1000, int(cpu * CPU_PERIOD_US))))
        if pids:
            self._write("pids", "pids.max", str(pids))

    def counters(self) -> Counters:
        oom = _keyed(self._read("memory", "memory.oom_control")).get("oom_kill", 0)
        refused = _keyed(self._read("pids", "pids.events")).get("max", 0)
        usage = self._read("cpuacct", "cpuacct.usage").strip()
        return Counters(oom, refused, _int(self._read("memory", "memory.max_usage_in_bytes")),
                        _int(self._read("memory", "memory.usage_in_bytes")),
                        int(usage) / 1e9 if usage.isdigit() else 0.0,
                        _int(self._read("memory", "memory.failcnt")))

    def oom_eventfd(self) -> int:
        """An eventfd that becomes readable at each OOM in the group (v1 notification API)."""
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        control = os.open(self.dirs["memory"] / "memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._write("memory", "cgroup.event_control", f"{efd} {control}")
        except OSError:
            os.close(efd)
            raise
        finally:
            os.close(control)
        return efd

    def freeze(self) -> bool:
        if "freezer" not in self.dirs:
            return False
        self._write("freezer", "freezer.state", "FROZEN")
        return True

    def frozen(self) -> bool:
        return self._read("freezer", "freezer.state").strip() == "FROZEN"

    def thaw(self) -> None:
        if "freezer" in self.dirs and self.dirs["freezer"].exists():
            try:
                self._write("freezer", "freezer.state", "THAWED")
            except OSError:
                pass


class V2Group(Group):
    version = "v2"

    def set_limits(self, memory: int = 0, cpu: float = 0.0, pids: int = 0) -> None:
        if memory:
            self._write("memory", "memory.max", str(memory))
            self._write("memory", "memory.oom.group", "1")  # an OOM kills the whole program
        if cpu:
            self._write("cpu", "cpu.max", f"{max(1000, int(cpu * CPU_PERIOD_US))} {CPU_PERIOD_US}")
        if pids:
            self._write("pids", "pids.max", str(pids))

    def counters(self) -> Counters:
        usage_us = _keyed(self._read("cpu", "cpu.stat")).get("usage_usec", 0)
        events = _keyed(self._read("memory", "memory.events"))
        return Counters(events.get("oom_kill", 0), _keyed(self._read("pids", "pids.events")).get("max", 0),
                        _int(self._read("memory", "memory.peak")),
                        _int(self._read("memory", "memory.current")), usage_us / 1e6,
                        events.get("max", 0) + events.get("oom", 0))

    def oom_eventfd(self) -> int:
        return -1  # memory.oom.group: the kernel kills the whole group itself

    def freeze(self) -> bool:
        self._write("memory", "cgroup.freeze", "1")
        return True

    def frozen(self) -> bool:
        return "frozen 1" in self._read("memory", "cgroup.events")

    def thaw(self) -> None:
        try:
            self._write("memory", "cgroup.freeze", "0")
        except OSError:
            pass


def _keyed(text: str) -> dict[str, int]:
    """``"oom_kill_disable 0\\nunder_oom 0\\noom_kill 1"`` -> {..., "oom_kill": 1}."""
    pairs = (line.split() for line in text.splitlines())
    return {p[0]: int(p[1]) for p in pairs if len(p) == 2 and p[1].isdigit()}


def _int(text: str) -> int:
    text = text.strip()
    return int(text) if text.isdigit() else 0


class Hierarchy:
    """Where groups are made, and which controllers they have."""

    version = ""

    def __init__(self, bases: dict[str, Path]):
        self.bases = bases  # controller -> the manager's own cgroup folder for it
        self.controllers = frozenset(bases)
        # Where a program without limits is tracked: membership is all it needs, and each v1
        # controller costs a mkdir, a cgroup.procs write, a read and an rmdir per run.
        self.tracking = "pids" if "pids" in bases else min(bases, default="")

    def make_group(self, name: str, tag: str, controllers=None) -> Group:
        """A fresh group ``cm-<tag>/<name>`` (in ``controllers`` alone, if given); one left by
        an earlier manager is emptied first."""
        dirs = {c: base / f"cm-{tag}" / name for c, base in self.bases.items()
                if controllers is None or c in controllers}
        group = self.group_class(dirs)
        if any(d.exists() for d in dirs.values()):
            group.remove()
        self._prepare(tag)
        for folder in set(dirs.values()):
            folder.mkdir(parents=True, exist_ok=True)
        return group

    def _prepare(self, tag: str) -> None:
        pass

    def groups(self, tag: str) -> list[Group]:
        """This manager's groups, as they are on disk."""
        names = {g.name for base in self.bases.values() for g in _subfolders(base / f"cm-{tag}")}
        return [self.group_class({c: base / f"cm-{tag}" / n for c, base in self.bases.items()})
                for n in sorted(names)]

    def clean(self, tag: str, end: bool = True) -> int:
        """Thaw this manager's groups (a frozen v1 task cannot even die); with ``end``, also
        kill what is in them and remove them and the folder. Returns how many went."""
        removed = 0
        for group in self.groups(tag):
            group.thaw()
            if end:
                group.kill_all()
                removed += group.remove()
        if end:
            for base in set(self.bases.values()):
                _rmdir(base / f"cm-{tag}")
        return removed


def _subfolders(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []


def _rmdir(folder: Path) -> int:
    try:
        folder.rmdir()
        return 1
    except OSError:
        return 0


class V1Hierarchy(Hierarchy):
    version = "v1"
    group_class = V1Group


class V2Hierarchy(Hierarchy):
    """A delegated v2 cgroup. Controllers are enabled for our subtree; a cgroup with
    processes cannot enable them for its children, so the manager first moves itself into
    a leaf of its own (``manager``), as systemd asks of delegated services."""

    version = "v2"
    group_class = V2Group

    def _prepare(self, tag: str) -> None:
        base = next(iter(self.bases.values()))
        enable = " ".join(f"+{c}" for c in sorted(self.controllers))
        try:
            (base / "cgroup.subtree_control").write_text(enable)
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            leaf = base / "manager"
            leaf.mkdir(exist_ok=True)
            (leaf / "cgroup.procs").write_text(str(os.getpid()))
            (base / "cgroup.subtree_control").write_text(enable)
        (base / f"cm-{tag}").mkdir(exist_ok=True)
        (base / f"cm-{tag}" / "cgroup.subtree_control").write_text(enable)


_found: list = []


def hierarchy(environ=os.environ, root: Path = ROOT, proc_cgroup: str = "/proc/self/cgroup") -> Hierarchy | None:
    """The cgroup hierarchy this manager can make groups in, or None; found once."""
    if _found and root == ROOT:
        return _found[0]
    choice = environ.get(ENV_SWITCH, "").strip().lower()
    own = _own_cgroups(proc_cgroup)
    found = None
    if choice in ("", "v2"):
        found = _v2(root, own)
    if found is None and choice in ("", "v1"):
        found = _v1(root, own)
    if root == ROOT:
        _found.append(found)
    return found


def _own_cgroups(proc_cgroup: str) -> dict[str, str]:
    """controller (or "" for v2) -> our cgroup path, from /proc/self/cgroup."""
    own = {}
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return own
    for line in lines:
        _id, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            own[controller] = path
    return own


def _v2(root: Path, own: dict[str, str]) -> V2Hierarchy | None:
    if "" not in own or not (root / "cgroup.controllers").exists():
        return None  # no unified hierarchy with controllers here
    base = root / own[""].lstrip("/")
    try:
        available = set((base / "cgroup.controllers").read_text().split())
    except OSError:
        return None
    wanted = {"memory", "cpu", "pids"} & available
    if "memory" not in wanted or not os.access(base, os.W_OK):
        return None
    return V2Hierarchy({c: base for c in wanted})


def _v1(root: Path, own: dict[str, str]) -> V1Hierarchy | None:
    bases = {}
    for controller in V1_CONTROLLERS:
        mount = root / controller
        if controller in own and (mount / "cgroup.procs").exists():
            base = mount / own[controller].lstrip("/")
            if os.access(base, os.W_OK):
                bases[controller] = base
    return V1Hierarchy(bases) if "memory" in bases else None
