"""The ray runner: what running on a Ray node costs (docs/scale-out.md).

One local cluster (a head and 2 worker nodes of 1 CPU, on loopback), started once:

``ray_cold_start``
    Cold lazy start on a Ray node: a probe on the manager's host (``programs/probe.py
    cold``) times ``ctx.connect`` + the first answer from ``bench.Echo`` served on node1
    (``runner: "ray"``: an actor is placed, spawns the program, which serves on TCP). The
    baseline, in the same run, is the same probe against the same echo run locally
    (``runner: "python"``).
``ray_storage_move``
    Storage moved between nodes, per MB: an area of S MB on node1 packed by an actor there
    (``pack_areas``), the bytes through Ray, restored by an actor on node2 (``unpack_areas``),
    exactly as a start on another node does. Baseline: pack + unpack on one host
    (``bench_snapshots``' figure, measured here again).
``ray_manager_cost``
    The manager's own cost per running remote instance: its RSS and CPU time with K programs
    running on Ray nodes (an actor each; the manager awaits each one's end), minus the same
    with none, per instance; CPU over an idle period. Also noted: the manager's RSS with
    ``--ray`` and nothing running against one without (Ray's driver in the process).

    .venv/bin/python benchmarks/run.py --only ray
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Api, figure, log, rss_kib, summary, workdir, write_manifest  # noqa: E402

from bench_lazy import run_probe  # noqa: E402

KEYS = ["ray_cold_start", "ray_storage_move", "ray_manager_cost"]


def realm(folder: Path, k: int) -> str:
    echo = {"module": "benchmarks.programs.sdk_echo"}
    write_manifest(folder / "echo_local.cml", {"program": {"runner": "python", **echo},
                                               "capabilities": [{"protocol": "bench.Echo"}],
                                               "expose": [{"protocol": "bench.Echo", "from": "self"}]})
    write_manifest(folder / "echo_ray.cml", {"program": {"runner": "ray", "node": "node1", **echo},
                                             "capabilities": [{"protocol": "bench.Echo"}],
                                             "expose": [{"protocol": "bench.Echo", "from": "self"}]})
    probe = {"program": {"runner": "python", "module": "benchmarks.programs.probe", "args": ["cold", str(folder)]},
             "use": [{"protocol": "bench.Echo"}]}
    write_manifest(folder / "probe.cml", probe)
    write_manifest(folder / "idle_ray.cml", {"program": {"runner": "ray", **echo},
                                             "capabilities": [{"protocol": "bench.Echo"}]})
    children = [{"name": n, "url": f"{u}.cml"} for n, u in (("echo_local", "echo_local"), ("echo_ray", "echo_ray"),
                                                              ("probe_local", "probe"), ("probe_ray", "probe"))]
    children += [{"name": f"idle{i}", "url": "idle_ray.cml"} for i in range(k)]
    return write_manifest(folder / "realm.cml", {
        "children": children,
        "offer": [{"protocol": "bench.Echo", "from": "#echo_local", "to": "#probe_local"},
                  {"protocol": "bench.Echo", "from": "#echo_ray", "to": "#probe_ray"}],
    })


def cold_starts(api: Api, m, n: int) -> tuple[list[float], list[float]]:
    """Alternating: (remote, local) connect -> first answer, seconds; the first pair dropped."""
    remote, local = [], []
    for i in range(n + 1):
        for provider, probe, out in (("/echo_ray", "/probe_ray", remote), ("/echo_local", "/probe_local", local)):
            if api.get(provider).summary.execution_state != "stopped":
                api.stop(provider)
            sample = run_probe(m, api, probe)
            if i:
                out.append(sample["ours_s"])
        if i:
            log(f"cold {i}: ray {remote[-1] * 1e3:.0f} ms, local {local[-1] * 1e3:.0f} ms")
    return remote, local


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def manager_cost(api: Api, pid: int, k: int, idle_s: float) -> dict:
    """RSS (KiB) and CPU (% of a core) of the manager, with none and with ``k`` running on Ray."""
    def sample() -> tuple[int, float]:
        c0 = cpu_s(pid)
        time.sleep(idle_s)  # an idle period: what the manager spends on running instances
        return rss_kib(pid), (cpu_s(pid) - c0) / idle_s * 100

    rss0, cpu0 = sample()
    for i in range(k):
        api.start(f"/idle{i}")
    rss1, cpu1 = sample()
    for i in range(k):
        api.stop(f"/idle{i}")
    return {"rss_kib_per": (rss1 - rss0) / k, "cpu_pct_per": (cpu1 - cpu0) / k, "rss0": rss0}


def storage_moves(cluster_address: str, tmp: Path, sizes: list[int], reps: int) -> dict[int, list[float]]:
    """S MB packed on node1, restored on node2, through Ray: seconds per MB of blob."""
    import ray

    from bench_snapshots import make_area
    from component_manager.runners.ray_actor import ProgramActor

    ray.init(address=cluster_address, namespace="cm-bench", logging_level="WARNING", log_to_driver=False,
             configure_logging=False)
    try:
        areas = str(tmp / "nodes" / "{node}")
        actor = ray.remote(ProgramActor)
        out = {}
        for mb in sizes:
            iid = f"{mb:064x}"
            src = actor.options(label_selector={"cm-node": "node1"}, num_cpus=0).remote(iid, areas)
            dst = actor.options(label_selector={"cm-node": "node2"}, num_cpus=0).remote(iid, areas)
            (tmp / "nodes" / "node1" / iid / "data").mkdir(parents=True)
            make_area(tmp / "nodes" / "node1" / iid / "data", mb)
            ray.get([src.node.remote(), dst.node.remote()])
            per = []
            for _ in range(reps):
                t0 = time.perf_counter()
                blob = ray.get(src.pack.remote(["data"]))
                ray.get(dst.restore.remote(blob, ["data"]))
                per.append((time.perf_counter() - t0) / (len(blob) / 1e6))
            log(f"storage move {mb} MB (blob {len(blob) / 1e6:.1f} MB): {summary(per, 1e3)['median']:.1f} ms/MB")
            out[mb] = per
            ray.kill(src)
            ray.kill(dst)
        return out
    finally:
        ray.shutdown()


def local_pack_unpack(sizes: list[int], reps: int) -> dict[int, list[float]]:
    from bench_snapshots import per_mb

    return {mb: per_mb(mb, reps)[0] for mb in sizes}


def run(cfg) -> list[dict]:
    from component_manager.runners.ray_runner import ray_available

    why = ray_available()
    if why:
        return [figure(key, key, "", None, [], skipped=why) for key in KEYS]
    from component_manager.runners.ray_cluster import LocalCluster, local_env
    from component_manager.testing.process import ManagerProcess

    n_cold, k, idle_s = (3, 3, 2.0) if cfg.quick else (10, 8, 5.0)
    sizes, reps = ([1], 2) if cfg.quick else ([1, 10, 50], 3)
    with workdir("cm-ray") as tmp:
        env = local_env(str(tmp / "ray"))
        os.environ.update(env)  # this process is a driver too (storage moves), on loopback
        cluster = LocalCluster.start(2, tmp / "cluster.log", env=env)
        try:
            root = realm(tmp / "m", k)
            m = ManagerProcess(tmp / "s", root=root, args=("--ray", cluster.address)).start()
            try:
                api = Api(m)
                remote, local = cold_starts(api, m, n_cold)
                cost = manager_cost(api, m.process.pid, k, idle_s)
                api.close()
            finally:
                m.close()
            plain = ManagerProcess(tmp / "s2", root=root).start()
            try:
                rss_without = rss_kib(plain.process.pid)
            finally:
                plain.close()
            moves = storage_moves(cluster.address, tmp / "areas", sizes, reps)
        finally:
            cluster.close()
    here = local_pack_unpack(sizes, reps)
    biggest = sizes[-1]
    return [
        figure("ray_cold_start", "cold lazy start on a Ray node: connect -> first answer", "ms",
               summary(remote, 1e3), [{"name": "the same echo, python runner, on the manager's host",
                                       **summary(local, 1e3)}],
               target="(none given)", note="probe on the manager's host; provider on node1 (actor + keeper + program)"),
        figure("ray_storage_move", f"storage moved node1 -> node2 through Ray, {biggest} MB area, per MB", "ms/MB",
               summary(moves[biggest], 1e3), [{"name": "pack + unpack on one host", **summary(here[biggest], 1e3)}],
               target="moves 50 MB in < 2 s",
               note="; ".join(f"{mb} MB: {summary(moves[mb], 1e3)['median']:.1f} ms/MB" for mb in sizes)),
        figure("ray_manager_cost", "manager RSS per running remote instance", "KiB",
               {"median": cost["rss_kib_per"], "p99": None, "n": 1}, [],
               target="(none given)",
               note=(f"CPU {cost['cpu_pct_per']:.2f}% of a core per instance (idle, {k} running); "
                     f"manager RSS with --ray, none running: {cost['rss0'] / 1024:.0f} MiB, "
                     f"without --ray: {rss_without / 1024:.0f} MiB")),
    ]


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    for f in run(parser.parse_args()):
        print(f)
