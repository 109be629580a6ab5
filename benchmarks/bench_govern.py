"""Governing: reload, pause/resume, eviction (docs/performance.md, "Governing").

- ``reload_one``: a realm of N running ``sleep`` programs, one of whose manifests changed:
  the ``Reload`` RPC (only that one restarts; checked). Baseline: what a manager restart
  costs to get the same realm on the new version: ordered shutdown, start, and the N
  programs started again.
- ``pause_resume``: a client's Connect waits on a paused provider; from the ``Resume`` call
  to the Connect's answer in the client (``programs/pause_probe.py``; both clocks are
  CLOCK_MONOTONIC). Baseline: one bare gRPC round trip (health Check) to the manager.
- ``evict_start``: ``--max-running K`` with K running, the start of a program of higher
  priority, which evicts one. Baseline: the same start with room.
"""

from __future__ import annotations

import time
from pathlib import Path

from _common import (Api, figure, log, read_bench_lines, summary, which_sleep, workdir,
                     write_manifest)
from component_manager.testing.process import ManagerProcess


def _sleep(priority: int = 0, stop_timeout: str = "5s") -> dict:
    return {"program": {"runner": "process", "binary": which_sleep(), "args": ["3600"],
                        "priority": priority, "stop_timeout": stop_timeout}}


def _manager(root: str, state: Path, *args: str) -> ManagerProcess:
    return ManagerProcess(state, root=root, args=args).start()


def reload_one(tmp: Path, n: int, samples: int) -> list[dict]:
    folder = tmp / "r"
    write_manifest(folder / "sleep.cml", _sleep())
    changing = folder / "changing.cml"
    write_manifest(changing, _sleep())
    children = [{"name": f"s{i}", "url": "sleep.cml"} for i in range(n - 1)] + [{"name": "x", "url": "changing.cml"}]
    root = write_manifest(folder / "realm.cml", {"children": children})
    names = [c["name"] for c in children]
    m = _manager(root, tmp / "rs")
    try:
        api = Api(m)
        _start_all(api, names)
        reloads, restarts = [], []
        for i in range(samples):
            write_manifest(changing, _sleep(stop_timeout=f"{6 + i % 2}s"))
            t0 = time.perf_counter()
            report = api.lifecycle.Reload(api.pb.InstanceRequest(moniker=""), timeout=300)
            reloads.append(time.perf_counter() - t0)
            if list(report.restarted) != ["/x"]:
                raise RuntimeError(f"reload restarted {list(report.restarted)}, not only /x")
        api.close()
        for i in range(max(1, samples // 2)):
            write_manifest(changing, _sleep(stop_timeout=f"{8 + i % 2}s"))
            t0 = time.perf_counter()
            m.terminate()
            m.start()
            api = Api(m)
            _start_all(api, names)
            restarts.append(time.perf_counter() - t0)
            api.close()
    finally:
        m.close()
    log(f"govern: reload of {n} with one changed {summary(reloads, 1e3)['median']:.1f} ms")
    return [figure("reload_one", f"`cm reload` of {n} running instances, one changed", "ms",
                   summary(reloads, 1e3),
                   [{"name": f"manager restart + start the {n} again", **summary(restarts, 1e3)}],
                   target="only the changed one restarts")]


def _start_all(api: Api, names: list[str]) -> None:
    futures = [api.lifecycle.Start.future(api.pb.InstanceRequest(moniker=f"/{name}"), timeout=300)
               for name in names]
    for future in futures:
        future.result()


def pause_resume(tmp: Path, samples: int) -> list[dict]:
    folder = tmp / "p"
    write_manifest(folder / "echo.cml", {
        "program": {"runner": "python", "module": "benchmarks.programs.sdk_echo"},
        "capabilities": [{"protocol": "bench.Echo"}],
        "expose": [{"protocol": "bench.Echo", "from": "self"}]})
    write_manifest(folder / "probe.cml", {
        "program": {"runner": "python", "module": "benchmarks.programs.pause_probe",
                    "args": [str(folder), str(samples)]},
        "use": [{"protocol": "bench.Echo"}]})
    root = write_manifest(folder / "realm.cml", {
        "children": [{"name": "echo", "url": "echo.cml"}, {"name": "probe", "url": "probe.cml"}],
        "offer": [{"protocol": "bench.Echo", "from": "#echo", "to": "#probe"}]})
    m = _manager(root, tmp / "ps")
    try:
        api = Api(m)
        request = api.pb.InstanceRequest(moniker="/echo")
        with m.events("/echo") as events:
            api.start("/probe")
            events.wait_for(type="capability_requested", moniker="/echo")  # its first connect
            events.wait_for(type="started", moniker="/echo")  # which started the provider
            resumed = []
            for i in range(samples):
                api.lifecycle.Pause(request, timeout=30)
                (folder / f"go-{i}").touch()
                events.wait_for(type="capability_requested", moniker="/echo")  # now it waits
                resumed.append(time.perf_counter())
                api.lifecycle.Resume(request, timeout=30)
        answered = _wait_bench(api, "/probe")["answered"]
        bare = _health_round_trips(m, 200)
        api.close()
    finally:
        m.close()
    latencies = [a - r for a, r in zip(answered, resumed)]
    return [figure("pause_resume", "resume -> a queued connect answered (in the client)", "ms",
                   summary(latencies, 1e3), [{"name": "one bare gRPC round trip (health Check)",
                                              **summary(bare, 1e3)}], target="a few round trips")]


def _wait_bench(api: Api, moniker: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = api.get(moniker)
        lines = read_bench_lines(info.log_path)
        if lines:
            return lines[-1]
        time.sleep(0.02)
    raise RuntimeError(f"{moniker} printed no BENCH line")


def _health_round_trips(m: ManagerProcess, n: int) -> list[float]:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with m.channel() as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
            times.append(time.perf_counter() - t0)
    return times


def evict_start(tmp: Path, k: int, samples: int) -> list[dict]:
    folder = tmp / "e"
    write_manifest(folder / "low.cml", _sleep(priority=0, stop_timeout="2s"))
    write_manifest(folder / "high.cml", _sleep(priority=1, stop_timeout="2s"))
    children = [{"name": f"s{i}", "url": "low.cml"} for i in range(k)] + [{"name": "u", "url": "high.cml"}]
    root = write_manifest(folder / "realm.cml", {"children": children})
    m = _manager(root, tmp / "es", "--max-running", str(k))
    evicting, with_room = [], []
    try:
        api = Api(m)
        _start_all(api, [f"s{i}" for i in range(k)])
        for i in range(samples):
            t0 = time.perf_counter()
            api.start("/u")  # evicts the least recently used sN (SIGTERM: sleep ends at once)
            evicting.append(time.perf_counter() - t0)
            api.stop("/u")
            evicted = [f"/s{j}" for j in range(k) if api.get(f"/s{j}").summary.execution_state == "stopped"]
            api.start(evicted[0])
            api.stop(evicted[0])  # room, for the baseline
            t0 = time.perf_counter()
            api.start("/u")
            with_room.append(time.perf_counter() - t0)
            api.stop("/u")
            api.start(evicted[0])
        api.close()
    finally:
        m.close()
    return [figure("evict_start", f"a start that evicts one (--max-running {k})", "ms",
                   summary(evicting, 1e3), [{"name": "the same start with room", **summary(with_room, 1e3)}],
                   target="+ one stop")]


def run(cfg) -> list[dict]:
    n, samples = (20, 3) if cfg.quick else (200, 7)
    with workdir("cm-gv") as tmp:
        figures = reload_one(tmp, n, samples)
        figures += pause_resume(tmp, 5 if cfg.quick else 30)
        figures += evict_start(tmp, 4 if cfg.quick else 20, 3 if cfg.quick else 15)
    return figures
