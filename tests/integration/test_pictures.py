"""`cm graph`, `cm doctor` and `cm ui`'s HTTP side against the real manager and the real `cm`
(the page in a real browser: test_ui_browser.py)."""

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from component_manager.testing.process import ManagerProcess, cm_executable
from component_manager.testing.ui import UiProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

COMPONENTS = Path(__file__).parent / "components"
EXAMPLE = ["/", "/echo_server", "/echo_client", "/counter"]  # at least these; the realm may grow


def monikers(manager) -> set[str]:
    return {row["moniker"] for row in manager.cm_json("list")}
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz)")


def plain(dot_text: str) -> list[list[str]]:
    out = subprocess.run(["dot", "-Tplain"], input=dot_text, capture_output=True, text=True, check=True).stdout
    return [line.split(" ", 3) for line in out.splitlines() if line.startswith(("node", "edge"))]


@needs_dot
def test_graph_of_the_live_example_realm_has_every_instance_and_route(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        manager.cm("start", "/counter")
        parsed = plain(manager.cm("graph", "--routes").stdout)
        nodes = {line[1].strip('"') for line in parsed if line[0] == "node"}
        assert nodes == monikers(manager) >= set(EXAMPLE)
        edges = {(line[1].strip('"'), line[2].strip('"')) for line in parsed if line[0] == "edge"}
        assert ("/echo_server", "/echo_client") in edges  # echo.Echo
        assert {("/", "/echo_server"), ("/", "/counter")} <= edges  # storage data (and the tree)
        graph = manager.cm_json("graph", "--routes")
        status = {n["moniker"]: n["status"] for n in graph["nodes"]}
        assert status["/counter"] == "running" and status["/echo_server"] == "stopped"
        routes = {(e["from"], e["to"], e["capability"]) for e in graph["edges"] if e["kind"] == "route"}
        assert routes >= {("/echo_server", "/echo_client", "echo.Echo"), ("/", "/echo_server", "data"),
                          ("/", "/counter", "data")}
        svg = manager.cm("graph", "--format", "svg").stdout
        assert svg.count('class="node"') == len(monikers(manager))
        assert all(f"<title>{m}</title>" in svg for m in monikers(manager))


def test_graph_offline_from_the_manifest_needs_no_manager(manager_dir):
    done = subprocess.run([*cm_executable(), "--state-dir", str(manager_dir), "graph", "--routes", "--json",
                           "--manifest", "components/realm.cml"], capture_output=True, text=True, check=True)
    graph = json.loads(done.stdout)
    assert [n["moniker"] for n in graph["nodes"]][:4] == EXAMPLE
    assert {(e["from"], e["to"]) for e in graph["edges"] if e["kind"] == "route"} >= {
        ("/echo_server", "/echo_client"), ("/", "/echo_server"), ("/", "/counter")}


def test_svg_without_graphviz_is_one_line_that_says_how_to_get_it(manager_dir, tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no dot on it
    done = subprocess.run([*cm_executable(), "graph", "--format", "svg", "--manifest", "components/realm.cml"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "apt-get install graphviz" in done.stderr


def test_doctor_reports_each_problem_with_what_to_run_and_exits_1(manager_dir):
    with ManagerProcess(manager_dir, root=str(COMPONENTS / "doctor_realm.cml")) as manager:
        with manager.events() as events:
            manager.cm("start", "/fails")
            events.wait_for(type="stopped", moniker="/fails")
        done = manager.cm("doctor", check=False)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "✗ /fails  failed: exited, exit code 1\n    next: cm logs /fails; then cm start /fails" in done.stdout
        assert "✗ /lost  route broken: use protocol nobody.Offers" in done.stdout
        assert "/fine" not in done.stdout
        report = json.loads(manager.cm("doctor", "--json", check=False).stdout)
        assert not report["ok"] and report["instances"] == 4
        assert {(f["moniker"], f["severity"]) for f in report["findings"]} == {("/fails", "error"), ("/lost", "error")}
        assert manager.cm("doctor", "/fine").returncode == 0  # one realm: nothing wrong there


def test_doctor_on_the_healthy_example_realm_exits_0(manager_dir):
    with ManagerProcess(manager_dir) as manager:
        done = manager.cm("doctor")
        assert done.stdout.strip() == f"✓ nothing wrong in {len(monikers(manager))} instances"


def http(url: str, method: str = "GET", body: dict | None = None, token: str | None = None,
         host: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if host:
        headers["Host"] = host
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_ui_needs_the_token_and_changes_nothing_on_a_get(manager_dir):
    pytest.importorskip("starlette", reason="the ui extra (starlette, uvicorn) is not installed")
    with ManagerProcess(manager_dir) as manager, UiProcess(manager.state_dir) as ui:
        assert ui.base.startswith("http://127.0.0.1:")
        assert http(ui.base + "/")[0] == 401
        assert http(ui.base + "/api/instances", token="wrong")[0] == 401
        assert http(ui.base + "/api/action", "POST", {"verb": "start", "moniker": "/counter"})[0] == 401
        assert http(ui.url)[0] == 200
        assert http(ui.url, host="evil.example")[0] == 400  # a rebound name is not this page        assert http(f"{ui.base}/api/action?token={ui.token}")[0] == 405  # a GET changes nothing
        assert manager.show("/counter")["execution_state"] == "stopped"
        status, body = http(ui.base + "/api/action", "POST", {"verb": "start", "moniker": "/counter"}, ui.token)
        assert (status, json.loads(body)["status"]) == (200, "running")
        status, body = http(ui.base + "/api/action", "POST", {"verb": "destroy", "moniker": "/counter"}, ui.token)
        assert status == 409 and "only dynamic children can be destroyed" in json.loads(body)["error"]
        status, body = http(f"{ui.base}/api/instance?moniker=/nope", token=ui.token)
        assert status == 404 and "/nope" in json.loads(body)["error"]


def test_ui_listens_on_loopback_only(manager_dir):
    pytest.importorskip("starlette", reason="the ui extra (starlette, uvicorn) is not installed")
    done = subprocess.run([*cm_executable(), "--state-dir", str(manager_dir), "ui", "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "loopback addresses only" in done.stderr


def test_ui_on_a_unix_socket(manager_dir, tmp_path):
    pytest.importorskip("starlette", reason="the ui extra (starlette, uvicorn) is not installed")
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    sock = tmp_path / "ui.sock"
    with ManagerProcess(manager_dir) as manager, UiProcess(manager.state_dir, "--unix", str(sock)) as ui:
        assert sock.stat().st_mode & 0o077 == 0  # the owner's only
        out = subprocess.run(["curl", "-s", "--unix-socket", str(sock), f"http://localhost/api/instances?token={ui.token}"],
                             capture_output=True, text=True, timeout=30)
        assert {r["moniker"] for r in json.loads(out.stdout)} == monikers(manager)


def test_ui_restart_gives_a_new_run_and_graph_and_route_answer(manager_dir):
    pytest.importorskip("starlette", reason="the ui extra (starlette, uvicorn) is not installed")
    with ManagerProcess(manager_dir) as manager, UiProcess(manager.state_dir) as ui:
        act = lambda verb: http(ui.base + "/api/action", "POST", {"verb": verb, "moniker": "/counter"}, ui.token)  # noqa: E731
        assert act("start")[0] == 200
        first = manager.show("/counter")["pid"]
        status, body = act("restart")
        assert (status, json.loads(body)["status"]) == (200, "running")
        assert manager.show("/counter")["pid"] not in (None, first)
        status, body = http(f"{ui.base}/api/instance?moniker=/counter", token=ui.token)
        assert "count=2" in json.loads(body)["log_tail"]
        status, body = http(f"{ui.base}/api/route?moniker=/echo_client&capability=echo.Echo", token=ui.token)
        assert [r["source_moniker"] for r in json.loads(body)] == ["/echo_server"]
        status, body = http(f"{ui.base}/api/graph.json", token=ui.token)
        assert {n["moniker"] for n in json.loads(body)["nodes"]} == monikers(manager)
        assert act("bounce")[0] == 400
        verbs = json.loads(http(f"{ui.base}/api/meta", token=ui.token)[1])["verbs"]
        if "pause" in verbs:  # the manager's API has pause and resume
            assert json.loads(act("pause")[1])["status"] == "paused"
            assert json.loads(act("resume")[1])["status"] == "running"
            act("stop")
            status, body = act("pause")
            assert status == 409 and json.loads(body)["error"]  # pausing what is not running
        status, body = http(ui.base + "/api/action", "POST", {"verb": "start", "moniker": "/x" * 5000}, ui.token)
        assert status == 413 and "at most 4096 bytes" in json.loads(body)["error"]
        assert http(ui.base + "/api/action", "POST", ["not", "an", "object"], ui.token)[0] == 400


def test_ui_without_a_manager_says_so(manager_dir):
    pytest.importorskip("starlette", reason="the ui extra (starlette, uvicorn) is not installed")
    with UiProcess(manager_dir) as ui:
        status, body = http(ui.base + "/api/instances", token=ui.token)
        assert status == 503 and "no manager is running" in json.loads(body)["error"]


def test_doctor_sees_a_manifest_changed_broken_then_gone(manager_dir, tmp_path):
    for name in ("exits_1.cml", "exits_1.py"):
        shutil.copy(COMPONENTS / name, tmp_path / name)
    (tmp_path / "realm.cml").write_text('{ children: [ { name: "w", url: "exits_1.cml" } ] }')
    with ManagerProcess(manager_dir, root=str(tmp_path / "realm.cml")) as manager:
        assert manager.cm("doctor").returncode == 0
        (tmp_path / "exits_1.cml").write_text('{ program: { runner: "python", module: "exits_1", args: ["v2"] } }')
        done = manager.cm("doctor")  # a warning: exit 0
        assert "! /w  its manifest changed since it was resolved" in done.stdout
        (tmp_path / "exits_1.cml").write_text('{ program: { runner: "python", modul: "exits_1" } }')
        done = manager.cm("doctor", check=False)
        assert done.returncode == 1 and "✗ /w  its manifest no longer compiles: " in done.stdout
        assert f"next: cm validate {tmp_path / 'exits_1.cml'}" in done.stdout
        (tmp_path / "exits_1.cml").unlink()
        done = manager.cm("doctor", "--json", check=False)
        assert done.returncode == 1
        [f] = json.loads(done.stdout)["findings"]
        assert f["moniker"] == "/w" and "is missing" in f["problem"]
