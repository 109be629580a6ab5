"""Capabilities as users rely on them: lazy start through a route, idle stop, eager
children, and shutdown in dependency order, with real processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from component_manager.testing.process import ManagerProcess

pytestmark = pytest.mark.integration

COMPONENTS = Path(__file__).parent / "components"


def test_echo_starts_lazily_stops_idle_and_comes_back_with_its_storage(manager_dir):
    with ManagerProcess(manager_dir) as manager, manager.events() as events:
        assert manager.show("/echo_server")["execution_state"] == "stopped"
        manager.cm("start", "/echo_client")
        first_start = events.wait_for(type="started", moniker="/echo_server")
        assert first_start["reason"] == "'/echo_client' requested capability 'echo.Echo'"
        events.wait_for(type="stopped", moniker="/echo_client", reason="exited")
        idle = events.wait_for(type="stopped", moniker="/echo_server", timeout=30)
        assert idle["reason"] == "idle"
        server = manager.show("/echo_server")
        assert server["last_stop"]["reason"] == "idle"
        storage = Path(server["storage"][0]["path"])
        assert storage.exists()

        manager.cm("start", "/echo_client")  # the next call starts the server again
        events.wait_for(type="started", moniker="/echo_server")
        events.wait_for(type="stopped", moniker="/echo_client", reason="exited")
        assert manager.show("/echo_server")["instance_id"] == server["instance_id"]
        assert Path(manager.show("/echo_server")["storage"][0]["path"]) == storage
        log = Path(manager.show("/echo_client")["log_path"]).read_text()
        assert log.count("hello: hi") == 2


def test_manager_shutdown_stops_dependents_first_and_independents_in_parallel(manager_dir):
    with ManagerProcess(manager_dir, root=str(COMPONENTS / "chain_realm.cml")) as manager:
        for name in "abcd":
            manager.cm("start", f"/{name}")
        assert manager.terminate() == 0
        manager.start()
        with manager.events(history=True) as events:
            events.wait_for(type="stopped", moniker="/c")
        stops = [e for e in events.seen if e["type"] == "stopped" and e["reason"] == "system_shutdown"]
        order = [e["moniker"] for e in stops]
        assert set(order[:2]) == {"/a", "/d"}, order
        assert order.index("/b") < order.index("/c")
        assert order.index("/a") < order.index("/b")
        assert all(e["stop"]["disposition"] == "stopped" for e in stops)


def test_eager_children_start_with_their_parent_and_are_adopted_after_a_crash_of_the_manager(manager_dir):
    realm = str(COMPONENTS / "eager_realm.cml")
    with ManagerProcess(manager_dir, root=realm) as manager:
        with manager.events(history=True) as events:
            started = events.wait_for(type="started", moniker="/early")
        assert started["reason"] == "eager child of a started parent"
        assert manager.show("/late")["execution_state"] == "stopped"
        first_pid = manager.show("/early")["pid"]

        manager.kill9()
        manager.start()
        with manager.events(history=True) as events:
            events.wait_for(type="started", moniker="/")
            events.wait_for(type="started", moniker="/")  # the root again, with the new manager
        early = manager.show("/early")
        assert (early["pid"], early["execution_state"]) == (first_pid, "running")  # adopted, not restarted


def test_stop_reasons_of_a_parent_stop_and_a_destroy_are_recorded(manager_dir):
    with ManagerProcess(manager_dir) as manager, manager.events() as events:
        manager.cm("run", "/workers:w1", "counter/counter.cml")
        manager.cm("destroy", "/workers:w1")
        destroyed = events.wait_for(type="stopped", moniker="/workers:w1")
        assert destroyed["reason"] == "destroying"
        events.wait_for(type="destroyed", moniker="/workers:w1")

        manager.cm("start", "/counter")
        manager.cm("stop", "/")
        assert events.wait_for(type="stopped", moniker="/counter")["reason"] == "parent_stopping"
        assert manager.show("/counter")["last_stop"]["reason"] == "parent_stopping"
