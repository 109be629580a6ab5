"""Governing policies with a real manager and real programs: restart with back-off and a
storm limit, health probes, hooks, triggers and the run-time limit.

Programs are small shell scripts (the process runner) or SDK programs (the python runner);
each test writes its realm into a temporary package folder. They run unconfined (see the
``unconfined`` fixture) but for the test of confinement itself."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from component_manager.testing import (ManagerProcess, restart_gave_up, restart_scheduled, restarted,
                                       started, stopped)
from component_manager.testing.events import event

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def unconfined(monkeypatch):
    """These programs and hooks leave marker files in the test's folder, which a confined
    program cannot write (runners/isolation.py): run them unconfined, except where a test
    says otherwise (``test_hooks_run_confined_like_their_program``)."""
    monkeypatch.setenv("CM_UIDS", "off")
    monkeypatch.setenv("CM_LANDLOCK", "0")

HERE = Path(__file__).parent
COMPONENTS = HERE / "components"


def sh(script: str, **program) -> dict:
    return {"program": {"runner": "process", "binary": "/bin/sh", "args": ["-c", script], **program}}


def realm(folder: Path, children: dict[str, dict], root: dict | None = None, modules=()) -> str:
    """Write a root manifest with ``children`` (name -> manifest) into ``folder``, and copy
    the python ``modules`` of tests/integration/components there."""
    folder.mkdir(parents=True, exist_ok=True)
    for module in modules:
        shutil.copy(COMPONENTS / f"{module}.py", folder)
    for name, manifest in children.items():
        (folder / f"{name}.cml").write_text(json.dumps(manifest))
    root = root or {}
    root.setdefault("children", [{"name": n, "url": f"{n}.cml"} for n in children])
    (folder / "root.cml").write_text(json.dumps(root))
    return str(folder / "root.cml")


def once(marker: Path, ending: str) -> str:
    """A script that ends with ``ending`` on its first run, then runs until stopped."""
    return f'[ -e {marker} ] || {{ touch {marker}; {ending}; }}; exec sleep 1000'


def wait_all(events, matchers, timeout: float = 30.0) -> None:
    """Wait until every matcher has matched some event, in any order."""
    def done(latest: dict) -> bool:
        return all(any(m(e) for e in (*events.seen, latest)) for m in matchers)

    if not all(any(m(e) for e in events.seen) for m in matchers):
        events.wait_for(done, timeout=timeout)


ENDINGS = {"crash": "kill -SEGV $$", "exit0": "exit 0", "exit3": "exit 3", "stop": "exec sleep 1000"}
RESTARTS = {  # (policy, ending) -> restarted?
    ("never", "crash"): False, ("never", "exit0"): False, ("never", "exit3"): False, ("never", "stop"): False,
    ("on_failure", "crash"): True, ("on_failure", "exit0"): False, ("on_failure", "exit3"): True,
    ("on_failure", "stop"): False,
    ("always", "crash"): True, ("always", "exit0"): True, ("always", "exit3"): True, ("always", "stop"): False,
}


def test_each_policy_against_each_way_a_program_ends(manager_dir, tmp_path):
    children = {
        f"{policy}-{ending}": sh(once(tmp_path / f"{policy}-{ending}.ran", ENDINGS[ending]),
                                 restart={"policy": policy, "initial_delay": "0s"})
        for policy, ending in RESTARTS
    }
    with ManagerProcess(manager_dir, realm(tmp_path / "pkg", children)) as manager, manager.events() as events:
        for name in children:
            manager.cm("start", f"/{name}")
        for (policy, ending), _ in RESTARTS.items():
            if ending == "stop":
                manager.cm("stop", f"/{policy}-{ending}")
        wanted = [stopped(f"/{p}-{e}") for p, e in RESTARTS]
        wanted += [restarted(f"/{p}-{e}", attempt=1) for (p, e), again in RESTARTS.items() if again]
        wait_all(events, wanted)
        time.sleep(0.5)  # room for a restart that should not happen (checked below)
        for (policy, ending), expected in RESTARTS.items():
            info = manager.show(f"/{policy}-{ending}")
            assert (info["execution_state"] == "running") == expected, (policy, ending, info)


def test_back_off_increases_is_capped_and_jittered_and_gives_up(manager_dir, tmp_path):
    children = {"crashy": sh("kill -SEGV $$", restart={
        "policy": "on_failure", "initial_delay": "50ms", "max_delay": "200ms", "max_restarts": 6, "within": "1m"})}
    with ManagerProcess(manager_dir, realm(tmp_path / "pkg", children)) as manager, manager.events() as events:
        manager.cm("start", "/crashy")
        delays = []
        for attempt in range(1, 7):
            scheduled = events.wait_for(restart_scheduled("/crashy", attempt=attempt), timeout=30)
            delays.append(float(re.search(r" in ([\d.]+)s", scheduled["detail"]).group(1)))
        events.wait_for(restart_gave_up("/crashy"), timeout=30)
        check_given_up(manager, delays)


def check_given_up(manager, delays: list[float]) -> None:
    info = manager.show("/crashy")
    nominal = [0.05, 0.1, 0.2, 0.2, 0.2, 0.2]
    for delay, want in zip(delays, nominal):
        assert want * 0.9 - 1e-3 <= delay <= min(0.2, want * 1.1) + 1e-3, delays
    assert delays[0] < delays[1] < delays[2], delays
    assert len(set(delays[3:])) > 1, f"capped delays are jittered: {delays}"
    assert info["status"] == "failed"
    assert info["status_detail"] == "failed (gave up after 6 restarts, last: crashed SIGSEGV)"
    assert info["restart"]["gave_up"] and info["restart"]["policy"] == "on_failure"
    assert "failed (gave up after 6 restarts" in manager.cm("list").stdout

    manager.cm("reset", "/crashy")
    assert manager.show("/crashy")["restart"]["attempt"] == 0


def test_healthy_running_forgets_earlier_failures(manager_dir, tmp_path):
    count = tmp_path / "count"
    script = (f'n=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}; '
              'if [ $n -eq 2 ]; then sleep 0.6; fi; kill -SEGV $$')
    children = {"c": sh(script, restart={"policy": "on_failure", "initial_delay": "0s",
                                         "reset_after": "500ms", "max_restarts": 10})}
    with ManagerProcess(manager_dir, realm(tmp_path / "pkg", children)) as manager, manager.events() as events:
        manager.cm("start", "/c")
        events.wait_for(restarted("/c", attempt=1), timeout=30)  # run 2 lasts 0.6 s > reset_after
        events.wait_for(restarted("/c", attempt=1), timeout=30)  # so run 3 is attempt 1 again
        events.wait_for(restarted("/c", attempt=2), timeout=30)


def test_gave_up_escalates_to_the_parent(manager_dir, tmp_path):
    pkg = tmp_path / "pkg"
    inner = {"children": [{"name": "bad", "url": "bad.cml"}],
             "program": {"runner": "process", "binary": "/bin/sh", "args": ["-c", "exec sleep 1000"]}}
    children = {"bad": sh("kill -SEGV $$", restart={"policy": "on_failure", "initial_delay": "0s",
                                                     "max_restarts": 1, "escalate": True})}
    realm(pkg, children)
    (pkg / "parent.cml").write_text(json.dumps(inner))
    (pkg / "root.cml").write_text(json.dumps({"children": [{"name": "parent", "url": "parent.cml"}]}))
    with ManagerProcess(manager_dir, str(pkg / "root.cml")) as manager, manager.events() as events:
        manager.cm("start", "/parent/bad")
        events.wait_for(restart_gave_up("/parent/bad"), timeout=30)
        events.wait_for(stopped("/parent", reason="requested"), timeout=30)
        events.wait_for(started("/parent", reason="restart: '/parent/bad' gave up (escalate)"), timeout=30)
        assert manager.show("/parent/bad")["restart"]["attempt"] == 0


def test_back_off_survives_a_manager_kill9(manager_dir, tmp_path):
    marker = tmp_path / "ran"
    children = {"c": sh(once(marker, "kill -SEGV $$"), restart={"policy": "on_failure", "initial_delay": "3s"})}
    root = realm(tmp_path / "pkg", children)
    with ManagerProcess(manager_dir, root) as manager:
        with manager.events() as events:
            manager.cm("start", "/c")
            scheduled = events.wait_for(restart_scheduled("/c", attempt=1), timeout=30)
        manager.kill9()
        manager.start()
        info = manager.show("/c")
        assert info["status"] == "backing off", info
        assert info["status_detail"].startswith("backing off (attempt 1, next in "), info
        assert info["status_detail"].endswith("last: crashed SIGSEGV)"), info
        with manager.events(history=True) as events:
            up = events.wait_for(restarted("/c", attempt=1), timeout=30)
        due = scheduled["timestamp"] + float(re.search(r" in ([\d.]+)s", scheduled["detail"]).group(1))
        assert abs(up["timestamp"] - due) < 1.5, "the back-off resumed where it was, not from the start"
        assert manager.show("/c")["execution_state"] == "running"


def test_requested_stop_during_back_off_cancels_the_restart(manager_dir, tmp_path):
    children = {"c": sh("kill -SEGV $$", restart={"policy": "on_failure", "initial_delay": "30s"})}
    with ManagerProcess(manager_dir, realm(tmp_path / "pkg", children)) as manager, manager.events() as events:
        manager.cm("start", "/c")
        events.wait_for(restart_scheduled("/c"), timeout=30)
        assert "backing off (attempt 1, next in " in manager.cm("tree").stdout
        manager.cm("stop", "/c")
        info = manager.show("/c")
        assert info["status"] == "failed" and info["restart"]["next_at"] is None, info


def test_capability_request_during_back_off_waits_for_the_restart(manager_dir, tmp_path):
    pkg = tmp_path / "pkg"
    realm(pkg, {}, modules=("flaky_server", "flaky_client"))
    provider = {
        "program": {"runner": "python", "module": "flaky_server", "args": [str(tmp_path / "crashed")],
                    "restart": {"policy": "on_failure", "initial_delay": "1s"}},
        "capabilities": [{"protocol": "flaky.Echo"}],
        "expose": [{"protocol": "flaky.Echo", "from": "self"}],
    }
    (pkg / "provider.cml").write_text(json.dumps(provider))
    client = {"program": {"runner": "python", "module": "flaky_client"}, "use": [{"protocol": "flaky.Echo"}]}
    (pkg / "client.cml").write_text(json.dumps(client))
    (pkg / "root.cml").write_text(json.dumps({
        "children": [{"name": "provider", "url": "provider.cml"}, {"name": "client", "url": "client.cml"}],
        "offer": [{"protocol": "flaky.Echo", "from": "#provider", "to": "#client"}]}))
    with ManagerProcess(manager_dir, str(pkg / "root.cml")) as manager, manager.events() as events:
        manager.cm("start", "/provider")
        events.wait_for(restart_scheduled("/provider", attempt=1), timeout=30)
        manager.cm("start", "/client")
        done = events.wait_for(stopped("/client"), timeout=30)
        assert done["stop"]["exit_code"] == 0, Path(manager.show("/client")["log_path"]).read_text()
        starts = [e["reason"] for e in events.seen if e["type"] == "started" and e["moniker"] == "/provider"]
        assert starts[-1] == "restart after crashed (attempt 1)", starts


def test_grpc_probe_stops_a_program_that_reports_not_serving(manager_dir, tmp_path):
    pkg = tmp_path / "pkg"
    sick = {
        "program": {"runner": "python", "module": "sick_server", "args": ["0.4"],
                    "health": {"grpc": True, "period": "100ms", "initial_delay": "0s", "failures": 2}},
        "capabilities": [{"protocol": "sick.Sick"}],
    }
    realm(pkg, {"sick": sick}, modules=("sick_server",))
    with ManagerProcess(manager_dir, str(pkg / "root.cml")) as manager, manager.events() as events:
        manager.cm("start", "/sick")
        done = events.wait_for(stopped("/sick", reason="health_check_failed"), timeout=30)
        assert "NOT_SERVING" in done["stop"]["detail"], done
        assert "2 failed health probes in a row" in manager.show("/sick")["last_stop"]["detail"]


def test_grpc_probe_notices_a_hung_program(manager_dir, tmp_path):
    pkg = tmp_path / "pkg"
    sick = {
        "program": {"runner": "python", "module": "sick_server", "args": ["1000"],
                    "health": {"grpc": True, "period": "100ms", "timeout": "200ms", "initial_delay": "0s",
                               "failures": 2}},
        "capabilities": [{"protocol": "sick.Sick"}],
    }
    realm(pkg, {"sick": sick}, modules=("sick_server",))
    with ManagerProcess(manager_dir, str(pkg / "root.cml")) as manager, manager.events() as events:
        manager.cm("start", "/sick")
        time.sleep(0.5)  # healthy for a few periods first
        assert manager.show("/sick")["execution_state"] == "running"
        manager.hang("/sick")
        done = events.wait_for(stopped("/sick", reason="health_check_failed"), timeout=30)
        assert "no answer within 0.2s" in done["stop"]["detail"], done


def test_exec_probe(manager_dir, tmp_path):
    flag = tmp_path / "unhealthy"
    children = {"c": sh("exec sleep 1000", health={
        "exec": ["/bin/sh", "-c", f"test ! -e {flag} || {{ echo sick; exit 1; }}"],
        "period": "100ms", "initial_delay": "0s", "failures": 2})}
    with ManagerProcess(manager_dir, realm(tmp_path / "pkg", children)) as manager, manager.events() as events:
        manager.cm("start", "/c")
        time.sleep(0.4)
        assert manager.show("/c")["execution_state"] == "running"
        flag.touch()
        done = events.wait_for(stopped("/c", reason="health_check_failed"), timeout=30)
        assert "exit code 1: sick" in done["stop"]["detail"], done


def test_pre_start_hook_failure_fails_the_start(manager_dir, tmp_path):
    out = tmp_path / "hook.out"
    children = {
        "ok": sh("exec sleep 1000", hooks={"pre_start": [
            ["/bin/sh", "-c", f'echo "$PWD $CM_MONIKER $CM_STORAGE_DATA" > {out}'], ["/bin/true"]]}),
        "bad": sh("exec sleep 1000", hooks={"pre_start": [
            ["/bin/true"], ["/bin/sh", "-c", "echo migrating; echo boom >&2; exit 3"], ["/bin/false"]]}),
        "slow": sh("exec sleep 1000", hooks={"pre_start": [["/bin/sleep", "5"]], "timeout": "200ms"}),
    }
    pkg = tmp_path / "pkg"
    with ManagerProcess(manager_dir, realm(pkg, children)) as manager:
        manager.cm("start", "/ok")
        assert out.read_text().split()[:2] == [str(pkg), "/ok"]
        failed = manager.cm("start", "/bad", check=False)
        assert failed.returncode != 0 and "pre_start hook ['/bin/sh'" in failed.stderr, failed.stderr
        last = manager.show("/bad")["last_stop"]
        assert last["reason"] == "start_failed"
        assert last["detail"].endswith("(exit code 3): migrating | boom"), last
        slow = manager.cm("start", "/slow", check=False)
        assert slow.returncode != 0 and "timed out" in slow.stderr, slow.stderr


def test_post_stop_hooks_all_run_and_failures_are_recorded(manager_dir, tmp_path):
    marker = tmp_path / "flushed"
    children = {"c": sh("exec sleep 1000", hooks={"post_stop": [
        ["/bin/sh", "-c", "echo cannot flush; exit 1"], ["/bin/sh", "-c", f'echo "$CM_STOP_REASON" > {marker}']]})}
    with ManagerProcess(manager_dir, realm(tmp_path / "pkg", children)) as manager:
        manager.cm("start", "/c")
        manager.cm("stop", "/c")
        assert marker.read_text().strip() == "requested"
        info = manager.show("/c")
        assert len(info["last_stop"]["hook_failures"]) == 1, info
        assert "exit code 1): cannot flush" in info["last_stop"]["hook_failures"][0]
        assert "Hook failed" in manager.cm("show", "/c").stdout


def test_triggers_fire_after_start_exit_and_failure(manager_dir, tmp_path):
    log = tmp_path / "triggers.log"
    record = ["/bin/sh", "-c", f'echo "$CM_EVENT $CM_MONIKER $CM_STOP_REASON $CM_EXIT_CODE" >> {log}']
    children = {"c": sh("sleep 0.2; exit 4", on={"start": [record], "exit": [record], "failure": [record]})}
    with ManagerProcess(manager_dir, realm(tmp_path / "pkg", children)) as manager, manager.events() as events:
        manager.cm("start", "/c")
        for _ in range(3):
            events.wait_for(event("trigger_succeeded", "/c"), timeout=30)
    lines = sorted(line.strip() for line in log.read_text().splitlines())
    assert lines == ["exit /c exited 4", "failure /c exited 4", "start /c"], lines


def test_run_time_limit(manager_dir, tmp_path):
    children = {"c": sh("exec sleep 1000", max_run_time="300ms")}
    with ManagerProcess(manager_dir, realm(tmp_path / "pkg", children)) as manager, manager.events() as events:
        manager.cm("start", "/c")
        done = events.wait_for(stopped("/c", reason="run_time_exceeded"), timeout=30)
        assert 0.25 < done["stop"]["run_time_s"] < 5, done
        assert "max_run_time" in done["stop"]["detail"]


def test_cm_start_during_back_off_starts_at_once(manager_dir, tmp_path):
    children = {"c": sh(once(tmp_path / "ran", "kill -SEGV $$"),
                        restart={"policy": "on_failure", "initial_delay": "30s"})}
    with ManagerProcess(manager_dir, realm(tmp_path / "pkg", children)) as manager, manager.events() as events:
        manager.cm("start", "/c")
        events.wait_for(restart_scheduled("/c"), timeout=30)
        t0 = time.monotonic()
        manager.cm("start", "/c")
        assert time.monotonic() - t0 < 20, "cm start did not wait for the 30 s back-off"
        # the policy forgets the back-off when it sees `started` (delivered with its lazy
        # commit): a `cm show` quicker than that would still see it
        events.wait_for(type="started", moniker="/c", timeout=30)
        info = manager.show("/c")
        assert info["execution_state"] == "running" and info["status_detail"] == "running", info
        assert info["restart"]["next_at"] is None, info


@pytest.mark.skipif(os.geteuid() != 0, reason="confinement of hooks is checked with per-instance uids (as root)")
def test_hooks_run_confined_like_their_program(manager_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("CM_UIDS")
    monkeypatch.delenv("CM_LANDLOCK")
    outside = tmp_path / "outside"
    children = {"c": sh("exec sleep 1000", hooks={
        "pre_start": [["/bin/sh", "-c", 'id -u; touch "$TMPDIR/x" 2>&1 || true']],
        "post_stop": [["/bin/sh", "-c", f'id -u; touch {outside}']]})}
    with ManagerProcess(manager_dir, realm(tmp_path / "pkg", children)) as manager:
        manager.cm("start", "/c")
        uid = manager.show("/c").get("uid")
        manager.cm("stop", "/c")
        failures = manager.show("/c")["last_stop"]["hook_failures"]
    assert not outside.exists(), "a post_stop hook wrote outside its instance's files"
    if uid is not None:  # per-instance uids are on here: the hook ran as the program's uid
        assert failures and failures[0].count(str(uid)) >= 1, failures
