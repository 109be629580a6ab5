"""Storage snapshots as a user meets them: `cm storage snapshot` / `restore` against the real
manager and the example realm's counter (it adds one to a key of its storage at each start
and prints count=N), the snapshot line of `cm show`, and a snapshot that goes with its
storage (`cm storage delete`) and with its instance (destroy)."""

from __future__ import annotations

import json
import time

import pytest

from component_manager.faults import ENV_CRASH_AT
from component_manager.testing.process import ManagerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def last_count(manager: ManagerProcess, moniker: str) -> str:
    return manager.cm("logs", moniker).stdout.strip().splitlines()[-1]


def test_snapshot_restore_and_the_line_in_cm_show(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        assert manager.cm_json("show", "counter")["snapshot"] is None
        assert "Snapshot" not in manager.cm("show", "counter").stdout

        refused = manager.cm("storage", "restore", "counter", check=False)
        assert (refused.returncode, refused.stderr) == (
            1, "cm: instance '/counter': has no storage snapshot: take one with `cm storage snapshot`\n")
        refused = manager.cm("storage", "snapshot", "counter", check=False)
        assert refused.returncode == 1 and "has no storage area yet" in refused.stderr

        manager.cm("start", "/counter")
        assert last_count(manager, "/counter") == "count=1"
        before = time.time()
        assert manager.cm("storage", "snapshot", "counter").stdout.startswith(
            "/counter: storage snapshot taken (data, ")  # while it runs: a read transaction
        taken = manager.cm_json("storage", "snapshot", "counter")  # the last one wins
        assert taken["areas"] == ["data"] and taken["snapshot"]["node"] == "local"
        assert before - 1 <= taken["snapshot"]["taken_at"] <= time.time() + 1
        shown = manager.cm_json("show", "counter")["snapshot"]
        assert shown == taken["snapshot"] and shown["size_bytes"] > 0
        line = next(x for x in manager.cm("show", "counter").stdout.splitlines() if x.startswith("Snapshot"))
        assert line.split(None, 1)[1].startswith("from local, ") and " s old, " in line and line.endswith("KiB")
        assert "snapshot: from local" in manager.cm("storage", "show", "counter").stdout

        refused = manager.cm("storage", "restore", "counter", check=False)
        assert (refused.returncode, refused.stderr) == (
            1, "cm: instance '/counter': is running; stop it before restoring its storage\n")

        manager.cm("stop", "/counter")
        manager.cm("start", "/counter")
        assert last_count(manager, "/counter") == "count=2"
        manager.cm("stop", "/counter")
        out = manager.cm("storage", "restore", "counter").stdout
        assert out.startswith("/counter: storage restored (data); snapshot: from local, ")
        manager.cm("start", "/counter")
        assert last_count(manager, "/counter") == "count=2"  # count=1 came back, then one more
        lines = manager.cm("events", "--moniker", "/counter", "--json").stdout.splitlines()
        events = [json.loads(line)["type"] for line in lines]
        assert "storage_snapshotted" in events and "storage_restored" in events


def test_the_snapshot_survives_a_manager_restart_and_goes_with_the_storage(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("start", "/counter")
        manager.cm("stop", "/counter")
        taken = manager.cm_json("storage", "snapshot", "counter")["snapshot"]
    with ManagerProcess(manager_dir) as manager:
        assert manager.cm_json("show", "counter")["snapshot"] == taken
        manager.cm("storage", "delete", "counter")
        assert manager.cm_json("show", "counter")["snapshot"] is None
        assert list((manager_dir / "snapshots").iterdir()) == []
        refused = manager.cm("storage", "restore", "counter", check=False)
        assert "has no storage snapshot" in refused.stderr


def test_destroy_deletes_the_snapshot_with_the_storage(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("create", "/workers:c1", "counter/counter.cml")
        manager.cm("start", "/workers:c1")
        manager.cm_json("storage", "snapshot", "/workers:c1")
        assert len(list((manager_dir / "snapshots").iterdir())) == 1
        manager.cm("destroy", "/workers:c1")
        assert list((manager_dir / "snapshots").iterdir()) == []
        manager.cm("create", "/workers:c1", "counter/counter.cml")  # a new identity: no snapshot
        assert manager.cm_json("show", "/workers:c1")["snapshot"] is None


def test_a_manager_killed_mid_snapshot_keeps_the_last_one(manager_dir, monkeypatch):
    """kill -9 once the new snapshot's file is durable, before its record: the restarted
    manager shows and restores the one before, and the orphan file is gone."""
    with ManagerProcess(manager_dir) as manager:
        manager.cm("start", "/counter")
        manager.cm("stop", "/counter")
        first = manager.cm_json("storage", "snapshot", "counter")["snapshot"]  # count=1
        manager.cm("start", "/counter")
        manager.cm("stop", "/counter")  # count=2 in the area now
        manager.terminate()
        monkeypatch.setenv(ENV_CRASH_AT, "snapshot.written")
        manager.start()
        manager.cm("storage", "snapshot", "counter", check=False)
        assert manager.process.wait(30) == -9, "the manager did not die at snapshot.written"
        assert len(list((manager_dir / "snapshots").iterdir())) == 2  # the new file, no record
        monkeypatch.delenv(ENV_CRASH_AT)
        manager.start()
        assert manager.cm_json("show", "counter")["snapshot"] == first
        assert len(list((manager_dir / "snapshots").iterdir())) == 1
        manager.cm("storage", "restore", "counter")
        manager.cm("start", "/counter")
        assert last_count(manager, "/counter") == "count=2"  # count=1 came back, then one more
