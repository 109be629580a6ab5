"""A lean local Ray cluster for ``cm manager run --ray local:N``, in a process of its own.

Ray starts its daemons with ``Popen(preexec_fn=...)``: a fork of the calling process. The
manager must never fork (``isolation.py``), so it does not start them itself: it spawns this
module (a plain spawn), which starts the cluster and prints one JSON line::

    {"address": "127.0.0.1:6379", "nodes": ["head", "node1", "node2"]}

then waits on its stdin (tests may send ``add NAME {"resource": 1}`` and ``remove NAME``, a
lost node, one JSON line back for each). EOF (the manager closed it, or died) shuts the cluster down; the
daemons die with this process too (Ray's own fate sharing). A head node with no CPU and
``N`` worker nodes of 1 CPU each, named by their ``cm-node`` label; every node on
127.0.0.1, a small object store, no dashboard, health checks tuned so a lost node is known
in about 5 seconds. The caller sets ``RAY_TMPDIR`` and the environment of ``local_env``.

    python -m component_manager.runners.ray_cluster WORKERS
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["OBJECT_STORE_BYTES", "LocalCluster", "local_env", "main"]

START_TIMEOUT_S = 120.0

OBJECT_STORE_BYTES = 80 * 1024 * 1024  # Ray's floor is ~75 MiB
# A lost node is known in ~5 s (Ray's default: ~15-30 s); not quicker, so that a node slow to
# answer on a loaded 2-core machine is not declared lost.
_HEALTH = {"health_check_period_ms": 1000, "health_check_failure_threshold": 5,
           "health_check_timeout_ms": 3000}


def local_env(tmp_dir: str) -> dict[str, str]:
    """What a loopback-only cluster and its drivers need in their environment (set before
    ``import ray``): its folders in ``tmp_dir``, no auth token in $HOME, and Ray taking
    127.0.0.1 as this host's address (else it resolves loopback to the main interface)."""
    return {"RAY_TMPDIR": tmp_dir, "RAY_AUTH_MODE": "disabled",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


class LocalCluster:
    """The cluster process, seen from whoever spawned it (the manager, from a worker thread;
    a test session; a benchmark). Blocking calls.

    Example::

        cluster = LocalCluster.start(2, log_path, env=local_env("/tmp/cm-ray-x"))
        cluster.address                       # "127.0.0.1:6379"
        cluster.command("remove node2")       # {"removed": "node2"}: a lost node
        cluster.close()
    """

    def __init__(self, process: subprocess.Popen, address: str, nodes: list[str]):
        self.process = process
        self.address = address
        self.nodes = nodes

    @classmethod
    def start(cls, workers: int, log_path: Path, env: dict[str, str] | None = None) -> LocalCluster:
        """Spawn it and wait until it is up; raises RuntimeError (naming the log) if it is not."""
        log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "component_manager.runners.ray_cluster", str(workers)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, start_new_session=True,
                env={**os.environ, **(env or {})})
        cluster = cls(process, "", [])
        try:
            hello = json.loads(cluster._read_line(START_TIMEOUT_S))
            cluster.address, cluster.nodes = hello["address"], hello["nodes"]
        except (ValueError, KeyError, TypeError):
            cluster.close()
            raise RuntimeError(f"the local Ray cluster did not start (see {log_path})") from None
        return cluster

    def command(self, line: str, timeout: float = 60.0) -> dict:
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()
        return json.loads(self._read_line(timeout) or b"{}")

    def _read_line(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        line = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.process.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n") and time.monotonic() < deadline:
                if sel.select(deadline - time.monotonic()):
                    chunk = os.read(self.process.stdout.fileno(), 1)
                    if not chunk:
                        break
                    line += chunk
        return line

    def close(self) -> None:
        """Close its stdin (it shuts the cluster down) and wait; kill it if it hangs."""
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


def main(argv: list[str]) -> int:
    workers = int(argv[1])
    os.makedirs(os.path.join(os.environ["RAY_TMPDIR"], "ray"), exist_ok=True)
    from ray.cluster_utils import Cluster

    common = {"node_ip_address": "127.0.0.1", "object_store_memory": OBJECT_STORE_BYTES,
              "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args={
        **common, "num_cpus": 0, "labels": {"cm-node": "head"}, "_system_config": _HEALTH})
    names = ["head"]
    nodes = {}
    for i in range(1, workers + 1):
        names.append(f"node{i}")
        nodes[names[-1]] = cluster.add_node(num_cpus=1, labels={"cm-node": names[-1]}, node_ip_address="127.0.0.1",
                                            object_store_memory=OBJECT_STORE_BYTES)
    print(json.dumps({"address": cluster.address, "nodes": names}), flush=True)
    try:
        for line in sys.stdin:  # tests: "add NAME {resources}" and "remove NAME" (a lost node)
            print(json.dumps(_command(cluster, nodes, line.split(maxsplit=2))), flush=True)
    except KeyboardInterrupt:
        pass
    cluster.shutdown()
    return 0


def _command(cluster, nodes: dict, words: list[str]) -> dict:
    if words[:1] == ["add"] and len(words) >= 2:
        resources = json.loads(words[2]) if len(words) > 2 else {}
        nodes[words[1]] = cluster.add_node(num_cpus=1, labels={"cm-node": words[1]}, resources=resources,
                                           node_ip_address="127.0.0.1", object_store_memory=OBJECT_STORE_BYTES)
        return {"added": words[1]}
    if words[:1] == ["remove"] and len(words) == 2 and words[1] in nodes:
        cluster.remove_node(nodes.pop(words[1]), allow_graceful=False)
        cluster.wait_for_nodes()  # until Ray, too, counts it lost: later placements know it
        return {"removed": words[1]}
    return {"error": f"unknown command {' '.join(words)!r}"}


if __name__ == "__main__":
    sys.exit(main(sys.argv))
