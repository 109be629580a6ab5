"""The python runner's zygote inside the real manager: lazy starts are forked by it, ends are
recorded with their real reason and code, and everything still works without it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from component_manager.testing.process import ManagerProcess, pid_alive

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
LIFECYCLE_REALM = str(HERE / "components" / "lifecycle_realm.cml")


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def zygote_pid(manager: ManagerProcess) -> int | None:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                is_zygote = b"component_manager.runners.zygote" in cmdline
                if is_zygote and parent_of(int(entry)) == manager.process.pid:
                    return int(entry)
            except (OSError, ValueError, IndexError):
                continue
    return None


def wait_zygote_ready(manager: ManagerProcess, times: int = 1, timeout: float = 30.0) -> int:
    """Wait until the manager has logged its zygote ready ``times`` times; the zygote's pid.

    The zygote gets ready in the background (the manager does not wait for it); its log line
    is the only outside sign, so this polls the manager's log until the deadline."""
    deadline = time.monotonic() + timeout
    while manager.log_text().count("zygote ready") < times:
        assert time.monotonic() < deadline, f"no ready zygote; manager log:\n{manager.log_text()}"
        time.sleep(0.01)
    pid = zygote_pid(manager)
    assert pid is not None
    return pid


def test_a_lazy_start_is_forked_by_the_zygote_and_its_end_recorded(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        zygote = wait_zygote_ready(manager)
        with manager.events() as events:
            manager.cm("start", "/echo_client")  # connects to echo.Echo: starts /echo_server
            events.wait_for(type="stopped", moniker="/echo_client")
        client = manager.show("/echo_client")
        assert client["last_stop"]["reason"] == "exited" and client["last_stop"]["exit_code"] == 0
        assert "hello" in Path(client["log_path"]).read_text()

        server = manager.show("/echo_server")
        assert server["execution_state"] == "running"
        assert "requested capability" in server["start_reason"]
        assert parent_of(server["pid"]) == zygote
        assert os.getpgid(server["pid"]) == server["pid"]

        manager.cm("stop", "/echo_server")
        stop = manager.show("/echo_server")["last_stop"]
        assert (stop["reason"], stop["disposition"], stop["exit_code"]) == ("requested", "stopped", 0)
        assert not pid_alive(server["pid"])


def test_a_crash_of_a_forked_program_is_recorded_with_its_signal(manager_dir):
    with ManagerProcess(manager_dir, root=LIFECYCLE_REALM) as manager:
        wait_zygote_ready(manager)
        with manager.events() as events:
            manager.cm("start", "/crashes")
            events.wait_for(type="stopped", moniker="/crashes")
        stop = manager.show("/crashes")["last_stop"]
        assert (stop["reason"], stop["signal"], stop["exit_code"]) == ("crashed", signal.SIGSEGV, None)


def test_a_killed_zygote_is_replaced_and_starts_never_fail(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        first = wait_zygote_ready(manager)
        os.kill(first, signal.SIGKILL)
        manager.cm("start", "/counter")  # spawned (or forked by a new zygote, if already back)
        assert manager.show("/counter")["execution_state"] == "running"
        manager.cm("stop", "/counter")

        second = wait_zygote_ready(manager, times=2)
        assert second != first
        manager.cm("start", "/counter")
        assert parent_of(manager.show("/counter")["pid"]) == second
    assert not pid_alive(second), "the manager stops its zygote when it stops"


def test_cm_zygote_0_turns_it_off(manager_dir, monkeypatch):
    monkeypatch.setenv("CM_ZYGOTE", "0")
    with ManagerProcess(manager_dir) as manager:
        manager.cm("start", "/counter")
        assert parent_of(manager.show("/counter")["pid"]) == manager.process.pid
        assert zygote_pid(manager) is None


def test_a_forked_program_left_by_a_killed_manager_is_found_and_adopted(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        zygote = wait_zygote_ready(manager)
        manager.cm("start", "/counter")
        before = manager.show("/counter")
        assert parent_of(before["pid"]) == zygote

        manager.kill9()  # the zygote sees its socket close and exits; the program stays
        assert pid_alive(before["pid"])
        manager.start()
        assert manager.show("/counter")["pid"] == before["pid"], "recovery adopts a forked program"
        manager.cm("stop", "/counter")
        assert not pid_alive(before["pid"])
        assert manager.show("/counter")["last_stop"]["reason"] == "requested"
