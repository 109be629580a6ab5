"""`cm doctor`'s checks on plain dicts, and its zygote check on real processes."""

import os
import subprocess
import sys

import pytest

from component_manager.cli.doctor_cmds import (check_instance, check_routes, check_unresolved, check_zygote, format_report,
                                               parse_size, zygote_state)
from component_manager.errors import CmError

pytestmark = pytest.mark.timeout(30)


def info(**overrides) -> dict:
    base = {"moniker": "/counter", "url": "file:///x/counter.cml", "status": "stopped", "last_stop": None,
            "storage": [], "package_dir": "", "fingerprint": "f1"}
    return {**base, **overrides}


def test_a_healthy_instance_has_no_findings():
    assert check_instance(info(), 1024, "f1") == []
    assert format_report([], 4) == "✓ nothing wrong in 4 instances"


def test_a_failed_start_says_why_and_what_to_run():
    stop = {"reason": "start_failed", "disposition": "stopped", "exit_code": 1, "signal": None,
            "detail": "ModuleNotFoundError: x"}
    [f] = check_instance(info(status="failed", last_stop=stop), 1024, None)
    assert f["severity"] == "error"
    assert f["problem"] == "failed: start_failed, exit code 1 (ModuleNotFoundError: x)"
    assert f["next"] == "cm logs /counter; then cm start /counter"


def test_given_up_is_an_error_and_backing_off_a_warning():
    [gave_up] = check_instance(info(status="failed (gave up after 5 restarts)"), 1024, None)
    [backing] = check_instance(info(status="backing off (attempt 2)"), 1024, None)
    assert (gave_up["severity"], backing["severity"]) == ("error", "warning")


def test_missing_and_changed_packages(tmp_path):
    [gone_dir] = check_instance(info(package_dir=str(tmp_path / "gone")), 1024, "f1")
    assert "package folder" in gone_dir["problem"]
    [gone_manifest] = check_instance(info(package_dir=str(tmp_path)), 1024, "")
    assert "manifest file:///x/counter.cml is missing" in gone_manifest["problem"]
    [changed] = check_instance(info(package_dir=str(tmp_path)), 1024, "f2")
    assert changed["severity"] == "warning" and "changed" in changed["problem"]


def test_storage_over_the_limit():
    area = {"name": "data", "path": "/s/data", "size_bytes": 2048}
    [f] = check_instance(info(storage=[area]), 1024, None)
    assert f["problem"] == "storage 'data' holds 2048 bytes, over 1024"
    assert parse_size("64MiB") == 64 * 1024**2 and parse_size("1GiB") == 1024**3 and parse_size("500") == 500
    with pytest.raises(CmError, match="not a size"):
        parse_size("lots")


def test_routes_broken_and_unavailable():
    reports = [{"kind": "protocol", "capability": "a.A", "direction": "use", "status": "broken", "error": "no offer"},
               {"kind": "protocol", "capability": "b.B", "direction": "use", "status": "unavailable", "error": ""},
               {"kind": "protocol", "capability": "c.C", "direction": "use", "status": "ok", "error": ""}]
    broken, unavailable = check_routes("/x", reports)
    assert (broken["severity"], broken["next"]) == ("error", "cm route /x a.A")
    assert unavailable["severity"] == "warning"
    assert "1 problem, 1 warning in 3 instances" in format_report([broken, unavailable], 3)


def _fake_manager(state_dir, child_args):
    """A process standing in for the manager (its pid in manager.pid), with one child."""
    code = ("import subprocess, sys, time; subprocess.Popen(sys.argv[1:]); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", code, *child_args])
    (state_dir / "manager.pid").write_text(f"{parent.pid}\n")
    return parent


def _children(pid) -> list[int]:
    tasks = os.listdir(f"/proc/{pid}/task")
    return [int(c) for t in tasks for c in open(f"/proc/{pid}/task/{t}/children").read().split()]


def _wait_for_child(pid):
    import time

    deadline = time.monotonic() + 10
    while not _children(pid):  # polling /proc: a child process announces nothing
        assert time.monotonic() < deadline, "the stand-in manager never started its child"
        time.sleep(0.02)


@pytest.mark.parametrize("child, expected", [
    ([sys.executable, "-c", "import time; time.sleep(60)", "component_manager.runners.zygote"], "alive"),
    ([sys.executable, "-c", "import time; time.sleep(60)"], "dead")])
def test_the_zygote_is_found_among_the_managers_children(tmp_path, child, expected):
    manager = _fake_manager(tmp_path, child)
    try:
        _wait_for_child(manager.pid)
        assert zygote_state(str(tmp_path)) == expected
    finally:
        for pid in _children(manager.pid):
            os.kill(pid, 9)
        manager.kill()
        manager.wait()
    assert zygote_state(str(tmp_path / "nowhere")) == "unknown"
    [f] = check_zygote("dead", str(tmp_path))
    assert "zygote has died" in f["problem"] and "zygote.log" in f["next"]


def test_an_unresolved_instance_whose_manifest_is_gone(tmp_path):
    (tmp_path / "here.cml").write_text("{}")
    assert check_unresolved({"moniker": "/a", "url": f"file://{tmp_path}/here.cml"}) == []
    [f] = check_unresolved({"moniker": "/b", "url": f"file://{tmp_path}/gone.cml"})
    assert f["severity"] == "error" and "cannot resolve or start" in f["problem"]


def test_the_longer_status_is_shown_where_the_manager_sends_one():
    gave_up = info(status="failed", status_detail="failed (gave up after 5 restarts)", restart={"gave_up": True})
    [f] = check_instance(gave_up, 1024, None)
    assert f["problem"].startswith("failed (gave up after 5 restarts): ")
    assert f["next"].startswith("cm logs /counter; then cm ")
