"""Several instances in one `cm start` / `cm stop` (one StartMany / StopMany request), through
the real `cm` and manager: each is started or stopped as alone (its own reason, event and
record), one failure fails only itself, and a manager killed in the middle of a batch leaves
one copy of each program or none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from component_manager.faults import ENV_CRASH_AT
from component_manager.testing.process import ManagerProcess

from .test_crash_consistency import DEAD_TIMEOUT_S, programs_using, wait_for

pytestmark = pytest.mark.integration

COMPONENTS = Path(__file__).parent / "components"
REALM = str(COMPONENTS / "batch_realm.cml")
SLEEP = str(COMPONENTS / "sleep_process.cml")
KEEPER = str(COMPONENTS / "keeps_state.cml")


def create(manager: ManagerProcess, collection: str, names: list[str], url: str) -> list[str]:
    monikers = [f"/{collection}:{name}" for name in names]
    for moniker in monikers:
        manager.cm("create", moniker, url)
    return monikers


def test_start_and_stop_several_in_one_command(manager_dir):
    with ManagerProcess(manager_dir, root=REALM) as manager:
        monikers = create(manager, "procs", ["a", "b", "c"], SLEEP)
        started = manager.cm("start", *monikers, monikers[0])  # a repeated moniker is done once
        assert started.stdout.splitlines() == [f"{m}: started" for m in monikers]
        pids = {m: manager.show(m)["pid"] for m in monikers}
        assert all(pids.values()) and len(set(pids.values())) == 3

        again = manager.cm_json("start", *monikers)
        assert [(r["moniker"], r["was_running"], r["pid"]) for r in again] == [(m, True, pids[m]) for m in monikers]

        stopped = manager.cm("stop", "/procs:*")  # a pattern: every instance it fits
        events = []
        for moniker in monikers:
            with manager.events(moniker, history=True) as watch:
                events.append(watch.wait_for(type="stopped", moniker=moniker))
        assert sorted(stopped.stdout.splitlines()) == [f"{m}: stopped (stopped, ran {_ran(stopped.stdout, m)}s)"
                                                      for m in monikers]
        for moniker, event in zip(monikers, events):
            shown = manager.show(moniker)
            assert shown["execution_state"] == "stopped"
            assert (shown["last_stop"]["reason"], shown["last_stop"]["signal"]) == ("requested", 15)
            assert event["reason"] == "requested"
        assert manager.cm("stop", *monikers).stdout.splitlines() == [f"{m}: was not running" for m in monikers]


def _ran(stdout: str, moniker: str) -> str:
    line = next(line for line in stdout.splitlines() if line.startswith(moniker + ":"))
    return line.rsplit("ran ", 1)[1].rstrip("s)")


def test_one_bad_moniker_fails_alone(manager_dir):
    with ManagerProcess(manager_dir, root=REALM) as manager:
        monikers = create(manager, "procs", ["a", "b"], SLEEP)
        result = manager.cm("start", monikers[0], "/procs:nope", monikers[1], check=False)
        assert result.returncode == 4, result.stderr  # its only failure: not found
        assert result.stdout.splitlines() == [f"{m}: started" for m in monikers]
        assert result.stderr.splitlines() == ["cm: instance '/procs:nope' not found"]

        # A start that fails (the program raises before it serves) and a fragment that names
        # nothing: failures that differ are exit 1; the others still start and stop.
        result = manager.cm("stop", *monikers, "/fails", check=False)
        assert result.returncode == 0, result.stderr
        result = manager.cm("start", "--json", "/fails", *monikers, "no-such-fragment", check=False)
        assert result.returncode == 1
        rows = {r["moniker"]: r for r in json.loads(result.stdout)}
        assert rows["/fails"]["code"] == "FAILED_PRECONDITION" and rows["/fails"]["type"] == "StartError"
        assert rows["no-such-fragment"]["type"] == "InstanceNotFound"
        assert [rows[m]["execution_state"] for m in monikers] == ["running", "running"]
        assert len(result.stderr.splitlines()) == 2
        assert manager.show("/fails")["last_stop"]["reason"] == "start_failed"


@pytest.mark.parametrize("step", ["start.launched", "start.recorded", "start.released"])
def test_a_kill9_during_a_batch_start_leaves_one_copy_or_none(manager_dir, monkeypatch, step):
    monkeypatch.setenv("CM_ZYGOTE", "0")  # spawned, held: the batch's one commit is the intent
    with ManagerProcess(manager_dir, root=REALM) as manager:
        monikers = create(manager, "keepers", ["k1", "k2", "k3", "k4"], KEEPER)
        manager.cm("start", *monikers)  # storage exists from here on
        storages = {m: Path(manager.show(m)["storage"][0]["path"]) for m in monikers}
        manager.cm("stop", *monikers)

        manager.terminate()
        monkeypatch.setenv(ENV_CRASH_AT, step)
        manager.start()
        manager.cm("start", *monikers, check=False)
        assert manager.process.wait(DEAD_TIMEOUT_S) == -9, f"the manager did not die at {step}"
        monkeypatch.delenv(ENV_CRASH_AT)
        manager.start()

        for moniker, storage in storages.items():
            copies = programs_using(storage)
            assert len(copies) <= 1, f"two copies of {moniker} after a kill -9 at {step}: {copies}"
            shown = manager.show(moniker)
            assert shown["pid"] == (min(copies) if copies else None), (moniker, shown, copies)
        manager.cm("start", *monikers)
        pids = {m: manager.show(m)["pid"] for m in monikers}
        for moniker, storage in storages.items():  # ready: spawned; a new copy opens it soon
            wait_for(lambda: programs_using(storage) == {pids[moniker]})
        manager.cm("stop", *monikers)
        assert all(programs_using(s) == set() for s in storages.values())


def test_a_parent_and_its_child_in_one_batch(manager_dir):
    """A member that must wait on another member (a child on its parent's start, a parent
    on its children's stops) leaves the batch's commit: none waits on the other."""
    governed = str(COMPONENTS / "governed_realm.cml")
    with ManagerProcess(manager_dir, root=governed) as manager:
        result = manager.cm("start", "/parent/kid", "/parent")
        assert sorted(result.stdout.splitlines()) == ["/parent/kid: started", "/parent: started"] or \
            sorted(result.stdout.splitlines()) == ["/parent/kid: started", "/parent: already running"]
        assert manager.show("/parent")["start_reason"].startswith("parent of '/parent/kid'") or \
            manager.show("/parent")["start_reason"] == "requested via the API (cm start)"
        manager.cm("stop", "/parent", "/parent/kid")
        assert manager.show("/parent")["last_stop"]["reason"] == "requested"
        assert manager.show("/parent/kid")["last_stop"]["reason"] in ("requested", "parent_stopping")
        assert [manager.show(m)["execution_state"] for m in ("/parent", "/parent/kid")] == ["stopped", "stopped"]


def test_a_batch_stop_ends_what_each_program_left_behind(manager_dir):
    """A program's daemon (a child in a session of its own) is found in its cgroup and
    killed by its stop, in a batch as alone."""
    from component_manager.runners.cgroups import hierarchy
    from component_manager.testing.process import pid_alive

    if hierarchy() is None:
        pytest.skip("no cgroups here: a daemon is found at the next boot, by its mark")
    with ManagerProcess(manager_dir, root=str(COMPONENTS / "crash_realm.cml")) as manager:
        manager.cm("start", "/daemon", "/keeper")
        shown = manager.show("/daemon")
        daemon = int(Path(shown["log_path"]).read_text().split("daemon=")[1].split()[0])
        assert pid_alive(daemon)
        manager.cm("stop", "/daemon", "/keeper")
        wait_for(lambda: not pid_alive(daemon))
        assert manager.show("/daemon")["last_stop"]["reason"] == "requested"
