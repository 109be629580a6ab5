"""Scale: N dynamic children (not started) of one ``sleep`` component in a persistent
collection, created through Realm.CreateChild.

- create: the first min(N, 1000) one at a time (latency of one create, median/p99), the
  rest pipelined (256 in flight): the amortized time per create; for scale, the cheapest
  round trip through the same channel (a health Check), one at a time, in the same run;
- manager RSS per instance: (VmRSS after - VmRSS before) / N, after one warm-up create (the
  JSON also splits it: RssAnon, the manager's own memory; RssFile, the store's pages it has
  mapped, which are the kernel's page cache);
- ``cm list --json``: the whole command, with N instances;
- restart: kill -9 the manager, start it on the same state directory, time until it says
  ready (it has loaded every instance from LMDB).

Baselines: none of the peers holds 10,000 configured programs comparably; the figures are
compared with the issue's targets (docs/performance.md, "Targets").
"""

from __future__ import annotations

import subprocess
import time

from _common import Api, figure, log, manager, rss_kib, summary, which_sleep, workdir, write_manifest
from component_manager.testing.process import cm_executable


def run(cfg) -> list[dict]:
    n = 1000 if cfg.quick else (100_000 if cfg.full else 10_000)
    with workdir("cm-sc") as tmp:
        child = write_manifest(tmp / "m" / "sleep.cml", {
            "program": {"runner": "process", "binary": which_sleep(), "args": ["3600"]}})
        root = write_manifest(tmp / "m" / "realm.cml", {"collections": [{"name": "scale", "durability": "persistent"}]})
        with manager(root, tmp / "s") as m:
            api = Api(m)
            api.create("/", "scale", "warmup", child)
            time.sleep(0.2)
            rss0 = rss_kib(m.process.pid)
            split0 = rss_split_kib(m.process.pid)
            one = []
            seq = min(n // 2, 1000)
            for i in range(seq):
                t0 = time.perf_counter()
                api.create("/", "scale", f"c{i}", child)
                one.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            window = []
            for i in range(seq, n):
                window.append(api.create_future("/", "scale", f"c{i}", child))
                if len(window) >= 256:
                    api.all_futures(window)
                    window = []
            api.all_futures(window)
            pipelined = (time.perf_counter() - t0) / max(1, n - seq) if n > seq else None
            time.sleep(0.2)
            rss1 = rss_kib(m.process.pid)
            split1 = rss_split_kib(m.process.pid)
            check = health_check(api)
            floor = []
            for _ in range(1000):
                t0 = time.perf_counter()
                check()
                floor.append(time.perf_counter() - t0)
            api.close()
            log(f"scale: {n} created; rss {rss0} -> {rss1} KiB")

            listing = []
            for _ in range(3):
                t0 = time.perf_counter()
                out = subprocess.run([*cm_executable(), "--state-dir", str(m.state_dir), "list", "--json"],
                                     check=True, capture_output=True)
                listing.append(time.perf_counter() - t0)
            listed = out.stdout.count(b'"moniker"')

            restarts = []
            rss_restart = None
            for _ in range(1 if cfg.quick else 3):
                m.kill9()
                t0 = time.perf_counter()
                m.start()
                restarts.append(time.perf_counter() - t0)
                rss_restart = rss_kib(m.process.pid)
            api = Api(m)
            recovered = len(api.query.ListInstances(api.pb.ListInstancesRequest(), timeout=120).instances)
            api.close()
            log(f"scale: restart {summary(restarts, 1e3)['median']:.0f} ms, recovered {recovered}")

    per_instance = (rss1 - rss0) * 1024 / n
    create_one = summary(one, 1e3)
    return [
        figure("scale_create", f"create one dynamic child (of {n})", "ms", create_one,
               [{"name": "pipelined, 256 in flight (amortized per create)",
                 "median": pipelined * 1e3 if pipelined else None},
                {"name": "round trip floor: health Check, one at a time", "median": summary(floor, 1e3)["median"]}],
               target="< 1 ms", note="ratios: one-at-a-time latency / amortized pipelined time, / the floor"),
        figure("scale_rss", f"manager RSS per instance ({n} instances)", "bytes",
               {"median": per_instance, "p99": None, "n": n}, [], target="< 1.5 KB (1536 bytes)",
               rss_before_kib=rss0, rss_after_kib=rss1, rss_after_restart_kib=rss_restart,
               per_instance_split={k: (split1[k] - split0[k]) * 1024 / n for k in split0}),
        figure("scale_list", f"`cm list --json` with {n + 2} instances", "ms", summary(listing, 1e3), [],
               target="< 1 s", listed=listed),
        figure("scale_restart", f"manager restart (kill -9, start, ready) with {n + 2} instances", "ms",
               summary(restarts, 1e3), [], target="< 1 s", recovered=recovered),
    ]


def rss_split_kib(pid: int) -> dict[str, int]:
    """RssAnon and RssFile of ``pid``, in KiB."""
    found = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                found[key] = int(value.split()[0])
    return found


def health_check(api: Api):
    """A health Check on ``api``'s channel: the manager's cheapest call, for the floor."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub, request = health_pb2_grpc.HealthStub(api.channel), health_pb2.HealthCheckRequest()
    return lambda: stub.Check(request, timeout=60)
