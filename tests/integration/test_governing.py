"""Limits, budget and eviction, pause/resume, restart: a real manager, real programs, the
kernel's own limits where this host has cgroups (skipped with the reason where it has not),
and the rlimit-and-watch path everywhere (``CM_CGROUPS=none``)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from component_manager.runners import cgroups
from component_manager.testing.process import ManagerProcess, pid_alive

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
GOVERNED = str(HERE / "components" / "governed_realm.cml")
NO_CGROUPS = {"CM_CGROUPS": "none"}


def _cgroup_reason() -> str:
    found = cgroups.hierarchy()
    return "" if found is not None else "no cgroup v2 delegation and no writable v1 memory controller here"


needs_cgroups = pytest.mark.skipif(bool(_cgroup_reason()), reason=_cgroup_reason() or "-")


def _log(manager, moniker: str) -> str:
    """What the program wrote (without the manager's "-- started ... --" line before each run)."""
    lines = Path(manager.show(moniker)["log_path"]).read_text().splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("-- started "))


# ---- limits ----------------------------------------------------------------------------------

@needs_cgroups
@pytest.mark.parametrize("zygote", ["1", "0"], ids=["zygote", "spawned"])
def test_memory_limit_is_enforced_by_the_kernel(manager_dir, zygote):
    with ManagerProcess(manager_dir, root=GOVERNED, env={"CM_ZYGOTE": zygote}) as manager:
        with manager.events("/hog") as events:
            manager.cm("start", "/hog")
            event = events.wait_for(type="stopped", moniker="/hog")
        assert event["reason"] == "resource_limit", (event["stop"], _log(manager, "/hog")[-300:])
        assert re.match(r"memory: over its limit of 64MiB \(peak [\d.]+MiB; killed by the kernel, cgroup v[12]\)",
                        event["detail"]), event["detail"]
        shown = manager.show("/hog")
        assert shown["last_stop"]["reason"] == "resource_limit"
        assert shown["last_stop"]["signal"] == 9
        assert shown["status"] == "failed"
        assert shown["limits"]["memory_bytes"] == 64 << 20


@needs_cgroups
def test_pids_limit_refuses_forks_and_is_the_stop_reason(manager_dir):
    with ManagerProcess(manager_dir, root=GOVERNED) as manager:
        with manager.events("/forker") as events:
            manager.cm("start", "/forker")
            event = events.wait_for(type="stopped", moniker="/forker")
        assert event["reason"] == "resource_limit"
        assert event["detail"].startswith("pids: its limit of 8 was reached")
        assert "fork refused after" in _log(manager, "/forker")


@needs_cgroups
def test_show_gives_limits_and_current_use(manager_dir):
    with ManagerProcess(manager_dir, root=GOVERNED) as manager:
        manager.cm("start", "/few_files")
        shown = manager.show("/few_files")
        assert shown["limits"] == {"memory_bytes": 256 << 20, "cpu": 0.0, "pids": 0, "open_files": 64,
                                   "enforced_by": shown["limits"]["enforced_by"]}
        assert shown["limits"]["enforced_by"].startswith("cgroup v")
        assert shown["usage"]["memory_bytes"] > 0
        assert "Limits          memory 256MiB" in manager.cm("show", "/few_files").stdout.replace(".0 MiB", "MiB")
        assert "nofile=64" in _log(manager, "/few_files")


def test_rlimit_and_memory_watch_without_cgroups(manager_dir):
    with ManagerProcess(manager_dir, root=GOVERNED, env=NO_CGROUPS) as manager:
        with manager.events("/hog") as events:
            manager.cm("start", "/hog")
            event = events.wait_for(type="stopped", moniker="/hog")
        assert event["reason"] == "resource_limit"
        assert "killed by the manager's watch" in event["detail"]
        manager.cm("start", "/few_files")
        assert "nofile=64" in _log(manager, "/few_files")
        assert manager.show("/few_files")["limits"]["enforced_by"] == "watch"
        assert manager.show("/few_files")["usage"]["memory_bytes"] > 1 << 20


@pytest.mark.parametrize("moniker,limit", [("/forker", "pids"), ("/cpu_limited", "cpu")])
def test_a_limit_that_cannot_be_enforced_is_refused(manager_dir, moniker, limit):
    with ManagerProcess(manager_dir, root=GOVERNED, env=NO_CGROUPS) as manager:
        result = manager.cm("start", moniker, check=False)
        assert result.returncode == 1
        assert result.stderr.startswith(f"cm: cannot start '{moniker}': its {limit} limit cannot be enforced: ")
        assert "Traceback" not in result.stderr
        assert manager.show(moniker)["execution_state"] == "stopped"


# ---- budget and eviction ---------------------------------------------------------------------

def test_a_start_over_the_budget_evicts_lower_priority_lru_first(manager_dir):
    with ManagerProcess(manager_dir, root=GOVERNED, args=("--max-running", "2")) as manager:
        manager.cm("start", "/a")
        manager.cm("start", "/b")
        b_pid = manager.show("/b")["pid"]
        with manager.events() as events:
            manager.cm("start", "/urgent")  # priority 5 (its children[] entry): room is made
            event = events.wait_for(type="stopped", moniker="/a")
        assert event["reason"] == "evicted"
        assert "to make room for '/urgent' (max_running 2)" in event["detail"]
        assert manager.show("/a")["last_stop"]["reason"] == "evicted"
        assert manager.show("/b")["pid"] == b_pid
        assert manager.show("/urgent")["priority"] == 5

        refused = manager.cm("start", "/c", check=False)  # priority 0: nothing below it runs
        assert refused.returncode == 1
        assert "budget max_running 2 is used up" in refused.stderr
        assert manager.show("/c")["execution_state"] == "stopped"
        assert manager.show("/b")["pid"] == b_pid


def test_the_budget_is_a_grpc_resource_exhausted(manager_dir):
    import grpc

    from component_manager._generated import manager_pb2, manager_pb2_grpc

    with ManagerProcess(manager_dir, root=GOVERNED, args=("--max-running", "1")) as manager:
        manager.cm("start", "/a")
        with manager.channel() as channel:
            stub = manager_pb2_grpc.LifecycleControllerStub(channel)
            with pytest.raises(grpc.RpcError) as raised:
                stub.Start(manager_pb2.InstanceRequest(moniker="/b"), timeout=30)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_running 1" in raised.value.details()


# ---- pause / resume / restart ----------------------------------------------------------------

def test_pause_queues_a_connect_until_resume(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("start", "/echo_server")
        server_pid = manager.show("/echo_server")["pid"]
        paused = manager.cm_json("pause", "/echo_server")
        assert paused["execution_state"] == "paused" and paused["status"] == "paused"
        assert _proc_state(server_pid) == "T"  # stopped by SIGSTOP: it has no cgroup
        with manager.events() as events:
            manager.cm("start", "/echo_client")
            events.wait_for(type="capability_requested", moniker="/echo_server")
            assert manager.show("/echo_client")["execution_state"] == "running"  # waiting
            assert _log(manager, "/echo_client").strip() == ""  # no reply yet
            manager.cm("resume", "/echo_server")
            ended = events.wait_for(type="stopped", moniker="/echo_client")
        assert ended["reason"] == "exited" and ended["stop"]["exit_code"] == 0
        assert manager.show("/echo_server")["pid"] == server_pid
        assert "hi" in _log(manager, "/echo_client")


def test_idle_timer_does_not_run_while_paused(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("start", "/echo_server")  # idle_timeout 3s
        manager.cm("pause", "/echo_server")
        time.sleep(4)  # longer than its idle_timeout: a duration under test, not a wait for an event
        with manager.events("/echo_server") as events:
            resumed_at = time.time()
            manager.cm("resume", "/echo_server")
            stopped = events.wait_for(type="stopped", moniker="/echo_server", timeout=30)
        assert stopped["reason"] == "idle"
        assert stopped["timestamp"] - resumed_at >= 2.5, "idle counted from the resume, not the pause"


@needs_cgroups
def test_pause_uses_the_cgroup_freezer_and_stop_of_a_paused_instance_works(manager_dir):
    with ManagerProcess(manager_dir, root=GOVERNED) as manager:
        manager.cm("start", "/few_files")
        pid = manager.show("/few_files")["pid"]
        with manager.events("/few_files") as events:
            manager.cm("pause", "/few_files")
            paused = events.wait_for(type="paused")
        assert paused["detail"] == "frozen by cgroup"
        assert _proc_state(pid) in ("D", "S")  # frozen tasks sleep in the freezer, not "T"
        stopped = manager.cm_json("stop", "/few_files")
        assert stopped["disposition"] == "stopped"
        assert not pid_alive(pid)
        assert manager.show("/few_files")["last_stop"]["reason"] == "requested"


@needs_cgroups
def test_a_program_frozen_when_the_manager_died_is_thawed_and_adopted_by_the_next_manager(manager_dir):
    with ManagerProcess(manager_dir, root=GOVERNED) as manager:
        manager.cm("start", "/few_files")
        pid = manager.show("/few_files")["pid"]
        manager.cm("pause", "/few_files")
        manager.kill9()
        assert pid_alive(pid)
        manager.start()
        shown = manager.show("/few_files")
        assert (shown["pid"], shown["execution_state"]) == (pid, "running")
        assert _proc_state(pid) != "D"  # thawed: it runs on
        stopped = manager.cm_json("stop", "/few_files")
        assert stopped["disposition"] == "stopped" and not pid_alive(pid)
        assert manager.show("/few_files")["last_stop"]["reason"] == "requested"


def test_pause_of_what_is_not_running_is_a_failed_precondition(manager_dir):
    with ManagerProcess(manager_dir, root=GOVERNED) as manager:
        result = manager.cm("pause", "/a", check=False)
        assert result.returncode == 1
        assert result.stderr.strip() == "cm: instance '/a' cannot go from stopped to paused"
        manager.cm("start", "/a")
        assert manager.cm("resume", "/a", check=False).stderr.strip() == \
            "cm: instance '/a' cannot go from running to running"


def test_restart_stops_then_starts_with_its_reason(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("start", "/counter")
        before = manager.show("/counter")["pid"]
        out = manager.cm("restart", "/counter").stdout
        assert out.startswith("/counter: stopped (stopped), started (pid ")
        shown = manager.show("/counter")
        assert shown["pid"] != before and not pid_alive(before)
        assert shown["start_reason"] == "restarted by request"
        assert shown["last_stop"]["reason"] == "requested"
        assert re.findall(r"count=(\d+)", _log(manager, "/counter")) == ["1", "2"]


def _proc_state(pid: int) -> str:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text.rsplit(")", 1)[1].split()[0]
