"""A cgroup per instance (real cgroups: skipped where the host does not allow them)."""

import os
import signal
import subprocess
import uuid

import pytest

from component_manager.runners.cgroups import Cgroups, cgroups_enabled, manager_mark


@pytest.fixture
def groups():
    found = Cgroups.open(f"test-{uuid.uuid4().hex[:12]}")
    if found is None:
        pytest.skip("no writable cgroup v2 delegation or cgroup v1 pids controller here")
    yield found
    for key in found.keys():
        found.kill_all(key)
        found.remove(key)
    found.close()


def test_everything_a_program_forks_is_found_and_killed(groups):
    groups.create("inst")
    parent = subprocess.Popen(["sh", "-c", "setsid sleep 60 & sleep 60"], start_new_session=True)
    groups.add("inst", parent.pid)  # before it runs anything worth finding, in real use
    try:
        child = subprocess.Popen(["sleep", "60"])  # ours, not in the group: must be spared
        assert parent.pid in groups.pids("inst")
        assert groups.kill_all("inst") >= 1
        assert groups.pids("inst") == []
        assert groups.remove("inst") and "inst" not in groups.keys()
        assert child.poll() is None
    finally:
        parent.wait(10)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


def test_a_mark_names_one_state_directory(tmp_path):
    assert manager_mark(tmp_path) == manager_mark(tmp_path / "." ) != manager_mark(tmp_path / "x")
    assert cgroups_enabled({}) and not cgroups_enabled({"CM_CGROUPS": "0"})
