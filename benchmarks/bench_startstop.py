"""Start N / stop N: N dynamic children running ``sleep 3600`` (runner ``process``), created
in a collection, then started all at once the way a user starts many (one StartMany call
carrying the N monikers, as `cm start a b c` sends it, until its reply) and stopped the
same way (one StopMany; its reply comes once every program has been reaped and recorded),
R times. The same N as N concurrent Start / Stop calls (one per moniker, until every reply
is back) is a further baseline. Baselines on the same program, same N, same run: a bare
Popen loop (the start floor) and a bare SIGTERM + reap of those (the stop floor),
supervisord and circus (in benchmarks/.peers-venv; "not available" if they cannot be
installed). Also times ``cm show`` vs ``supervisorctl status`` / ``circusctl status``
(whole commands).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from _common import (BENCH, PY, Api, figure, log, manager, summary, timed, unavailable, which_sleep, workdir,
                     write_manifest)
from component_manager.testing.process import cm_executable

PEERS_VENV = BENCH / ".peers-venv"


def peers_python() -> tuple[Path | None, str]:
    """The peers venv's interpreter, creating it (pip install supervisor circus) if needed."""
    py = PEERS_VENV / "bin" / "python"
    try:
        if not py.exists():
            log("creating benchmarks/.peers-venv (pip install supervisor circus)")
            subprocess.run([PY, "-m", "venv", str(PEERS_VENV)], check=True, capture_output=True, timeout=300)
        for dist in ("supervisor", "circus"):
            probe = subprocess.run([str(py), "-c", f"import {dist}"], capture_output=True)
            if probe.returncode:
                subprocess.run([str(py), "-m", "pip", "install", "-q", dist], capture_output=True, timeout=600)
    except (subprocess.SubprocessError, OSError) as e:
        return None, f"cannot create the peers venv: {e}"
    return py, ""


def peer(kind: str, n: int, reps: int) -> dict:
    py, why = peers_python()
    if py is None:
        return {"error": why}
    if subprocess.run([str(py), "-c", f"import {kind}"], capture_output=True).returncode:
        return {"error": f"{kind} could not be installed into benchmarks/.peers-venv"}
    with workdir("cm-pe") as tmp:
        result = subprocess.run([str(py), str(BENCH / "peers_driver.py"), kind, str(n), str(reps), str(tmp),
                                 which_sleep()], capture_output=True, text=True, timeout=900)
    if result.returncode:
        return {"error": f"{kind} driver failed: {result.stderr.strip().splitlines()[-1:]}"}
    return json.loads(result.stdout)


def popen_floor(n: int, reps: int) -> tuple[list[float], list[float]]:
    argv = [which_sleep(), "3600"]
    start, stop = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        procs = [subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True) for _ in range(n)]
        start.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait()
        stop.append(time.perf_counter() - t0)
    return start, stop


def ours(tmp: Path, ns: list[int], reps: int) -> tuple[dict, dict]:
    child = write_manifest(tmp / "m" / "sleep.cml", {
        "program": {"runner": "process", "binary": which_sleep(), "args": ["3600"]}})
    root = write_manifest(tmp / "m" / "realm.cml", {"collections": [{"name": "bench", "durability": "persistent"}]})
    results, show = {}, {}
    with manager(root, tmp / "s") as m:
        api = Api(m)
        for n in ns:
            names = [f"n{n}-{i}" for i in range(n)]
            api.all_futures([api.create_future("/", "bench", name, child) for name in names])
            monikers = [f"/bench:{name}" for name in names]
            start, stop, start_rpcs, stop_rpcs = [], [], [], []
            request = api.pb.InstancesRequest(monikers=monikers)
            for rep in range(reps):  # the batch verb and N concurrent calls, in alternation
                dt, reply = timed(lambda: api.lifecycle.StartMany(request, timeout=120))
                start.append(dt)
                assert all(o.started.instance.execution_state == "running" for o in reply.outcomes), reply.outcomes[0]
                if rep == 0 and n == ns[0]:
                    show = cm_show_times(m.state_dir, monikers[0])
                dt, reply = timed(lambda: api.lifecycle.StopMany(request, timeout=120))
                stop.append(dt)
                assert all(o.stopped.was_running for o in reply.outcomes), reply.outcomes[0]
                dt, replies = timed(lambda: [f.result() for f in [
                    api.lifecycle.Start.future(api.pb.InstanceRequest(moniker=mk), timeout=120) for mk in monikers]])
                start_rpcs.append(dt)
                assert all(r.instance.execution_state == "running" for r in replies), replies[0]
                dt, replies = timed(lambda: [f.result() for f in [
                    api.lifecycle.Stop.future(api.pb.InstanceRequest(moniker=mk), timeout=120) for mk in monikers]])
                stop_rpcs.append(dt)
                assert all(r.was_running for r in replies)
            results[n] = (start, stop, start_rpcs, stop_rpcs)
            log(f"ours N={n}: start {summary(start, 1e3)['median']:.0f} ms, stop {summary(stop, 1e3)['median']:.0f} ms "
                f"(N concurrent calls: {summary(start_rpcs, 1e3)['median']:.0f} / {summary(stop_rpcs, 1e3)['median']:.0f})")
        api.close()
    return results, show


def cm_show_times(state_dir: Path, moniker: str, k: int = 10) -> dict:
    argv = [*cm_executable(), "--state-dir", str(state_dir)]
    out = {}
    for name, args in (("show", ["show", moniker]), ("list", ["list"])):
        times = []
        for _ in range(k):
            t0 = time.perf_counter()
            subprocess.run(argv + args, check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
        out[name] = times
    return out


def run(cfg) -> list[dict]:
    ns = [10] if cfg.quick else [50, 200]
    reps = 2 if cfg.quick else 5
    with workdir("cm-ss") as tmp:
        mine, show = ours(tmp, ns, reps)
    peers = {}
    for kind in ("supervisor", "circus"):
        for n in ns:
            log(f"{kind} N={n}")
            peers[(kind, n)] = peer(kind, n, reps)
    figures = []
    for n in ns:
        floor_start, floor_stop = popen_floor(n, reps)
        for verb, i, floor, floor_name, target in (
                ("start", 0, floor_start, "bare Popen loop (floor)", "<= 1.5x floor"),
                ("stop", 1, floor_stop, "bare SIGTERM + reap (floor)", "<= 2x floor")):
            baselines = [{"name": floor_name, **summary(floor, 1e3)},
                         {"name": f"ours, {n} concurrent {verb.title()} calls", **summary(mine[n][i + 2], 1e3)}]
            for kind, label in (("supervisor", "supervisord"), ("circus", "circus")):
                p = peers[(kind, n)]
                if "error" in p:
                    baselines.append(unavailable(label, p["error"]))
                else:
                    baselines.append({"name": f"{label} {p['version']}", **summary(p[f"{verb}_s"], 1e3)})
            fig = figure(f"{verb}_{n}", f"{verb} {n} dynamic children (sleep), one {verb.title()}Many call",
                         "ms", summary(mine[n][i], 1e3), baselines, target=target)
            fig["vs_floor"] = fig["baselines"][0]["ratio"]
            figures.append(fig)
    sv = peers[("supervisor", ns[0])]
    ci = peers[("circus", ns[0])]
    figures.append(figure(
        "cm_show", f"`cm show` whole command ({ns[0]} running)", "ms", summary(show["show"], 1e3),
        [unavailable("supervisorctl status", sv["error"]) if "error" in sv else
         {"name": f"supervisorctl status ({ns[0]} running)", **summary(sv["status_s"], 1e3)},
         unavailable("circusctl status", ci["error"]) if "error" in ci else
         {"name": f"circusctl status ({ns[0]} running)", **summary(ci["status_s"], 1e3)}],
        target="<= supervisorctl status", cm_list_ms=summary(show["list"], 1e3)))
    return figures
