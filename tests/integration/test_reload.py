"""Reload: a copy of the example realm is edited while it runs; only what changed restarts."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from component_manager.testing.process import ManagerProcess, pid_alive

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def realm(manager_dir) -> Path:
    """A copy of the example realm's package, beside the state directory."""
    package = manager_dir.parent / "pkg"
    shutil.copytree(ROOT / "components", package / "components",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return package / "components"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _pids(manager, *monikers) -> dict:
    return {m: manager.show(m)["pid"] for m in monikers}


def test_reload_restarts_only_the_changed_instance(manager_dir, realm):
    with ManagerProcess(manager_dir, root=str(realm / "realm.cml")) as manager:
        manager.cm("start", "/echo_server")
        manager.cm("start", "/counter")
        before = _pids(manager, "/echo_server", "/counter")
        _edit(realm / "counter" / "counter.cml", 'ready: "serving",', 'ready: "serving", stop_timeout: "4s",')
        report = manager.cm_json("reload")
        assert report["restarted"] == ["/counter"]
        assert "/echo_server" in report["unchanged"] and not report["failed"]
        after = _pids(manager, "/echo_server", "/counter")
        assert after["/echo_server"] == before["/echo_server"]
        assert after["/counter"] != before["/counter"] and not pid_alive(before["/counter"])
        shown = manager.show("/counter")
        assert shown["last_stop"]["reason"] == "package_updated"
        assert shown["start_reason"] == "restarted on the updated package"
        log = Path(shown["log_path"]).read_text()
        assert re.findall(r"count=(\d+)", log) == ["1", "2"]  # its storage stayed

        assert manager.cm_json("reload")["restarted"] == []  # nothing changed since


def test_reload_restarts_a_program_whose_files_changed(manager_dir, realm):
    with ManagerProcess(manager_dir, root=str(realm / "realm.cml")) as manager:
        manager.cm("start", "/echo_server")
        manager.cm("start", "/counter")
        before = _pids(manager, "/echo_server", "/counter")
        with open(realm / "echo" / "server.py", "a") as f:
            f.write("\n# edited\n")
        out = manager.cm("reload").stdout
        assert "restarted: /echo_server" in out
        assert manager.show("/counter")["pid"] == before["/counter"]
        assert manager.show("/echo_server")["last_stop"]["reason"] == "package_updated"


def test_a_broken_manifest_changes_nothing_and_every_problem_is_reported(manager_dir, realm):
    with ManagerProcess(manager_dir, root=str(realm / "realm.cml")) as manager:
        manager.cm("start", "/counter")
        before = manager.show("/counter")["pid"]
        _edit(realm / "counter" / "counter.cml", 'ready: "serving",', 'ready: "soon",')
        _edit(realm / "echo" / "echo_server.cml", 'idle_timeout: "3s",', 'idle_timeout: "3 s",')
        result = manager.cm("reload", check=False)
        assert result.returncode == 1
        assert re.search(r"counter\.cml:\d+: program\.ready: ", result.stderr), result.stderr
        assert re.search(r"echo_server\.cml:\d+: program\.idle_timeout: invalid duration", result.stderr)
        assert "Traceback" not in result.stderr
        assert manager.show("/counter")["pid"] == before


def test_children_added_and_removed_are_created_and_destroyed(manager_dir, realm):
    with ManagerProcess(manager_dir, root=str(realm / "realm.cml")) as manager:
        manager.cm("start", "/counter")
        before = manager.show("/counter")["pid"]
        _edit(realm / "realm.cml", '{ name: "echo_client", url: "echo/echo_client.cml" },',
              '{ name: "counter2", url: "counter/counter.cml" },')
        _edit(realm / "realm.cml", '"#counter", "#flaky", "#workers"', '"#counter", "#counter2", "#flaky", "#workers"')
        _edit(realm / "realm.cml", '{ protocol: "echo.Echo", from: "#echo_server", to: "#echo_client" },', "")
        report = manager.cm_json("reload")
        assert report["created"] == ["/counter2"]
        assert report["destroyed"] == ["/echo_client"]
        assert report["updated"] == ["/"] and report["restarted"] == []
        assert manager.show("/counter")["pid"] == before
        assert "/echo_client" not in [row["moniker"] for row in manager.cm_json("list")]
        manager.cm("start", "/counter2")


def test_watch_reloads_when_a_manifest_changes(manager_dir, realm):
    with ManagerProcess(manager_dir, root=str(realm / "realm.cml"), args=("--watch",)) as manager:
        manager.cm("start", "/counter")
        manager.cm("start", "/echo_server")
        server = manager.show("/echo_server")["pid"]
        with manager.events() as events:
            _edit(realm / "counter" / "counter.cml", 'ready: "serving",', 'ready: "serving", stop_timeout: "4s",')
            stopped = events.wait_for(type="stopped", moniker="/counter")
            events.wait_for(type="started", moniker="/counter")
        assert stopped["reason"] == "package_updated"
        assert manager.show("/echo_server")["pid"] == server
