"""A route three levels deep, up one branch and down another, with a real client and a real
provider; and each way of breaking it, reported with the hop where it broke."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from component_manager.testing.process import ManagerProcess

pytestmark = pytest.mark.integration

COMPONENTS = Path(__file__).parent / "components"
PROGRAM = 'runner: "python", lifecycle: { stop_event: "notify" }'
REALM = {
    "root.cml": '{ children: [ { name: "app", url: "app.cml" }, { name: "backend", url: "backend.cml" } ],'
                '  offer: [ { protocol: "test.Deep", from: "#backend", to: "#app" } ] }',
    "app.cml": '{ children: [ { name: "client", url: "client.cml" } ],'
               '  offer: [ { protocol: "test.Deep", from: "parent", to: "#client" } ] }',
    "backend.cml": '{ children: [ { name: "server", url: "server.cml" } ],'
                   '  expose: [ { protocol: "test.Deep", from: "#server" } ] }',
    "server.cml": f'{{ program: {{ {PROGRAM}, module: "serve_and_wait" }},'
                  '  capabilities: [ { protocol: "test.Deep" } ],'
                  '  expose: [ { protocol: "test.Deep", from: "self" } ] }',
    "client.cml": f'{{ program: {{ {PROGRAM}, module: "deep_client" }}, use: [ {{ protocol: "test.Deep" }} ] }}',
}


def write_realm(folder: Path, **changes: tuple[str, str]) -> str:
    """The realm in ``folder``, with ``changes[file] = (old, new)`` text replacements."""
    folder.mkdir(parents=True)
    for name, text in REALM.items():
        if name in changes:
            old, new = changes[name]
            assert old in text
            text = text.replace(old, new)
        (folder / name).write_text(text)
    for module in ("serve_and_wait.py", "deep_client.py"):
        shutil.copy(COMPONENTS / module, folder / module)
    return str(folder / "root.cml")


def run_client(manager: ManagerProcess) -> tuple[dict, str]:
    with manager.events() as events:
        manager.cm("start", "/app/client")
        stopped = events.wait_for(type="stopped", moniker="/app/client")
    return stopped, Path(manager.show("/app/client")["log_path"]).read_text()


def test_a_route_three_levels_deep_connects(manager_dir):
    root = write_realm(manager_dir.parent / "realm")
    with ManagerProcess(manager_dir, root=root) as manager:
        stopped, log = run_client(manager)
        assert "answer: ping" in log
        assert stopped["stop"]["exit_code"] == 0
        server = manager.show("/backend/server")
        assert server["start_reason"] == "'/app/client' requested capability 'test.Deep'"
        route = json.loads(manager.cm("route", "/app/client", "test.Deep", "--json").stdout)["routes"][0]
        assert route["status"] == "ok"
        assert [(h["moniker"], h["action"]) for h in route["hops"]] == [
            ("/app/client", "use"), ("/app", "offer"), ("/", "offer"),
            ("/backend", "expose"), ("/backend/server", "expose"), ("/backend/server", "declare")]


@pytest.mark.parametrize("changes, broken_hop", [
    ({"app.cml": ('offer: [ { protocol: "test.Deep", from: "parent", to: "#client" } ]', "")},
     "'/app' does not offer it to 'client'"),
    ({"backend.cml": ('expose: [ { protocol: "test.Deep", from: "#server" } ]', "")},
     "offered by '/' from '#backend', but '/backend' does not expose it"),
    ({"root.cml": ('{ protocol: "test.Deep", from: "#backend"', '{ protocol: "test.Deeep", from: "#backend"')},
     "'/' does not offer it to 'app'"),
], ids=["missing-offer", "missing-expose", "wrong-name"])
def test_each_way_of_breaking_the_route_names_the_broken_hop(manager_dir, changes, broken_hop):
    root = write_realm(manager_dir.parent / "realm", **changes)
    with ManagerProcess(manager_dir, root=root) as manager:
        stopped, log = run_client(manager)
        assert stopped["stop"]["exit_code"] == 3
        assert f"connect failed: 'test.Deep' used by '/app/client': {broken_hop}" in log
        route = json.loads(manager.cm("route", "/app/client", "test.Deep", "--json").stdout)["routes"][0]
        assert route["status"] == "broken" and broken_hop in route["error"]
        assert manager.show("/backend/server")["execution_state"] == "stopped"


def test_an_optional_capability_routed_from_void_is_unavailable_not_broken(manager_dir):
    root = write_realm(
        manager_dir.parent / "realm",
        **{"root.cml": ('from: "#backend", to: "#app"', 'from: "void", to: "#app", availability: "optional"'),
           "app.cml": ('to: "#client" }', 'to: "#client", availability: "optional" }'),
           "client.cml": ('{ protocol: "test.Deep" }', '{ protocol: "test.Deep", availability: "optional" }')})
    with ManagerProcess(manager_dir, root=root) as manager:
        stopped, log = run_client(manager)
        assert stopped["stop"]["exit_code"] == 3
        assert "optional capability is unavailable" in log
        route = json.loads(manager.cm("route", "/app/client", "test.Deep", "--json").stdout)["routes"][0]
        assert route["status"] == "unavailable"
