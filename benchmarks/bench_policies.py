"""Governing policies: what keeping things running costs.

``crash_restart``: an SDK provider (``programs/sdk_echo.py``, python runner, zygote) with
``restart: { policy: "on_failure", initial_delay: "0s" }`` is SIGSEGV'd from here; the figure
is crash -> started and serving again (the ``started`` event's timestamp, stamped when the
program reported serving, minus the moment of the kill). Baseline in the same run:
supervisord ``autorestart=true`` on a program with the same imports (``crash_target.py``),
crash -> RUNNING again (``startsecs=0``: RUNNING means spawned, not serving).

``probe_cost``: N running instances with ``health: { grpc: true, period: "1s" }``; the figure
is the manager's CPU (user + system, % of one core) over a window. The programs are local
components (``testing.LocalComponentRunner``: SDK contexts in this benchmark process, one
grpc server each), so N of them fit in memory and only the manager's side is measured.
Baseline in the same run: the same N instances without a probe.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from _common import (BENCH, PY, Api, figure, log, manager, summary, unavailable, workdir,
                     write_manifest)
from bench_startstop import peers_python

TICKS = os.sysconf("SC_CLK_TCK")


# ---- crash -> restarted ------------------------------------------------------------------

def crash_restart(reps: int) -> list[float]:
    with workdir("cm-cr") as tmp:
        child = write_manifest(tmp / "m" / "echo.cml", {
            "program": {"runner": "python", "module": "benchmarks.programs.sdk_echo",
                        "restart": {"policy": "on_failure", "initial_delay": "0s",
                                    "max_restarts": 1_000_000, "within": "1s"}},
            "capabilities": [{"protocol": "bench.Echo"}],
        })
        root = write_manifest(tmp / "m" / "realm.cml", {"children": [{"name": "echo", "url": child}]})
        with manager(root, tmp / "s") as m, m.events("/echo") as events:
            api = Api(m)
            api.start("/echo")
            times = []
            for _ in range(reps + 1):  # the first warms the zygote's forked path
                pid = api.get("/echo").summary.pid
                t0 = time.time()
                os.killpg(pid, signal.SIGSEGV)
                up = events.wait_for(lambda e: e["type"] == "started" and e["reason"].startswith("restart after"),
                                     timeout=60)
                times.append(up["timestamp"] - t0)
                time.sleep(0.05)
            api.close()
    return times[1:]


def supervisor_restart(reps: int) -> dict:
    py, why = peers_python()
    if py is None:
        return {"error": why}
    if subprocess.run([str(py), "-c", "import supervisor"], capture_output=True).returncode:
        return {"error": "supervisor could not be installed into benchmarks/.peers-venv"}
    with workdir("cm-sc") as tmp:
        result = subprocess.run([str(py), str(BENCH / "peers_driver.py"), "supervisor_crash", str(reps), str(tmp),
                                 PY, "-m", "benchmarks.programs.crash_target"],
                                capture_output=True, text=True, timeout=600)
    if result.returncode:
        return {"error": f"supervisor driver failed: {result.stderr.strip().splitlines()[-1:]}"}
    return json.loads(result.stdout)


# ---- probe cost --------------------------------------------------------------------------

async def _serve_echo(ctx) -> None:
    async def echo(request: bytes, context) -> bytes:
        return request

    ctx.serve_unary("bench.Echo", "Echo", echo)
    await ctx.serving()
    await ctx.wait_for_stop()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


async def probe_cost(n: int, window: float) -> tuple[float, float, int]:
    """(manager CPU % with probes, without, probes sent per second)."""
    from component_manager.testing import LocalComponentRunner

    with workdir("cm-pc") as tmp:
        launcher = LocalComponentRunner(tmp / "l.sock")
        launcher.mains["echo"] = _serve_echo
        await launcher.start()
        program = {"runner": "local", "entry": launcher.entry_prefix + "echo", "idle_timeout": "0s"}
        urls = {}
        for kind, extra in (("plain", {}), ("probed", {"health": {"grpc": True, "period": "1s", "initial_delay": "0s"}})):
            urls[kind] = write_manifest(tmp / "m" / f"{kind}.cml", {
                "program": {**program, **extra}, "capabilities": [{"protocol": "bench.Echo"}]})
        root = write_manifest(tmp / "m" / "realm.cml", {"collections": [{"name": "c", "durability": "transient"}]})
        try:
            with manager(root, tmp / "s") as m:
                pid = m.process.pid
                api = Api(m)
                cost = {}
                for kind in ("plain", "probed"):
                    cost[kind] = await _measure(api, pid, kind, urls[kind], n, window)
                api.close()
        finally:
            await launcher.close()
    return cost["probed"], cost["plain"], n


async def _measure(api: Api, pid: int, kind: str, url: str, n: int, window: float) -> float:
    names = [f"{kind}-{i}" for i in range(n)]
    await asyncio.to_thread(api.create_many, "/", "c", names, url)
    await asyncio.to_thread(_start_all, api, [f"/c:{x}" for x in names])
    await asyncio.sleep(2.0)  # the start burst and the first probes settle
    c0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(window)
    percent = 100 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
    log(f"probe cost: {n} {kind} instances, manager CPU {percent:.2f}% of a core")
    await asyncio.to_thread(_stop_all, api, [f"/c:{x}" for x in names])
    return percent


def _start_all(api: Api, monikers: list[str], window: int = 64) -> None:  # the launcher backlog
    for i in range(0, len(monikers), window):
        futures = [api.lifecycle.Start.future(api.pb.InstanceRequest(moniker=mk), timeout=300)
                   for mk in monikers[i:i + window]]
        api.all_futures(futures)


def _stop_all(api: Api, monikers: list[str]) -> None:
    api.all_futures([api.lifecycle.Stop.future(api.pb.InstanceRequest(moniker=mk), timeout=300)
                     for mk in monikers])


# ---- figures -----------------------------------------------------------------------------

def run(cfg) -> list[dict]:
    reps = 5 if cfg.quick else 30
    mine = crash_restart(reps)
    log(f"crash -> restarted and serving: median {summary(mine, 1e3)['median']:.1f} ms")
    sv = supervisor_restart(reps)
    base = (unavailable("supervisord autorestart", sv["error"]) if "error" in sv else
            {"name": f"supervisord {sv['version']} autorestart (crash -> RUNNING)", **summary(sv["restart_s"], 1e3)})
    n, window = (200, 4.0) if cfg.quick else (1000, 30.0)
    probed, plain, n = asyncio.run(probe_cost(n, window))
    return [
        figure("crash_restart", "crash -> restarted and serving (initial_delay 0s)", "ms",
               summary(mine, 1e3), [base], target="p50 < 25 ms"),
        figure("probe_cost", f"manager CPU, {n} instances probed every 1 s (grpc), {window:g} s window",
               "% of a core", {"median": probed, "p99": None, "min": probed, "n": 1},
               [{"name": f"the same {n} instances, no probe", "median": plain}], target="< 5%",
               note="programs are local components (SDK in the benchmark process): the figure is the manager's side"),
    ]
