"""Ordered shutdown: N running instances in a tree of depth 5 (dynamic children in a
``kids`` collection at every level, filled breadth first with the smallest fan-out that fits
N in 5 levels), then SIGTERM to the manager, timed until it has exited (every instance
stopped in shutdown order, the manager's own services last).

Two programs: ``inproc`` (``benchmarks.programs.inproc_idle:idle``, a coroutine in the
manager's loop: the cost of the ordering machinery alone) and ``process`` (``sleep 3600``,
a real process group per instance: SIGTERM and reap included). Baselines, same run: the
same manager with the same tree created but nothing running (fixed cost of a manager
shutdown), and for ``process`` a bare SIGTERM-and-reap of N ``sleep`` processes (floor).
"""

from __future__ import annotations

import time
from pathlib import Path

from _common import Api, figure, log, manager, summary, which_sleep, workdir, write_manifest
from bench_startstop import popen_floor

DEPTH = 5


def tree(n: int, depth: int = DEPTH) -> list[list[str]]:
    """Monikers by level (level 1 = children of the root), breadth first."""
    fan = 2
    while sum(fan ** k for k in range(1, depth + 1)) < n:
        fan += 1
    levels, parents, made = [], ["/"], 0
    for _ in range(depth):
        level = []
        for parent in parents:
            for j in range(fan):
                if made == n:
                    break
                base = "" if parent == "/" else parent
                level.append(f"{base}/kids:n{made}")
                made += 1
        levels.append(level)
        parents = level
    return [lv for lv in levels if lv]


def build(tmp: Path, program: dict) -> str:
    write_manifest(tmp / "node.cml", {"program": program,
                                            "collections": [{"name": "kids", "durability": "persistent"}]})
    return write_manifest(tmp / "realm.cml", {"collections": [{"name": "kids", "durability": "persistent"}]})


def one(tmp: Path, program: dict, n: int, start: bool) -> float:
    root = build(tmp / "m", program)
    node = str((tmp / "m" / "node.cml").resolve())
    levels = tree(n)
    m_ctx = manager(root, tmp / "s")
    m = m_ctx.__enter__()
    try:
        api = Api(m)
        for level in levels:
            futures = []
            for moniker in level:
                parent, _, leaf = moniker.rpartition("/")
                collection, _, name = leaf.partition(":")
                futures.append(api.create_future(parent or "/", collection, name, node))
            api.all_futures(futures)
        if start:
            for level in levels:
                replies = [f.result() for f in [api.lifecycle.Start.future(api.pb.InstanceRequest(moniker=mk),
                                                                           timeout=120) for mk in level]]
                assert all(r.instance.execution_state == "running" for r in replies)
        running = sum(1 for s in api.query.ListInstances(api.pb.ListInstancesRequest(), timeout=60).instances
                      if s.execution_state == "running")
        api.close()
        t0 = time.perf_counter()
        code = m.terminate(timeout=300)
        elapsed = time.perf_counter() - t0
        if code != 0:
            raise RuntimeError(f"manager exited {code} on SIGTERM; log: {m.log_text()[-2000:]}")
        log(f"shutdown {program['runner']} n={n} start={start}: {running} running, {elapsed * 1e3:.0f} ms")
        return elapsed
    finally:
        m_ctx.__exit__(None, None, None)


def run(cfg) -> list[dict]:
    n = 50 if cfg.quick else 500
    reps = 1 if cfg.quick else 3
    figures = []
    programs = (("inproc", {"runner": "inproc", "entry": "benchmarks.programs.inproc_idle:idle"}),
                ("process", {"runner": "process", "binary": which_sleep(), "args": ["3600"]}))
    for label, program in programs:
        ran, idle = [], []
        for _ in range(reps):
            with workdir("cm-sd") as tmp:
                ran.append(one(tmp, program, n, start=True))
            with workdir("cm-sd") as tmp:
                idle.append(one(tmp, program, n, start=False))
        baselines = [{"name": f"same manager, same {n} instances, none running", **summary(idle, 1e3)}]
        if label == "process":
            baselines.append({"name": f"bare SIGTERM + reap of {n} sleeps (floor)",
                              **summary(popen_floor(n, reps)[1], 1e3)})
        figures.append(figure(f"shutdown_{label}", f"ordered shutdown, {n} running ({label}), tree depth {DEPTH}",
                              "ms", summary(ran, 1e3), baselines, target="(none given)",
                              note="SIGTERM to the manager -> manager exited"))
    return figures
