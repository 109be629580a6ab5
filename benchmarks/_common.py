"""What every benchmark script shares: statistics, a figure record, throwaway managers on
generated manifests, gRPC stubs to the manager, and the process measures (RSS).

A figure is a dict (see ``figure``): our median (and p99 where it applies), one or more
baselines measured in the same run, the ratio ours / baseline, and the target from issue 6.
``run.py`` collects them into one table and ``benchmarks/results/latest.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"

# Generated manifests live in temp dirs; their python programs (benchmarks.programs.*) are
# found through PYTHONPATH, which the manager passes on to the programs it starts. The
# inproc entries are imported by the manager itself, so it needs the path too.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
_pp = os.environ.get("PYTHONPATH", "")
if str(ROOT) not in _pp.split(os.pathsep):
    os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + _pp if _pp else "")

from component_manager.testing.process import ManagerProcess  # noqa: E402

PY = sys.executable


# ---- statistics ----------------------------------------------------------------------------

def median(xs) -> float | None:
    return statistics.median(xs) if xs else None


def p99(xs) -> float | None:
    """Nearest-rank 99th percentile (with few samples, the maximum)."""
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(0.99 * len(s) + 0.5)) - 1))]


def summary(xs, scale: float = 1.0) -> dict:
    """median / p99 / min / n of samples, each multiplied by ``scale`` (e.g. 1e3 for ms)."""
    xs = [x * scale for x in xs]
    return {"median": median(xs), "p99": p99(xs), "min": min(xs) if xs else None, "n": len(xs)}


def figure(key: str, title: str, unit: str, ours: dict | None, baselines: list[dict],
           target: str = "", note: str = "", **extra) -> dict:
    """One figure. ``ours``: a ``summary``; each baseline: {"name", "median", ...} or
    {"name", "available": False, "why"}. ``ratio`` is ours' median / the baseline's median."""
    for b in baselines:
        b.setdefault("available", b.get("median") is not None)
        if ours and ours.get("median") is not None and b.get("median"):
            b["ratio"] = ours["median"] / b["median"]
        else:
            b["ratio"] = None
    return {"key": key, "title": title, "unit": unit, "ours": ours, "baselines": baselines,
            "target": target, "note": note, **extra}


def unavailable(name: str, why: str) -> dict:
    return {"name": name, "median": None, "available": False, "why": why}


# ---- throwaway managers --------------------------------------------------------------------

@contextlib.contextmanager
def workdir(prefix: str = "cm-"):
    """A short temp dir (Unix socket paths hold 108 bytes), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def write_manifest(path: Path, manifest: dict) -> str:
    """Write a .cml (JSON is JSON5) and return its absolute path (a URL the resolver takes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2))
    return str(path.resolve())


@contextlib.contextmanager
def manager(root_url: str, state_dir: Path):
    """A real manager (``cm manager run``) on ``state_dir``, stopped (SIGTERM) afterwards."""
    m = ManagerProcess(state_dir, root=root_url)
    m.start()
    try:
        yield m
    finally:
        m.close()


class Api:
    """Sync stubs to a manager's control API (one channel)."""

    def __init__(self, m: ManagerProcess):
        import grpc

        from component_manager._generated import manager_pb2, manager_pb2_grpc

        self.pb = manager_pb2
        self.grpc = grpc
        self.channel = m.channel()
        self.lifecycle = manager_pb2_grpc.LifecycleControllerStub(self.channel)
        self.realm = manager_pb2_grpc.RealmStub(self.channel)
        self.query = manager_pb2_grpc.RealmQueryStub(self.channel)

    def start(self, moniker: str, timeout: float = 60):
        return self.lifecycle.Start(self.pb.InstanceRequest(moniker=moniker), timeout=timeout)

    def stop(self, moniker: str, timeout: float = 60):
        return self.lifecycle.Stop(self.pb.InstanceRequest(moniker=moniker), timeout=timeout)

    def get(self, moniker: str):
        return self.query.GetInstance(self.pb.InstanceRequest(moniker=moniker), timeout=60)

    def create(self, parent: str, collection: str, name: str, url: str, start: bool = False):
        return self.realm.CreateChild(self.pb.CreateChildRequest(
            parent=parent, collection=collection, name=name, url=url, start=start), timeout=60)

    def create_future(self, parent: str, collection: str, name: str, url: str):
        return self.realm.CreateChild.future(self.pb.CreateChildRequest(
            parent=parent, collection=collection, name=name, url=url), timeout=120)

    def create_many(self, parent: str, collection: str, names, url: str, window: int = 256) -> None:
        """CreateChild for every name, ``window`` calls in flight at a time."""
        pending = []
        for name in names:
            pending.append(self.create_future(parent, collection, name, url))
            if len(pending) >= window:
                self.all_futures(pending)
                pending = []
        self.all_futures(pending)

    def all_futures(self, futures) -> None:
        for f in futures:
            f.result()

    def close(self) -> None:
        self.channel.close()


def read_bench_lines(log_path: str | Path, skip: int = 0) -> list[dict]:
    """The ``BENCH {json}`` lines a probe program printed to its log, after the first ``skip``."""
    path = Path(log_path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("BENCH "):
            out.append(json.loads(line[6:]))
    return out[skip:]


# ---- process measures ----------------------------------------------------------------------

def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t0, result


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def which_sleep() -> str:
    return shutil.which("sleep") or "/bin/sleep"
