"""Kill -9 churn: create/start/stop/destroy counters while the manager is killed with -9 and
restarted, and check after every restart that nothing acknowledged was lost, nothing runs
twice, nothing runs unowned and no state went back.

Used by the test suite (a short run) and by ``tools/soak.py`` (as long as you like)::

    report = churn(state_dir, kills=5)
    report.problems()     # [] when all is well
    print(report)         # kills=5 ops=212 lost=0 orphans=0 doubles=0 regressions=0

Each worker thread owns its own instance names, so the operations on one name happen one
after another and an acknowledged operation (``cm`` exited 0) says what must be true after
any later restart: created -> listed, destroyed -> not listed. An operation in flight at a
kill may or may not have happened; either is fine. What is checked after each restart:

- lost: an acknowledged create missing, or an acknowledged destroy undone;
- doubles: two live processes using one instance's storage;
- orphans: a process using the storage of an instance that is not listed as running, or
  storage left for an instance that is not listed;
- regressions: a counter that counts a start it already counted (its state went back).
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .process import ManagerProcess

__all__ = ["ChurnReport", "churn", "programs_by_storage"]

COUNTER_URL = "counter/counter.cml"
COLLECTION = "/workers"


@dataclass
class ChurnReport:
    kills: int = 0
    ops: int = 0
    lost: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    doubles: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return [*self.lost, *self.orphans, *self.doubles, *self.regressions]

    def __str__(self) -> str:
        return (f"kills={self.kills} ops={self.ops} lost={len(self.lost)} orphans={len(self.orphans)} "
                f"doubles={len(self.doubles)} regressions={len(self.regressions)}")


def programs_by_storage(storage_root: Path) -> dict[str, set[int]]:
    """Instance id -> live processes that map an LMDB under its storage folder."""
    prefix = str(storage_root) + "/"
    found: dict[str, set[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/maps") as f:
                maps = f.read()
            with open(f"/proc/{entry.name}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    continue
        except OSError:
            continue
        for path in set(re.findall(re.escape(prefix) + r"([0-9a-f]+)/\S*data\.mdb", maps)):
            found.setdefault(path, set()).add(int(entry.name))
    return found


class _Worker(threading.Thread):
    """Random operations on its own names; records what each last one left certain."""

    def __init__(self, manager: ManagerProcess, index: int, names: int, seed: float, stop: threading.Event):
        super().__init__(daemon=True)
        self.manager = manager
        self.names = [f"{COLLECTION}:w{index}n{n}" for n in range(names)]
        self.random = random.Random(seed)
        self.stop_event = stop
        self.outcome: dict[str, bool | None] = {}  # moniker -> exists (None: not known)
        self.ops = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            name = self.random.choice(self.names)
            verb = self.random.choice(("create", "start", "start", "stop", "destroy"))
            args = (verb, name, COUNTER_URL) if verb == "create" else (verb, name)
            self.outcome[name] = None  # in flight: either outcome is fine
            try:
                done = self.manager.cm(*args, check=False, timeout=60)
            except Exception:  # noqa: BLE001 - the manager was killed under it
                continue
            self.ops += 1
            if done.returncode == 0:
                self.outcome[name] = verb != "destroy"  # created, started or stopped: it exists


def churn(state_dir: Path, kills: int, workers: int = 3, names: int = 3, seed: int = 0,
          min_run_s: float = 0.3, max_run_s: float = 1.5, log=print) -> ChurnReport:
    """Run ``kills`` rounds of churn, each ended by a kill -9 of the manager; check after
    each restart. Returns the report."""
    rng = random.Random(seed)
    report = ChurnReport()
    manager = ManagerProcess(state_dir).start()
    expected: dict[str, bool] = {}
    checked: dict[str, int] = {}  # instance id -> count lines already checked
    try:
        for round_number in range(kills):
            stop = threading.Event()
            pool = [_Worker(manager, i, names, rng.random(), stop) for i in range(workers)]
            for worker in pool:
                worker.start()
            time.sleep(rng.uniform(min_run_s, max_run_s))  # the churn's length, not a sync
            manager.kill9()
            stop.set()
            for worker in pool:
                worker.join(timeout=120)
                report.ops += worker.ops
                for name, exists in worker.outcome.items():
                    if exists is None:
                        expected.pop(name, None)
                    else:
                        expected[name] = exists
            report.kills += 1
            manager.start()
            _check(manager, expected, checked, report, round_number)
            log(f"round {round_number + 1}/{kills}: {report}")
    finally:
        manager.close()
    return report


def _check(manager: ManagerProcess, expected: dict[str, bool], checked: dict[str, int],
           report: ChurnReport, round_number: int) -> None:
    rows = {r["moniker"]: r for r in manager.cm_json("list")}
    where = f"after kill {round_number + 1}"
    for name, exists in expected.items():
        if exists != (name in rows):
            report.lost.append(f"{where}: {name} should {'exist' if exists else 'be gone'}")
    by_id = {r["instance_id"]: r for r in rows.values()}
    storage_root = manager.state_dir / "storage"
    for instance_id, pids in programs_by_storage(storage_root).items():
        row = by_id.get(instance_id)
        if len(pids) > 1:
            report.doubles.append(f"{where}: {len(pids)} copies of {row['moniker'] if row else instance_id}")
        if row is None or row.get("pid") not in pids:
            report.orphans.append(f"{where}: pid {sorted(pids)} uses the storage of "
                                  f"{row['moniker'] if row else 'no listed instance'} ({instance_id[:12]})")
    if storage_root.is_dir():
        for entry in storage_root.iterdir():
            if entry.is_dir() and entry.name not in by_id:
                report.orphans.append(f"{where}: storage {entry.name[:12]} has no instance")
    for row in rows.values():
        _check_counts(manager, row, checked, report, where)


def _check_counts(manager: ManagerProcess, row: dict, checked: dict[str, int],
                  report: ChurnReport, where: str) -> None:
    """A counter's log says count=1, 2, ... for one instance id: a count that does not go
    up is a start counted twice or state that went back. ``checked``: lines seen before."""
    log_path = manager.state_dir / "logs" / f"{row['instance_id']}.log"
    try:
        counts = [int(n) for n in re.findall(r"count=(\d+)", log_path.read_text())]
    except OSError:
        return
    start = max(0, checked.get(row["instance_id"], 0) - 1)
    for before, after in zip(counts[start:], counts[start + 1:]):
        if after <= before:
            report.regressions.append(f"{where}: {row['moniker']} counted {before} then {after}")
    checked[row["instance_id"]] = len(counts)
