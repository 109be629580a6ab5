"""The ray runner against a real Ray cluster: one local cluster (a head and two worker nodes,
on loopback only, its folders in a temp folder of its own) shared by the whole session;
each test runs its own manager on it (``cm manager run --ray ADDRESS``). Select them with
``-m ray``; without Ray installed they are skipped, saying so."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from component_manager.runners.ray_runner import ray_available
from component_manager.testing import ManagerProcess, pid_alive, restarted, started, stopped

pytestmark = [pytest.mark.integration, pytest.mark.ray, pytest.mark.timeout(120)]

COMPONENTS = Path(__file__).parent / "components"
REALM = str(COMPONENTS / "ray_realm.cml")


@pytest.fixture(scope="session")
def ray_cluster():
    """The session's cluster: head (no CPU) + node1 + node2, 1 CPU each, on 127.0.0.1."""
    why = ray_available()
    if why:
        pytest.skip(f"Ray tests skipped: {why}")
    from component_manager.runners.ray_cluster import LocalCluster, local_env

    folder = Path(tempfile.mkdtemp(prefix="cm-rayt-"))
    cluster = LocalCluster.start(2, folder / "cluster.log", env=local_env(str(folder)))
    try:
        yield cluster
    finally:
        cluster.close()
        shutil.rmtree(folder, ignore_errors=True)


def ray_manager(manager_dir: Path, cluster, *more: str) -> ManagerProcess:
    return ManagerProcess(manager_dir, root=REALM, args=("--ray", cluster.address, *more))


def wait_for(condition, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.02)


def attempts(log_text: str) -> dict[str, dict]:
    lines = [json.loads(line.partition("ATTEMPT ")[2]) for line in log_text.splitlines() if "ATTEMPT " in line]
    return {a["attack"]: a for a in lines}


def log_of(manager: ManagerProcess, moniker: str) -> str:
    path = Path(manager.show(moniker)["log_path"])
    return path.read_text(errors="replace") if path.exists() else ""


def test_a_cross_node_call_starts_the_provider_lazily_and_needs_its_grant(manager_dir, ray_cluster):
    with ray_manager(manager_dir, ray_cluster) as manager:
        assert manager.show("/provider")["execution_state"] == "stopped"  # lazy: nothing runs yet
        with manager.events() as events:
            manager.cm("start", "/caller")
            events.wait_for(started("/provider", reason="'/caller' requested capability 'test.R'"))
        rows = {r["moniker"]: r for r in manager.cm_json("list")}
        assert (rows["/caller"]["node"], rows["/provider"]["node"]) == ("node1", "node2")
        assert rows["/state"]["node"] is None  # not running
        wait_for(lambda: "no_grant" in attempts(log_of(manager, "/caller")), what="the caller's calls")
        seen = attempts(log_of(manager, "/caller"))
        assert seen["with_grant"]["observed"] == "OK"
        assert seen["no_grant"]["observed"].startswith("PERMISSION_DENIED"), seen["no_grant"]
        assert "provider at 127.0.0.1:" in log_of(manager, "/caller")  # TCP, on loopback

        route = manager.cm("route", "/caller", "test.R").stdout
        assert "(from /provider on Ray node node2)" in route, route
        assert "Node            node1 (Ray)" in manager.cm("show", "/caller").stdout
        assert "NODE" in manager.cm("list").stdout

        with manager.events() as events:
            manager.cm("stop", "/provider")
            events.wait_for(stopped("/provider", reason="requested", disposition="stopped"))


def test_storage_follows_the_instance_to_another_node(manager_dir, ray_cluster):
    def count_lines(manager):
        return log_of(manager, "/state").count("count=")

    with ray_manager(manager_dir, ray_cluster, "--ray-place", "state=node1") as manager:
        manager.cm("start", "/state")
        wait_for(lambda: count_lines(manager) == 1, what="count=1")
        assert manager.show("/state")["node"] == "node1"
        manager.cm("stop", "/state")
        snapshot = manager.show("/state")["snapshot"]
        assert snapshot["node"] == "node1" and snapshot["size_bytes"] > 0
        manager.cm("start", "/state")  # the same node: its areas are used in place
        wait_for(lambda: count_lines(manager) == 2, what="count=2")
        assert "count=2" in log_of(manager, "/state")
        manager.cm("stop", "/state")

    with ray_manager(manager_dir, ray_cluster, "--ray-place", "/state=node2") as manager:
        manager.cm("start", "/state")  # another node: the snapshot is restored there first
        wait_for(lambda: count_lines(manager) == 3, what="count=3")
        assert log_of(manager, "/state").rstrip().endswith("count=3")
        assert manager.show("/state")["node"] == "node2"
        manager.cm("stop", "/state")
        assert manager.show("/state")["snapshot"]["node"] == "node2"


def test_a_killed_actor_is_a_crash_and_the_restart_policy_starts_it_again(manager_dir, ray_cluster):
    with ray_manager(manager_dir, ray_cluster) as manager:
        manager.cm("start", "/crasher")
        keeper = manager.show("/crasher")["pid"]
        actor = int(Path(f"/proc/{keeper}/stat").read_text().rsplit(")", 1)[1].split()[1])  # its parent
        with manager.events() as events:
            os.kill(actor, signal.SIGKILL)  # the Ray worker of its actor dies
            events.wait_for(stopped("/crasher", reason="crashed"))
            events.wait_for(restarted("/crasher", attempt=1, after="crashed"))
        wait_for(lambda: not pid_alive(keeper), what="the old program's group to be gone")
        shown = manager.show("/crasher")
        assert shown["execution_state"] == "running" and shown["pid"] != keeper
        assert shown["node"] == "node1"


def test_a_lost_node_stops_its_programs_and_the_policy_moves_them(manager_dir, ray_cluster):
    ray_cluster.command('add spare1 {"spare": 1}')
    ray_cluster.command('add spare2 {"spare": 1}')
    with ray_manager(manager_dir, ray_cluster) as manager:
        manager.cm("start", "/roamer")
        shown = manager.show("/roamer")
        first, keeper = shown["node"], shown["pid"]
        assert first in ("spare1", "spare2")
        program = int(Path(f"/proc/{keeper}/task/{keeper}/children").read_text().split()[0])
        with manager.events() as events:
            assert ray_cluster.command(f"remove {first}") == {"removed": first}
            lost = events.wait_for(stopped("/roamer", reason="node_lost"))
            events.wait_for(started("/roamer"))
        assert lost["stop"]["detail"] == f"Ray node {first} was lost"
        # its Ray worker killed the keeper as it went: the program went with it
        wait_for(lambda: not pid_alive(keeper) and not pid_alive(program), what="the lost node's program to end")
        assert manager.show("/roamer")["node"] == ({"spare1", "spare2"} - {first}).pop()
        manager.cm("stop", "/roamer")
    ray_cluster.command(f"remove {({'spare1', 'spare2'} - {first}).pop()}")


def test_a_manager_killed_with_programs_on_ray_leaves_no_second_copy(manager_dir, ray_cluster):
    manager = ray_manager(manager_dir, ray_cluster, "--ray-place", "state=node1").start()
    try:
        manager.cm("start", "/state")
        wait_for(lambda: "count=1" in log_of(manager, "/state"), what="count=1")
        old = manager.show("/state")["pid"]
        manager.kill9()
        manager.start()  # recovery: its actor (owned by the dead manager) is ended, recorded
        assert not pid_alive(old), "the dead manager's program still runs"
        shown = manager.show("/state")
        assert shown["execution_state"] == "stopped"
        assert shown["last_stop"]["reason"] == "system_shutdown", shown["last_stop"]
        manager.cm("start", "/state")
        wait_for(lambda: "count=2" in log_of(manager, "/state"), what="count=2")
        assert manager.show("/state")["pid"] != old
    finally:
        manager.close()


def listening_addresses(session: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp* writes them) of every TCP socket listened
    on by a process of ``session``."""
    inodes = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[3]) != session:
                continue
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except (OSError, ValueError, IndexError):
            continue
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                found.add(fields[1].rpartition(":")[0])
    return found


def test_the_local_cluster_listens_on_loopback_only(ray_cluster):
    found = listening_addresses(ray_cluster.process.pid)  # its own session: every Ray daemon
    assert found, "no listening socket found: the check would pass vacuously"
    loopback = {"0100007F", "0000000000000000FFFF00000100007F"}  # 127.0.0.1, ::ffff:127.0.0.1
    assert found <= loopback, f"a Ray daemon listens beyond 127.0.0.1: {found}"
