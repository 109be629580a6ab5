"""The manager as a user meets it: a real manager process, real component processes, real
LMDB on disk, driven through the real `cm` executable and the gRPC API."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from component_manager._generated import manager_pb2, manager_pb2_grpc
from component_manager.testing.process import ManagerProcess, pid_alive

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
LIFECYCLE_REALM = str(HERE / "components" / "lifecycle_realm.cml")


def counts(manager: ManagerProcess, moniker: str) -> list[int]:
    log = Path(manager.show(moniker)["log_path"])
    return [int(n) for n in re.findall(r"count=(\d+)", log.read_text())]


def test_counter_state_survives_stop_start_and_kill9(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("start", "/counter")
        manager.cm("stop", "/counter")
        manager.cm("start", "/counter")
        assert counts(manager, "/counter") == [1, 2]
        before = manager.show("/counter")
        assert before["execution_state"] == "running"

        manager.kill9()
        assert pid_alive(before["pid"]), "a manager killed with -9 cannot stop its programs"
        manager.start()
        after = manager.show("/counter")
        assert after["instance_id"] == before["instance_id"]
        assert after["pid"] == before["pid"], "the restarted manager adopts what the dead one left"
        assert after["execution_state"] == "running"
        manager.cm("start", "/counter")  # already running: no second copy
        assert counts(manager, "/counter") == [1, 2]

        manager.cm("stop", "/counter")
        assert not pid_alive(before["pid"])
        assert manager.show("/counter")["last_stop"]["reason"] == "requested"
        manager.cm("start", "/counter")
        assert counts(manager, "/counter")[-1] == 3


def test_destroyed_dynamic_child_comes_back_as_a_new_identity(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("create", "/workers:c1", "counter/counter.cml")
        first = manager.show("/workers:c1")
        manager.cm("start", "/workers:c1")
        manager.cm("stop", "/workers:c1")
        manager.cm("start", "/workers:c1")
        assert counts(manager, "/workers:c1") == [1, 2]
        storage = Path(manager.show("/workers:c1")["storage"][0]["path"])
        assert storage.exists()
        own_folder = manager.state_dir / "run" / first["instance_id"][:16]  # its TMPDIR
        assert own_folder.is_dir()

        manager.cm("destroy", "/workers:c1")
        assert not storage.exists(), "destroy deletes the instance's storage"
        assert not own_folder.exists(), "and its own folder"
        manager.cm("create", "/workers:c1", "counter/counter.cml")
        second = manager.show("/workers:c1")
        assert second["instance_id"] != first["instance_id"]
        assert second["incarnation"] > first["incarnation"]
        manager.cm("start", "/workers:c1")
        assert counts(manager, "/workers:c1") == [1]


def test_persistent_children_survive_a_manager_restart(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("create", "/workers:keep", "counter/counter.cml")
        identity = manager.show("/workers:keep")["instance_id"]
        assert manager.terminate() == 0
        manager.start()
        assert manager.show("/workers:keep")["instance_id"] == identity


def test_stop_dispositions(manager_dir):
    with ManagerProcess(manager_dir, root=LIFECYCLE_REALM) as manager:
        manager.cm("start", "/ignores_stop")
        manager.cm("stop", "/ignores_stop")
        ignored = manager.show("/ignores_stop")["last_stop"]
        assert ignored["reason"] == "requested"
        assert ignored["disposition"] == "killed_after_timeout"
        assert ignored["signal"] == 9  # it ignored SIGTERM too

        manager.cm("start", "/handles_stop")
        manager.cm("stop", "/handles_stop")
        handled = manager.show("/handles_stop")["last_stop"]
        assert (handled["disposition"], handled["exit_code"]) == ("stopped", 0)

        with manager.events() as events:
            manager.cm("start", "/crashes")
            crash = events.wait_for(type="stopped", moniker="/crashes")
        assert crash["reason"] == "crashed"
        assert crash["stop"]["signal"] == 11
        assert manager.show("/crashes")["last_stop"]["reason"] == "crashed"


def test_list_tree_and_show_say_failed_for_a_crash_and_for_exit_1(manager_dir):
    with ManagerProcess(manager_dir, root=LIFECYCLE_REALM) as manager:
        with manager.events() as events:
            for moniker in ("/crashes", "/exits_1"):
                manager.cm("start", moniker)
                events.wait_for(type="stopped", moniker=moniker)
        manager.cm("start", "/handles_stop")
        manager.cm("stop", "/handles_stop")
        rows = {r["moniker"]: r for r in manager.cm_json("list")}
        assert (rows["/crashes"]["status"], rows["/exits_1"]["status"]) == ("failed", "failed")
        assert rows["/handles_stop"]["status"] == "stopped"
        listed = {line.split()[0]: line.split()[1] for line in manager.cm("list").stdout.splitlines()[1:]}
        assert (listed["/crashes"], listed["/exits_1"], listed["/handles_stop"]) == ("failed", "failed", "stopped")
        tree = manager.cm("tree").stdout
        assert "crashes  failed (crashed)" in tree and "exits_1  failed (exited)" in tree
        assert "(failed)" in manager.cm("show", "/exits_1").stdout


def test_a_stop_aborts_a_start_in_flight_and_kills_what_it_launched(manager_dir):
    with ManagerProcess(manager_dir, root=LIFECYCLE_REALM) as manager, ThreadPoolExecutor(1) as pool:
        starting = pool.submit(manager.cm, "start", "/never_serves", check=False)
        log = Path(manager.show("/never_serves")["log_path"])
        deadline = time.monotonic() + 30
        while not (found := re.search(r"launched pid=(\d+)", log.read_text() if log.exists() else "")):
            assert time.monotonic() < deadline, "the program was never launched"
            time.sleep(0.02)
        pid = int(found.group(1))
        manager.cm("stop", "/never_serves")
        start = starting.result(timeout=30)
        assert start.returncode != 0 and "aborted by a stop" in start.stderr
        assert not pid_alive(pid)
        shown = manager.show("/never_serves")
        assert shown["execution_state"] == "stopped"
        assert shown["last_stop"]["reason"] == "start_failed"


def test_thousands_of_concurrent_creates_all_succeed(manager_dir):
    # gRPC's default server limits cancel calls beyond ~1,000-3,000 waiting for a handler.
    with ManagerProcess(manager_dir) as manager:
        realm = manager_pb2_grpc.RealmStub(manager.channel())
        calls = [realm.CreateChild.future(manager_pb2.CreateChildRequest(
            parent="/", collection="workers", name=f"w{i}", url="counter/counter.cml"), timeout=120)
            for i in range(4000)]
        failed = [c.exception() for c in calls if c.exception() is not None]
        assert not failed, f"{len(failed)} failed, the first: {failed[0]}"
        listed = manager.cm("list", "--json").stdout
        assert listed.count('"/workers:w') == 4000


def test_fifty_concurrent_starts_start_one_process(manager_dir):
    with ManagerProcess(manager_dir) as manager, manager.events("/counter") as events:
        stub = manager_pb2_grpc.LifecycleControllerStub(manager.channel())
        request = manager_pb2.InstanceRequest(moniker="/counter")
        with ThreadPoolExecutor(50) as pool:
            replies = list(pool.map(lambda _: stub.Start(request, timeout=60), range(50)))
        assert len({r.instance.pid for r in replies}) == 1
        assert sum(not r.was_running for r in replies) >= 1
        events.wait_for(type="started", moniker="/counter")
        assert [e["type"] for e in events.seen].count("started") == 1
        assert counts(manager, "/counter") == [1]


def test_no_program_outlives_an_ordered_shutdown(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("start", "/counter")
        manager.cm("run", "/workers:w1", "counter/counter.cml")
        pids = [manager.show(m)["pid"] for m in ("/counter", "/workers:w1")]
        assert all(pid_alive(pid) for pid in pids)
        assert manager.terminate() == 0
        assert not any(pid_alive(pid) for pid in pids)
        manager.start()
        assert manager.show("/counter")["last_stop"]["reason"] == "system_shutdown"


@pytest.mark.parametrize("args, code, exit_code, fragment", [
    (("show", "/nope"), grpc.StatusCode.NOT_FOUND, 4, "'/nope' not found"),
    (("start", "/Bad Name"), grpc.StatusCode.INVALID_ARGUMENT, 1, "invalid moniker '/Bad Name'"),
    (("destroy", "/counter"), grpc.StatusCode.FAILED_PRECONDITION, 1, "'/counter'"),
    (("create", "/nowhere:x", "counter/counter.cml"), grpc.StatusCode.NOT_FOUND, 4, "no collection 'nowhere'"),
    (("create", "/workers:x", "does/not/exist.cml"), grpc.StatusCode.INVALID_ARGUMENT, 1, "does/not/exist.cml"),
])
def test_bad_requests_get_one_line_and_the_manager_keeps_serving(manager_dir, args, code, exit_code, fragment):
    with ManagerProcess(manager_dir) as manager:
        result = manager.cm(*args, check=False)
        assert result.returncode == exit_code
        assert fragment in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr
        assert "/counter" in {row["moniker"] for row in manager.cm_json("list")}


def test_create_of_an_existing_name_is_already_exists(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("create", "/workers:c1", "counter/counter.cml")
        stub = manager_pb2_grpc.RealmStub(manager.channel())
        with pytest.raises(grpc.RpcError) as error:
            stub.CreateChild(manager_pb2.CreateChildRequest(
                parent="/", collection="workers", name="c1", url="counter/counter.cml"), timeout=30)
        assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "/workers:c1" in error.value.details()


def test_control_socket_is_owner_only(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        mode = (manager.state_dir / "manager.sock").stat().st_mode & 0o777
        assert mode == 0o600


def test_resolve_loads_a_manifest_without_starting_anything(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("create", "/workers:r1", "counter/counter.cml")
        assert manager.show("/workers:r1")["state"] == "unresolved"
        reply = manager.cm_json("resolve", "/workers:r1")
        assert (reply["state"], reply["execution_state"]) == ("resolved", "stopped")
        assert manager.show("/workers:r1")["fingerprint"]
