"""Where the manager's time goes: py-spy records the manager process while it does one of
the benchmark workloads, and prints the hottest frames. Not part of run.py; needs py-spy
(``.venv/bin/pip install py-spy``: a profiling aid, deliberately not a project dependency).

    .venv/bin/python benchmarks/profile_manager.py start 200     # StartMany + StopMany of 200
    .venv/bin/python benchmarks/profile_manager.py start-rpcs 200  # 200 concurrent Starts + Stops
    .venv/bin/python benchmarks/profile_manager.py create 5000   # 5000 CreateChild calls
    .venv/bin/python benchmarks/profile_manager.py restart 10000 # start on a store of 10,000
    .venv/bin/python benchmarks/profile_manager.py connect 300   # the warm-connect probe
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Api, manager, which_sleep, workdir, write_manifest  # noqa: E402


def hot(collapsed: Path, top: int = 25) -> None:
    """Own time and inclusive time per function, from py-spy's collapsed stacks."""
    own, incl, total = Counter(), Counter(), 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    print(f"{total} samples\n-- own time --")
    for f, n in own.most_common(top):
        print(f"{100 * n / total:5.1f}%  {f}")
    print("-- inclusive --")
    for f, n in incl.most_common(top * 2):
        print(f"{100 * n / total:5.1f}%  {f}")


def profile_restart(spy: str, tmp: Path, root: str, out: Path) -> None:
    """The manager started under py-spy on the existing store, until it answers ListInstances."""
    import grpc

    from component_manager._generated import manager_pb2, manager_pb2_grpc

    state = tmp / "s"
    (state / "manager.sock").unlink(missing_ok=True)
    t0 = time.perf_counter()
    rec = subprocess.Popen([spy, "record", "-r", "500", "-f", "raw", "-o", str(out), "--", sys.executable, "-m",
                            "component_manager.cli.main", "--state-dir", str(state), "manager", "run", "--root", root],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            with grpc.insecure_channel(f"unix:{state / 'manager.sock'}") as ch:
                n = len(manager_pb2_grpc.RealmQueryStub(ch).ListInstances(manager_pb2.ListInstancesRequest(),
                                                                           timeout=5).instances)
                break
        except grpc.RpcError:
            time.sleep(0.02)
    print(f"restart under py-spy: {time.perf_counter() - t0:.2f} s to list {n} instances")
    child = int(Path(f"/proc/{rec.pid}/task/{rec.pid}/children").read_text().split()[0])
    import os
    import signal
    os.kill(child, signal.SIGTERM)
    rec.wait()
    hot(out)


def profile_connect(spy: str, n: int) -> None:
    import bench_lazy

    with workdir("cm-pr") as tmp:
        root = bench_lazy.realm(tmp / "m", n, 10)
        with manager(root, tmp / "s") as m:
            api = Api(m)
            api.start("/echo")
            out = tmp / "stacks.txt"
            rec = subprocess.Popen([spy, "record", "-r", "500", "-f", "raw", "-o", str(out), "-p",
                                    str(m.process.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
            bench_lazy.run_probe(m, api, "/probe_warm")
            rec.send_signal(2)
            rec.wait()
            hot(out)


def main() -> None:
    what, n = sys.argv[1], int(sys.argv[2])
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if what == "connect":
        return profile_connect(spy, n)
    with workdir("cm-pr") as tmp:
        child = write_manifest(tmp / "m" / "sleep.cml", {
            "program": {"runner": "process", "binary": which_sleep(), "args": ["3600"]}})
        root = write_manifest(tmp / "m" / "realm.cml", {"collections": [{"name": "b", "durability": "persistent"}]})
        with manager(root, tmp / "s") as m:
            api = Api(m)
            if what in ("start", "start-rpcs", "restart"):
                api.create_many("/", "b", [f"c{i}" for i in range(n)], child)
            out = tmp / "stacks.txt"
            if what == "restart":
                api.close()
                m.kill9()
                return profile_restart(spy, tmp, root, out)
            rec = subprocess.Popen([spy, "record", "-r", "500", "-f", "raw", "-o", str(out), "-p",
                                    str(m.process.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # py-spy attaches
            t0 = time.perf_counter()
            if what == "start":
                request = api.pb.InstancesRequest(monikers=[f"/b:c{i}" for i in range(n)])
                for verb in (api.lifecycle.StartMany, api.lifecycle.StopMany):
                    verb(request, timeout=120)
            elif what == "start-rpcs":
                mks = [f"/b:c{i}" for i in range(n)]
                for verb in (api.lifecycle.Start, api.lifecycle.Stop):
                    [f.result() for f in [verb.future(api.pb.InstanceRequest(moniker=mk), timeout=120) for mk in mks]]
            else:
                for i in range(n):
                    api.create("/", "b", f"c{i}", child)
            print(f"{what} {n}: {time.perf_counter() - t0:.2f} s")
            rec.send_signal(2)
            rec.wait()
            hot(out)


if __name__ == "__main__":
    main()
