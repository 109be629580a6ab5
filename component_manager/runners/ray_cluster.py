"""A lean local Ray cluster for ``cm manager run --ray local:N``, in a process of its own.

Ray starts its daemons with ``Popen(preexec_fn=...)``: a fork of the calling process. The
manager must never fork (``isolation.py``), so it does not start them itself: it spawns this
module (a plain spawn), which starts the cluster and prints one JSON line::

    {"address": "127.0.0.1:6379", "nodes": ["head", "node1", "node2"]}

then waits on its stdin. EOF (the manager closed it, or died) shuts the cluster down; the
daemons die with this process too (Ray's own fate sharing). A head node with no CPU and
``N`` worker nodes of 1 CPU each, named by their ``cm-node`` label; every node on
127.0.0.1, a small object store, no dashboard, health checks tuned so a lost node is known
in about a second. The caller sets ``RAY_TMPDIR`` and the environment of ``local_env``.

    python -m component_manager.runners.ray_cluster WORKERS
"""

from __future__ import annotations

import json
import os
import sys

__all__ = ["OBJECT_STORE_BYTES", "local_env", "main"]

OBJECT_STORE_BYTES = 80 * 1024 * 1024  # Ray's floor is ~75 MiB
_HEALTH = {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
           "health_check_timeout_ms": 1000}


def local_env(tmp_dir: str) -> dict[str, str]:
    """What a loopback-only cluster and its drivers need in their environment (set before
    ``import ray``): its folders in ``tmp_dir``, no auth token in $HOME, and Ray taking
    127.0.0.1 as this host's address (else it resolves loopback to the main interface)."""
    return {"RAY_TMPDIR": tmp_dir, "RAY_AUTH_MODE": "disabled",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def main(argv: list[str]) -> int:
    workers = int(argv[1])
    os.makedirs(os.path.join(os.environ["RAY_TMPDIR"], "ray"), exist_ok=True)
    from ray.cluster_utils import Cluster

    common = {"node_ip_address": "127.0.0.1", "object_store_memory": OBJECT_STORE_BYTES,
              "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args={
        **common, "num_cpus": 0, "labels": {"cm-node": "head"}, "_system_config": _HEALTH})
    names = ["head"]
    for i in range(1, workers + 1):
        names.append(f"node{i}")
        cluster.add_node(num_cpus=1, labels={"cm-node": names[-1]}, node_ip_address="127.0.0.1",
                         object_store_memory=OBJECT_STORE_BYTES)
    print(json.dumps({"address": cluster.address, "nodes": names}), flush=True)
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except KeyboardInterrupt:
        pass
    cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
