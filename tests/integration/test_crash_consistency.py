"""Nothing lost, nothing twice: a manager killed with -9 at each step of a start or a destroy
(``component_manager.faults``: ``CM_TEST_CRASH_AT`` names the step) leaves exactly one copy
of the program or none, and storage only with its record."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from component_manager.faults import ENV_CRASH_AT
from component_manager.testing.process import ManagerProcess, pid_alive

pytestmark = pytest.mark.integration

DEAD_TIMEOUT_S = 30
COMPONENTS = Path(__file__).parent / "components"
CRASH_REALM = str(COMPONENTS / "crash_realm.cml")


def programs_using(storage: Path) -> set[int]:
    """Live processes that map the LMDB of ``storage``: the copies of its program."""
    needle = str(storage / "data.mdb")
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/maps") as f:
                if needle in f.read():
                    found.add(int(entry.name))
        except OSError:
            continue
    return {pid for pid in found if pid_alive(pid)}


def crash_during(manager: ManagerProcess, monkeypatch, step: str, *command: str) -> None:
    """Restart ``manager`` armed to die at ``step``, run ``cm *command`` (it dies), restart
    it unarmed."""
    manager.terminate()
    monkeypatch.setenv(ENV_CRASH_AT, step)
    manager.start()
    if os.environ.get("CM_ZYGOTE") != "0":
        wait_zygote_ready(manager)  # so that the program is forked by it, not spawned
    manager.cm(*command, check=False)
    assert manager.process.wait(DEAD_TIMEOUT_S) == -9, f"the manager did not die at {step}"
    monkeypatch.delenv(ENV_CRASH_AT)
    manager.start()


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def wait_zygote_ready(manager: ManagerProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while "zygote ready" not in manager.log_text().rpartition("serving at")[2]:
        assert time.monotonic() < deadline, f"no ready zygote; manager log:\n{manager.log_text()}"
        time.sleep(0.01)


@pytest.mark.parametrize("zygote", ["1", "0"])
@pytest.mark.parametrize("step", ["start.launched", "start.recorded", "start.released"])
def test_a_kill9_during_a_start_leaves_one_copy_or_none(manager_dir, monkeypatch, step, zygote):
    monkeypatch.setenv("CM_ZYGOTE", zygote)
    with ManagerProcess(manager_dir, root=CRASH_REALM) as manager:
        manager.cm("start", "/keeper")  # storage exists from here on
        manager.cm("stop", "/keeper")
        shown = manager.show("/keeper")
        storage, log = Path(shown["storage"][0]["path"]), Path(shown["log_path"])

        crash_during(manager, monkeypatch, step, "start", "/keeper")
        time.sleep(0.5)  # a copy that runs unrecorded has opened its storage by now
        copies = programs_using(storage)
        assert len(copies) <= 1, f"two copies of /keeper after a kill -9 at {step}: {copies}"
        shown = manager.show("/keeper")
        if copies:  # it ran: the new manager adopted it
            assert (shown["execution_state"], shown["pid"]) == ("running", min(copies))
        counted = log.read_text().count("count=") if log.exists() else 0
        was_running = bool(copies)
        manager.cm("start", "/keeper")
        running = manager.show("/keeper")["pid"]
        if not was_running:  # ready: spawned: wait until the new copy has opened its storage
            wait_for(lambda: log.exists() and log.read_text().count("count=") > counted)
        assert programs_using(storage) == {running}, f"one copy after a start (log: {log.read_text()})"

        manager.cm("stop", "/keeper")
        assert programs_using(storage) == set()


@pytest.mark.parametrize("step", ["destroy.tombstone", "destroy.deleted"])
def test_a_kill9_during_a_destroy_finishes_it_at_recovery(manager_dir, monkeypatch, step):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("create", "/workers:c1", "counter/counter.cml")
        manager.cm("start", "/workers:c1")
        shown = manager.show("/workers:c1")
        storage, log = Path(shown["storage"][0]["path"]), Path(shown["log_path"])
        manager.cm("stop", "/workers:c1")

        crash_during(manager, monkeypatch, step, "destroy", "/workers:c1")
        listed = [c["moniker"] for c in manager.cm_json("list")]
        assert "/workers:c1" not in listed, "an interrupted destroy is finished at recovery"
        assert not storage.exists() and not log.exists()
        assert programs_using(storage) == set()

        manager.cm("create", "/workers:c1", "counter/counter.cml")
        manager.cm("start", "/workers:c1")
        assert Path(manager.show("/workers:c1")["log_path"]).read_text().count("count=") == 1


@pytest.mark.parametrize("cgroups", ["", "none"])
def test_what_cannot_be_adopted_is_stopped_with_all_it_spawned(manager_dir, monkeypatch, cgroups):
    """Recovery finds a program's processes by cgroup, group, session and mark, never only
    by the recorded pid: here a child it spawned into a session of its own."""
    monkeypatch.setenv("CM_CGROUPS", cgroups)
    with ManagerProcess(manager_dir, root=CRASH_REALM) as manager:
        manager.cm("start", "/daemon")
        shown = manager.show("/daemon")
        pid = shown["pid"]
        daemon = int(Path(shown["log_path"]).read_text().split("daemon=")[1].split()[0])
        assert pid_alive(daemon) and os.getsid(daemon) != os.getsid(pid)
        manager.kill9()
        _forget_run_secrets(manager.state_dir)  # as an older manager's record: not adoptable
        manager.start()
        assert not pid_alive(pid), "a recorded program that cannot be adopted is stopped"
        assert not pid_alive(daemon), "so is what it spawned into a session of its own"
        assert manager.show("/daemon")["last_stop"]["reason"] == "system_shutdown"


def _forget_run_secrets(state_dir: Path) -> None:
    """Rewrite every process record without what adopting it needs (as an older manager's)."""
    import dataclasses

    from component_manager.storage.topology import TopologyStore

    store = TopologyStore(state_dir / "manager.lmdb")
    try:
        for record in store.all_processes():
            store.put_process(dataclasses.replace(record, run=None))
    finally:
        store.close()


def test_a_dynamic_child_is_adopted_too(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("create", "/workers:c1", "counter/counter.cml")
        manager.cm("start", "/workers:c1")
        before = manager.show("/workers:c1")
        manager.kill9()
        manager.start()
        after = manager.show("/workers:c1")
        assert (after["instance_id"], after["pid"], after["execution_state"]) == \
            (before["instance_id"], before["pid"], "running")
        manager.cm("destroy", "/workers:c1")
        assert not pid_alive(before["pid"])
