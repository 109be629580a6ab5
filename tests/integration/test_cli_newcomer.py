"""`cm` says what happened: the real executable against a real manager, on what a newcomer
tries first (the manager itself, a program that fails at once, mistyped words, logs and
events, the wire API with generic tools)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from component_manager._generated import manager_pb2, manager_pb2_grpc
from component_manager.testing.process import ManagerProcess, cm_executable, pid_alive

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

COMPONENTS = "tests/integration/components"
ROOTS = [Path(__file__).parent / "components"]  # the test components resolve beside the example realm


def cm(state_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*cm_executable(), "--state-dir", str(state_dir), *args], capture_output=True,
                          text=True, timeout=60)


# ---- the manager itself ----------------------------------------------------------------------

def test_manager_status_and_stop(manager_dir):
    off = cm(manager_dir, "manager", "status")
    assert (off.returncode, off.stdout) == (3, f"manager at {manager_dir.resolve()}: not running\n")
    assert cm(manager_dir, "manager", "stop").returncode == 3
    started = cm(manager_dir, "manager", "run", "--detach")
    assert started.returncode == 0, started.stderr
    try:
        status = json.loads(cm(manager_dir, "manager", "status", "--json").stdout)
        assert status["running"] and pid_alive(status["pid"])
        listed = json.loads(cm(manager_dir, "list", "--json").stdout)
        assert status["instances"] == len(listed) and status["root_url"].endswith("components/realm.cml")
        assert f"PID         {status['pid']}" in cm(manager_dir, "manager", "status").stdout
        stopped = cm(manager_dir, "manager", "stop")
        assert stopped.returncode == 0 and f"(pid {status['pid']}) stopped" in stopped.stdout
        assert not pid_alive(status["pid"])  # stop returns once the process is gone
    finally:
        cm(manager_dir, "manager", "stop")
    assert cm(manager_dir, "manager", "status").returncode == 3


def test_detach_says_why_the_manager_did_not_start(manager_dir):
    with ManagerProcess(manager_dir):
        twice = cm(manager_dir, "manager", "run", "--detach")
        assert twice.returncode == 1
        assert f"a manager is already running at {manager_dir.resolve()}" in twice.stderr
    broken = cm(manager_dir.parent / "other", "manager", "run", "--detach", "--root", "/no/such/root.cml")
    assert broken.returncode == 1
    assert "cannot resolve 'file:///no/such/root.cml': No such file or directory" in broken.stderr


def test_a_state_directory_keeps_its_root_unless_told_to_switch(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("create", "/workers:c1", "counter/counter.cml")
    other = f"{COMPONENTS}/lifecycle_realm.cml"
    refused = cm(manager_dir, "manager", "run", "--detach", "--root", other)
    assert refused.returncode == 1
    assert "holds the instances of root file://" in refused.stderr and "--switch-root" in refused.stderr
    with ManagerProcess(manager_dir) as manager:  # the old root still works, its child intact
        assert manager.show("/workers:c1")["state"] in ("unresolved", "resolved")
    switched = cm(manager_dir, "manager", "run", "--detach", "--root", other, "--switch-root")
    try:
        assert switched.returncode == 0, switched.stderr
        status = json.loads(cm(manager_dir, "manager", "status", "--json").stdout)
        assert status["root_url"].endswith("lifecycle_realm.cml")
    finally:
        cm(manager_dir, "manager", "stop")
    assert cm(manager_dir, "manager", "run", "--detach", "--root", other).returncode == 0  # now its root
    cm(manager_dir, "manager", "stop")


# ---- programs that fail ----------------------------------------------------------------------

def test_run_of_a_program_that_fails_at_once_shows_its_log_and_leaves_nothing(manager_dir):
    with ManagerProcess(manager_dir, package_roots=ROOTS) as manager:
        failed = manager.cm("run", "/workers:bad", f"{COMPONENTS}/fails_at_once.cml", check=False)
        assert failed.returncode == 1 and failed.stdout == ""
        assert "before it was serving" in failed.stderr
        assert "RuntimeError: no database configured" in failed.stderr  # the log's last lines
        assert "/workers:bad destroyed" in failed.stderr
        assert manager.cm("show", "/workers:bad", check=False).returncode == 4

        exits = manager.cm("run", "/workers:quick", f"{COMPONENTS}/exits_1.cml", check=False)
        assert exits.returncode == 1 and "/workers:quick ended at once (exit code 1)" in exits.stderr
        assert manager.cm("show", "/workers:quick", check=False).returncode == 4

        kept = manager.cm("run", "/workers:kept", f"{COMPONENTS}/exits_1.cml", "--keep", "--json", check=False)
        assert kept.returncode == 1 and manager.show("/workers:kept")["status"] == "failed"
        assert json.loads(kept.stdout)["kept"] is True

        ok = manager.cm("run", "/workers:c1", "counter/counter.cml")
        assert ok.stdout.startswith("/workers:c1: created and started")


def test_a_start_without_its_config_records_start_failed(manager_dir):
    with ManagerProcess(manager_dir, package_roots=ROOTS) as manager:
        manager.cm("create", "/workers:nc", f"{COMPONENTS}/needs_config.cml")
        start = manager.cm("start", "/workers:nc", check=False)
        assert start.returncode == 1 and "db_url: no value" in start.stderr
        last = manager.show("/workers:nc")["last_stop"]
        assert last["reason"] == "start_failed" and "db_url: no value" in last["detail"]
        events = [json.loads(line) for line in manager.cm("events", "--moniker", "nc", "--json").stdout.splitlines()]
        assert events[-1]["type"] == "stopped" and events[-1]["reason"] == "start_failed"
        assert manager.cm("run", "/workers:nc2", f"{COMPONENTS}/needs_config.cml", check=False).returncode == 1
        assert manager.cm("show", "/workers:nc2", check=False).returncode == 4  # not left behind


def test_zygote_programs_have_a_process_title(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        deadline = time.monotonic() + 30  # the zygote gets ready in the background; its log
        while "zygote ready" not in manager.log_text():  # line is the only outside sign
            assert time.monotonic() < deadline, manager.log_text()
            time.sleep(0.01)
        manager.cm("start", "/counter")
        pid = manager.show("/counter")["pid"]
        title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        assert title == "cm: /counter (components.counter.main)"
        assert Path(f"/proc/{pid}/comm").read_text().strip() == title[:15]  # what top shows


# ---- what cm says ----------------------------------------------------------------------------

def test_stop_of_the_root_says_what_it_stopped(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("start", "/counter")
        manager.cm("start", "/echo_server")
        out = manager.cm("stop", "/").stdout
        assert "/counter" in out and "/echo_server" in out
        assert manager.cm_json("stop", "/")["stopped"] == []


def test_events_filters_are_checked(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("start", "/counter")
        manager.cm("stop", "/counter")
        typo = manager.cm("events", "--type", "strated", check=False)
        assert typo.returncode == 2 and "unknown event type 'strated'" in typo.stderr and "started" in typo.stderr
        nobody = manager.cm("events", "--moniker", "/nobody", check=False)
        assert nobody.returncode == 4
        assert manager.cm("events", "--moniker", "zzz", check=False).returncode == 4
        mine = [json.loads(x) for x in manager.cm("events", "--moniker", "count", "--json").stdout.splitlines()]
        assert mine and {e["moniker"] for e in mine} == {"/counter"}
        last = manager.cm("events", "--limit", "1", "--json").stdout.splitlines()
        assert len(last) == 1 and json.loads(last[0])["type"] == "stopped"
        assert manager.cm("events", "--since", "1d", "--json").stdout.count("\n") >= len(mine)
        assert manager.cm("events", "--since", "2000000000").stdout == ""  # in the future
        assert manager.cm("events", "--since", "soon", check=False).returncode == 2


def test_logs_lines_since_markers_and_json(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        for _ in range(2):
            manager.cm("start", "/counter")
            manager.cm("stop", "/counter")
        log = manager.cm("logs", "counter").stdout.splitlines()
        assert [line.startswith("-- started ") for line in log] == [True, False, True, False]
        assert log[0].endswith("(requested via the API (cm start)) --") and log[3] == "count=2"
        assert manager.cm("logs", "counter", "-n", "1").stdout == "count=2\n"
        assert manager.cm("logs", "counter", "--since", "1d").stdout.splitlines() == log
        data = manager.cm_json("logs", "counter", "--lines", "2")
        assert data["moniker"] == "/counter" and data["lines"] == log[2:]
        refused = manager.cm("logs", "counter", "--json", "--follow", check=False)
        assert refused.returncode == 2 and json.loads(refused.stdout)["exit_code"] == 2


def test_show_of_a_stopped_instance_shows_its_config(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        assert manager.show("/echo_server")["config"] == {"greeting": "hello"}
        assert 'Config          greeting = "hello"' in manager.cm("show", "/echo_server").stdout


def test_version_typos_json_errors_and_validate(manager_dir):
    assert cm(manager_dir, "--version").stdout.startswith("cm ")
    typo = cm(manager_dir, "lsit")
    assert typo.returncode == 2 and "unknown command 'lsit' (did you mean 'list'?)" in typo.stderr
    assert "(did you mean 'stop'?)" in cm(manager_dir, "manager", "stp").stderr
    missing = cm(manager_dir, "show", "x", "--json")
    assert missing.returncode == 3
    assert json.loads(missing.stdout) == {"error": missing.stderr[4:].strip(), "type": "ManagerNotRunning",
                                          "exit_code": 3}
    ok = cm(manager_dir, "validate", "components/realm.cml")
    assert (ok.returncode, ok.stdout) == (0, "components/realm.cml: ok\n")


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_completion(manager_dir, shell):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed (.ci/run installs it)")
    with ManagerProcess(manager_dir) as manager:
        script = manager.cm("completion", shell).stdout
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

        def complete(*words: str) -> list[str]:
            line = ["--state-dir", str(manager.state_dir), *words]
            if shell == "zsh":  # the candidates function, without the completion system
                program = f"{script}\n_cm_candidates {words[-1]!r} " + " ".join(map(repr, line[:-1]))
            else:
                program = f"{script}\ncomplete -C {' '.join(['cm', *line])!r}"
            out = subprocess.run([shell, "-c", program], capture_output=True, text=True, env=env, timeout=30)
            assert out.returncode == 0, out.stderr
            return [w.split("\t")[0] for w in out.stdout.split("\n") if w.startswith(words[-1])]

        assert "storage" in complete("st") and "stop" in complete("st")
        assert complete("storage", "d") == ["delete"]
        assert complete("show", "/echo_s") == ["/echo_server"]
        assert "--lines" in complete("logs", "--l")


# ---- the wire API ----------------------------------------------------------------------------

def test_health_per_service_and_the_api_names_its_moniker_rule(manager_dir):
    with ManagerProcess(manager_dir) as manager, manager.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        names = ["", *(s.full_name for s in manager_pb2.DESCRIPTOR.services_by_name.values())]
        for name in names:
            reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
        query = manager_pb2_grpc.RealmQueryStub(channel)
        with pytest.raises(grpc.RpcError) as fragment:
            query.GetInstance(manager_pb2.InstanceRequest(moniker="echo_server"), timeout=10)
        assert fragment.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "the API takes absolute monikers" in fragment.value.details()
