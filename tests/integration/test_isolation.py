"""Isolation, tested by real component programs that try to break in and fail.

Each attempt is made by a program the manager runs (``tests/integration/components``); it
prints what it observed (``ATTEMPT {json}`` lines in its log) and reports through its exit
code, and the test waits for its ``stopped`` event: no sleeps.

What is enforced, and where:

* a provider refuses every call without a grant the manager issued for this run of it, for
  this client and for the called service (the SDK, ``grants.py``);
* Connect answers only for capabilities the caller uses and that are routed to it
  (``actions/open.py``); ComponentRuntime only for the token of a running program;
* the control API (``manager.sock``) refuses connections from component programs
  (``api/relay.py``: SO_PEERCRED, session and ancestry); a component reaches a control
  service only when it is routed to it ``from: "framework"``, with a grant for that service;
* storage: through the manager an instance gets only its own areas.

What is NOT preventable here: every program runs with the manager's uid, so a program can
open another instance's storage directory (or any file of that user) directly on the
filesystem, and a program that daemonizes itself out of its session (double fork + setsid)
is not recognised by the control-socket guard. Real separation needs one uid per instance
(or namespaces); these tests prove what goes *through the manager*.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from component_manager._generated import manager_pb2, manager_pb2_grpc
from component_manager.testing.process import ManagerProcess

pytestmark = pytest.mark.integration

REALM = str(Path(__file__).parent / "components" / "isolation_realm.cml")


@pytest.fixture(scope="module")
def manager():
    base = Path(tempfile.mkdtemp(prefix="cm-iso-"))
    with ManagerProcess(base / "state", root=REALM) as manager:
        yield manager
    shutil.rmtree(base, ignore_errors=True)


def run_to_end(manager: ManagerProcess, moniker: str) -> dict:
    """Start a program that ends by itself; its `stopped` event."""
    with manager.events(moniker) as events:
        manager.cm("start", moniker)
        return events.wait_for(type="stopped", moniker=moniker, timeout=60)


def log_of(manager: ManagerProcess, moniker: str) -> str:
    return Path(manager.show(moniker)["log_path"]).read_text()


def attempts(text: str) -> dict[str, dict]:
    found = [json.loads(line.removeprefix("ATTEMPT ")) for line in text.splitlines()
             if line.startswith("ATTEMPT ")]
    return {a["attack"]: a for a in found}  # the last run's line wins


@pytest.fixture(scope="module")
def intruder(manager):
    """The intruder, run twice (the second run also tries the token of the first)."""
    for _ in range(2):
        stopped = run_to_end(manager, "/intruder")
    return stopped, log_of(manager, "/intruder")


def test_the_intruder_got_nowhere(intruder):
    stopped, log = intruder
    assert "CONTROL with grant: OK" in log, log  # its own grant does work: the refusals are real
    assert stopped["reason"] == "exited" and stopped["stop"]["exit_code"] == 0, log
    assert len(attempts(log)) == 16


@pytest.mark.parametrize("attack, code, fragment", [
    ("no_grant", "PERMISSION_DENIED", "calling /test.X/Echo"),
    ("forged_mac", "PERMISSION_DENIED", "forged"),
    ("forged_client", "PERMISSION_DENIED", "forged"),
    ("wrong_service", "PERMISSION_DENIED", "grant is for 'test.X', not 'test.Y'"),
    ("connect_unused", "FAILED_PRECONDITION", "'test.Y' used by '/intruder'"),
    ("connect_unrouted", "FAILED_PRECONDITION", "'test.Z' used by '/intruder'"),
    ("token_made_up", "PERMISSION_DENIED", "cm-token"),
    ("token_empty", "PERMISSION_DENIED", "cm-token"),
    ("token_altered", "PERMISSION_DENIED", "cm-token"),
    ("token_of_earlier_run", "PERMISSION_DENIED", "cm-token"),
    ("manager_sock_query", "UNAVAILABLE", ""),
    ("manager_sock_stop", "UNAVAILABLE", ""),
    ("manager_sock_from_setsid_child", "UNAVAILABLE", ""),
    ("framework_without_grant", "PERMISSION_DENIED", ""),
    ("framework_with_provider_grant", "PERMISSION_DENIED", ""),
    ("connect_unused_storage", "FAILED_PRECONDITION", "'other_data' used by '/intruder'"),
])
def test_attempt_is_refused(intruder, attack, code, fragment):
    seen = attempts(intruder[1])[attack]
    assert seen["refused"], seen
    assert seen["observed"].startswith(code + ":"), seen
    assert fragment in seen["observed"], seen


def test_no_route_means_no_address_and_no_start(manager, intruder):
    """Connect for test.Z (routed to nobody) never started its provider or named its socket."""
    hidden = manager.show("/hidden")
    assert hidden["execution_state"] == "stopped" and not hidden.get("last_start")
    assert "/run/" not in attempts(intruder[1])["connect_unrouted"]["observed"]


def test_manager_sock_refusal_is_not_a_stop(manager, intruder):
    """The intruder's LifecycleController.Stop never reached the manager."""
    assert manager.show("/provider")["execution_state"] == "running"
    assert "refused a connection to the control API" in manager.log_text()


def test_startup_info_names_only_its_own_storage(manager, intruder):
    line = next(l for l in intruder[1].splitlines() if l.startswith("STORAGE "))
    named = dict(item.split("=", 1) for item in line.removeprefix("STORAGE ").split())
    own = {s["name"]: s["path"] for s in manager.show("/intruder")["storage"]}
    assert named == own
    manager.cm("start", "/victim")  # its storage exists now
    victims = [s["path"] for s in manager.show("/victim")["storage"]]
    assert victims and not set(victims) & set(named.values())
    assert all(manager.show("/intruder")["instance_id"] in path for path in named.values())


def test_grant_of_an_earlier_provider_run_is_refused(manager):
    with manager.events() as events:
        manager.cm("start", "/restart_client")  # returns once it holds a grant (ready: serving)
        first = manager.show("/restart_provider")["pid"]
        manager.cm("stop", "/restart_provider")
        os.kill(manager.show("/restart_client")["pid"], signal.SIGUSR1)
        stopped = events.wait_for(type="stopped", moniker="/restart_client", timeout=60)
    log = log_of(manager, "/restart_client")
    assert stopped["stop"]["exit_code"] == 0, log
    assert manager.show("/restart_provider")["pid"] not in (0, None, first)
    assert "second run, new grant: OK" in log
    seen = attempts(log)["grant_of_earlier_run"]
    assert seen["observed"].startswith("PERMISSION_DENIED:") and "earlier run" in seen["observed"], seen


def test_routed_control_protocol_works_and_only_that_one(manager):
    stopped = run_to_end(manager, "/control_user")
    log = log_of(manager, "/control_user")
    assert stopped["stop"]["exit_code"] == 0, log
    listed = next(l for l in log.splitlines() if l.startswith("LISTED ")).split()[1:]
    assert {"/", "/control_user", "/provider"} <= set(listed)
    seen = attempts(log)["unrouted_framework_service"]
    assert "grant is for 'component_manager.v1.RealmQuery'" in seen["observed"], seen
    route = manager.cm("route", "/control_user", check=False)
    assert "framework" in route.stdout + route.stderr


def test_cm_and_the_harness_still_reach_the_control_api(manager):
    """Not a program: the relay lets the cm tool and this test process through."""
    assert "/intruder" in {row["moniker"] for row in manager.cm_json("list")}
    stub = manager_pb2_grpc.RealmQueryStub(manager.channel())
    assert any(i.moniker == "/" for i in stub.ListInstances(manager_pb2.ListInstancesRequest(),
                                                             timeout=30).instances)
    assert (manager.state_dir / "manager.sock").stat().st_mode & 0o777 == 0o600


def test_two_hundred_concurrent_connects_start_one_provider(manager):
    assert manager.show("/lazy_provider")["execution_state"] == "stopped"
    with manager.events() as events:
        manager.cm("start", "/many")
        stopped = events.wait_for(type="stopped", moniker="/many", timeout=120)
    log = log_of(manager, "/many")
    assert stopped["stop"]["exit_code"] == 0, log
    assert "connects=200/200 calls_ok=200/200" in log
    starts = [e for e in events.seen if e["type"] == "started" and e["moniker"] == "/lazy_provider"]
    assert len(starts) == 1, events.seen
    assert re.search(r"'/many' requested capability 'test.X'", starts[0]["reason"])
