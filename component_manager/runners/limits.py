"""A program's limits (``program.limits``), enforced by the kernel, and how it went.

At launch, ``prepare()`` turns the declared limits into an ``Enforcement``:

- memory, cpu, pids: a cgroup (``cgroups.py``: v2 where delegated, else the v1 controllers).
  Without a memory cgroup, memory is watched instead: the resident size of the program's
  process group, every ``WATCH_PERIOD_S``; over the limit, the group is killed. Without a
  cpu or pids controller, those limits cannot be enforced: the start is refused
  (``LimitNotEnforceable``), never run without them.
- open_files: ``RLIMIT_NOFILE``, set in the program before it runs.

Nothing of the program's own runs outside its cgroup or without its rlimits: a spawned
program starts as a shell that sets the rlimits and waits at a gate until the manager has
put it in its cgroup, then execs it (``wrap()`` and ``join()``: about a millisecond); a
zygote child joins from its launch request before it drops its privileges
(``for_zygote()``, applied by ``zygote_child.join_limits``).

Going over shows in how the program ended: ``verdict()`` is "" if no limit was hit, else
one line naming the limit and the value seen, e.g. ``"memory: over its limit of 64MiB
(peak 64MiB; killed by the kernel)"``; the start action then records ``resource_limit``.

Example::

    enforcement = prepare("/app/worker", instance_id, program_decl, tag="1a2b3c4d5e")
    popen = Popen(enforcement.wrap(argv), stdin=gate_r, ...)
    enforcement.join(popen.pid); os.write(gate_w, b"go\n")
    enforcement.attach(pid)
    ... it ends ...
    enforcement.verdict()      # "pids: 16 reached (3 forks refused)"
    enforcement.close()
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import resource
import signal
from dataclasses import dataclass
from pathlib import Path

from ..errors import LimitNotEnforceable
from . import cgroups

__all__ = ["Enforcement", "Limits", "clean_groups", "format_size", "prepare", "usage_of"]

log = logging.getLogger("component_manager.runners.limits")

WATCH_PERIOD_S = 0.25
SHELL = "/bin/sh"  # sets the rlimits, waits to be put in the cgroup, then execs the program
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class Limits:
    memory: int = 0  # bytes
    cpu: float = 0.0  # cores
    pids: int = 0
    open_files: int = 0

    @classmethod
    def of(cls, program) -> Limits:
        return cls(program.memory_limit_bytes, program.cpu_limit, program.pids_limit,
                   program.open_files_limit)

    def __bool__(self) -> bool:
        return bool(self.memory or self.cpu or self.pids or self.open_files)


def format_size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0 or n >= 10 * size:
            return f"{n / size:g}{unit}" if n % size == 0 else f"{n / size:.1f}{unit}"
    return f"{n}B"


@functools.lru_cache(maxsize=16)
def tag_of(log_dir) -> str:
    """The name of one manager's folder of cgroups, from its log folder (one per state
    directory, and what a runner knows of it: ``LaunchSpec.log_path``'s folder)."""
    return hashlib.sha256(str(log_dir).encode()).hexdigest()[:10]


def clean_groups(state_dir, end: bool = True) -> None:
    """Thaw the cgroups of the manager of ``state_dir`` and (``end``) remove them, killing
    what is left in them. Before boot's recovery: thaw only, so that the programs a dead
    manager left can be ended and recorded; after it, and at shutdown: remove."""
    hier = cgroups.hierarchy()
    if hier is None:
        return
    try:
        hier.clean(tag_of(Path(state_dir) / "logs"), end)
    except OSError as e:  # never a reason not to start or not to stop
        log.warning("cleaning this manager's cgroups: %s", e)


def prepare(moniker: str, instance_id: str, program, tag: str) -> Enforcement | None:
    """The enforcement of ``program``'s limits, or None when it has none.

    Raises LimitNotEnforceable when this host cannot enforce one of them."""
    limits = Limits.of(program)
    if not limits:
        return None
    hier = cgroups.hierarchy()
    needs = {"cpu": limits.cpu, "pids": limits.pids}
    missing = [name for name, value in needs.items() if value and (hier is None or name not in hier.controllers)]
    if missing:
        raise LimitNotEnforceable(moniker, missing[0], _why_not(hier, missing[0]))
    group = None
    if limits.memory or limits.cpu or limits.pids:
        group = _make_group(moniker, hier, instance_id, tag, limits) if hier is not None else None
    return Enforcement(limits, group)


def _why_not(hier, name: str) -> str:
    if hier is None:
        return (f"this host gives the manager no cgroup to limit {name} with (no delegated cgroup v2, "
                f"no writable v1 '{name}' controller; CM_CGROUPS={os.environ.get(cgroups.ENV_SWITCH, '')!r})")
    return f"the {hier.version} cgroup hierarchy here has no '{name}' controller"


def _make_group(moniker, hier, instance_id: str, tag: str, limits: Limits):
    group = None
    try:
        group = hier.make_group(instance_id[:16], tag)
        group.set_limits(limits.memory, limits.cpu, limits.pids)
    except OSError as e:
        if group is not None:
            group.remove()
        what = "memory" if limits.memory else ("cpu" if limits.cpu else "pids")
        raise LimitNotEnforceable(moniker, what, f"cannot set up its cgroup: {e.strerror or e}") from None
    return group


class Enforcement:
    """One run's limits as applied: its cgroup (or memory watch) and rlimits."""

    def __init__(self, limits: Limits, group):
        self.limits = limits
        self.group = group
        self.rlimits = ((resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),) if limits.open_files else ()
        self.pgid = 0
        self._watch: asyncio.TimerHandle | None = None
        self._oom_fd = -1
        self._killed_for = ""  # set when we killed it for a limit (the watch, a v1 OOM)
        self._verdict: str | None = None
        self._peak = 0

    @property
    def how(self) -> str:
        """How memory is held: "cgroup v1", "cgroup v2", "watch" or "" (no memory limit)."""
        if not self.limits.memory:
            return ""
        return f"cgroup {self.group.version}" if self.group is not None else "watch"

    # ---- in the program, before its code runs ------------------------------------------------

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` behind a gate: a shell that sets the rlimits, waits on its stdin until the
        manager has put it in its cgroup (``join``; EOF instead: it never runs), then execs
        the program (same pid) with /dev/null on stdin. The manager does the joining, as
        root, because the program may already run under its own uid and Landlock; and not
        in a ``preexec_fn``: Python run in a fork of the threaded manager can crash."""
        script = "".join(f"ulimit -n {soft} || exit 126; " for res, soft, _hard in self.rlimits
                         if res == resource.RLIMIT_NOFILE)
        script += 'read -r _ || exit 125; exec "$@" </dev/null'
        return [SHELL, "-c", script, "cm-limits", *argv]

    def join(self, pid: int) -> None:
        """Put process ``pid`` in this run's cgroup (every controller). Raises OSError."""
        for path in self.group.procs_paths if self.group is not None else ():
            with open(path, "w") as f:
                f.write(str(pid))

    def for_zygote(self) -> dict:
        return {"cgroup_procs": self.group.procs_paths if self.group else [],
                "rlimits": [list(r) for r in self.rlimits]}

    # ---- while it runs -------------------------------------------------------------------------

    def attach(self, pgid: int) -> None:
        """The program runs as process group ``pgid``: start watching what needs watching."""
        self.pgid = pgid
        loop = asyncio.get_running_loop()
        if self.limits.memory and self.group is None:
            self._watch = loop.call_later(WATCH_PERIOD_S, self._check_memory)
        elif self.group is not None and self.limits.memory:
            try:
                self._oom_fd = self.group.oom_eventfd()
            except OSError as e:
                log.warning("no OOM notification for group %s: %s", self.group.dirs, e)
            if self._oom_fd >= 0:
                loop.add_reader(self._oom_fd, self._on_oom)

    def _check_memory(self) -> None:
        rss = group_rss(self.pgid)
        self._peak = max(self._peak, rss)
        if rss > self.limits.memory:
            self._killed_for = (f"memory: over its limit of {format_size(self.limits.memory)} "
                                f"({format_size(rss)} resident; killed by the manager's watch)")
            _killpg(self.pgid)
            return
        if rss or _group_alive(self.pgid):
            self._watch = asyncio.get_running_loop().call_later(WATCH_PERIOD_S, self._check_memory)

    def _on_oom(self) -> None:
        try:
            os.eventfd_read(self._oom_fd)
        except OSError:
            pass
        self._stop_oom_reader()
        self._killed_for = self._memory_verdict()
        self.group.kill_all()  # v1 kills one process; the program is the whole group

    def _stop_oom_reader(self) -> None:
        if self._oom_fd >= 0:
            asyncio.get_running_loop().remove_reader(self._oom_fd)
            os.close(self._oom_fd)
            self._oom_fd = -1

    def usage(self) -> dict:
        """What it uses now: memory (bytes) and CPU time (s); zeros when unknown."""
        if self.group is not None:
            c = self.group.counters()
            return {"memory_bytes": c.memory_current, "cpu_s": round(c.cpu_s, 3)}
        return usage_of(self.pgid)

    def freeze(self) -> bool:
        """Freeze with the cgroup freezer; False when it has none (use SIGSTOP)."""
        return self.group is not None and self.group.freeze()

    def thaw(self) -> None:
        if self.group is not None:
            self.group.thaw()

    # ---- after it ended ------------------------------------------------------------------------

    def verdict(self, status=None) -> str:
        """"" if no limit was hit, else which limit and the value seen; ``status`` is how
        the program ended (the first call, when its end is noticed, gives it). Closes the
        group: later calls return the same answer."""
        if self._verdict is None:
            self._verdict = self._killed_for or self._counted(status)
            self.close()
        return self._verdict

    def _counted(self, status) -> str:
        if self.group is None:
            return ""
        c = self.group.counters()
        # The kernel counts an OOM kill after it has sent the SIGKILL (and logged it), so a
        # program may be gone before ``oom_kills`` says so; reaching the limit is counted first.
        killed = status is not None and status.signal == signal.SIGKILL
        if c.oom_kills or (killed and c.memory_hits):
            return self._memory_verdict(c)
        if c.pids_refused:
            return f"pids: its limit of {self.limits.pids} was reached ({c.pids_refused} forks refused)"
        return ""

    def _memory_verdict(self, c=None) -> str:
        c = c or self.group.counters()
        return (f"memory: over its limit of {format_size(self.limits.memory)} "
                f"(peak {format_size(c.memory_peak)}; killed by the kernel, cgroup {self.group.version})")

    def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        self._stop_oom_reader()
        if self.group is not None and not self.group.remove():
            asyncio.get_running_loop().call_later(0.5, self._remove_later, 10)

    def _remove_later(self, tries: int) -> None:
        if not self.group.remove() and tries > 1:
            asyncio.get_running_loop().call_later(0.5, self._remove_later, tries - 1)


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _members(pgid: int):
    """(pid, rss pages, utime+stime ticks) of each process in group ``pgid``."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                text = f.read()
        except OSError:
            continue
        fields = text[text.rindex(b")") + 2:].split()
        if int(fields[5 - 3]) == pgid and fields[0] not in (b"Z", b"X"):
            yield int(entry.name), int(fields[24 - 3]), int(fields[14 - 3]) + int(fields[15 - 3])


def group_rss(pgid: int) -> int:
    return sum(rss for _pid, rss, _t in _members(pgid)) * _PAGE


def _group_alive(pgid: int) -> bool:
    return next(_members(pgid), None) is not None


def usage_of(pgid: int) -> dict:
    """Memory and CPU time of a process group, from /proc (no cgroup to ask)."""
    if not pgid:
        return {"memory_bytes": 0, "cpu_s": 0.0}
    members = list(_members(pgid))
    ticks = os.sysconf("SC_CLK_TCK")
    return {"memory_bytes": sum(m[1] for m in members) * _PAGE,
            "cpu_s": round(sum(m[2] for m in members) / ticks, 3)}
