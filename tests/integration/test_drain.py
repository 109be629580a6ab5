"""Drain: a stop lets the calls in flight finish within its deadline; connects that arrive
during a stop, or joined a start that a stop aborted, start the provider again; bursts of
connects during stop/start churn all succeed (the SDK repeats a call that never ran)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from component_manager._generated import manager_pb2, manager_pb2_grpc
from component_manager.testing.process import ManagerProcess

pytestmark = pytest.mark.integration

REALM = str(Path(__file__).parent / "components" / "drain_realm.cml")
CHURN_LIMIT_S = 120
CHURN_UPTIME_S = 0.5  # how long the provider runs between a start and the next stop


def wait_for_line(path: Path, text: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        content = path.read_text() if path.exists() else ""
        if text in content:
            return content
        assert time.monotonic() < deadline, f"no {text!r} in {path} within {timeout}s: {content[-500:]}"
        time.sleep(0.02)


def test_a_stop_lets_the_calls_in_flight_finish(manager_dir):
    """1,000 calls of 3 s each are in the handler when the stop comes (SIGTERM, deadline
    5 s): all finish, and the provider then ends as stopped, not killed."""
    with ManagerProcess(manager_dir, root=REALM) as manager, manager.events() as events:
        manager.cm("start", "/client")
        wait_for_line(Path(manager.show("/slow")["log_path"]), "busy")
        manager.cm("stop", "/slow")
        stopped = events.wait_for(type="stopped", moniker="/client", timeout=60)
        log = Path(manager.show("/client")["log_path"]).read_text()
        assert "ok=1000 failed=0" in log, log[-500:]
        assert stopped["stop"]["exit_code"] == 0
        assert manager.show("/slow")["last_stop"]["disposition"] == "stopped"


def test_connects_joined_to_a_start_that_a_stop_aborts_start_it_again(manager_dir):
    """200 connects wait for a provider that takes 1.5 s to start; a stop aborts that start:
    the connects start it again, and every one of them, and its call, succeeds."""
    with ManagerProcess(manager_dir, root=REALM) as manager, manager.events() as events:
        manager.cm("start", "/connects")
        events.wait_for(type="capability_requested", moniker="/late")
        manager.cm("stop", "/late")
        stopped = events.wait_for(type="stopped", moniker="/connects", timeout=60)
        log = Path(manager.show("/connects")["log_path"]).read_text()
        assert "connects=200/200 calls_ok=200/200" in log, log[-500:]
        assert stopped["stop"]["exit_code"] == 0


def test_bursts_of_connects_during_stop_start_churn_all_succeed(manager_dir):
    """3 bursts of 1,000 simultaneous connects (each with a call) while the provider is
    stopped and started over and over: 0 failures, and each call ran exactly once."""
    with ManagerProcess(manager_dir, root=REALM) as manager, manager.channel() as channel:
        lifecycle = manager_pb2_grpc.LifecycleControllerStub(channel)
        fast = manager_pb2.InstanceRequest(moniker="/fast")
        manager.cm("start", "/churn")
        log = Path(manager.show("/churn")["log_path"])
        deadline = time.monotonic() + CHURN_LIMIT_S
        cycles = 0
        while "ok=" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, f"the bursts did not end within {CHURN_LIMIT_S}s"
            lifecycle.Stop(fast, timeout=60)
            lifecycle.Start(fast, timeout=60)
            time.sleep(CHURN_UPTIME_S)  # the load's pace, not a synchronisation
            cycles += 1
        lifecycle.Stop(fast, timeout=60)
        result = log.read_text()
        assert "ok=3000 failed=0" in result, f"after {cycles} stop/start cycles: {result[-500:]}"
        handled = sum(int(n) for n in re.findall(r"handled=(\d+)",
                                                  Path(manager.show("/fast")["log_path"]).read_text()))
        assert handled == 3000, f"{handled} calls ran at the provider for 3000 answered"


def test_calls_in_flight_go_on_through_a_manager_kill9(manager_dir):
    """A kill -9 of the manager while 1,000 calls are in flight: the new manager adopts both
    programs (same pids), every call succeeds, and a later stop is recorded as usual."""
    with ManagerProcess(manager_dir, root=REALM) as manager:
        manager.cm("start", "/client")
        wait_for_line(Path(manager.show("/slow")["log_path"]), "busy")
        before = manager.show("/slow")["pid"]
        manager.kill9()
        manager.start()
        assert manager.show("/slow")["pid"] == before
        wait_for_line(Path(manager.show("/client")["log_path"]), "ok=")
        log = Path(manager.show("/client")["log_path"]).read_text()
        assert "ok=1000 failed=0" in log, log[-500:]
        manager.cm("stop", "/slow")
        assert manager.show("/slow")["last_stop"]["reason"] == "requested"
