"""`cm graph`'s pure parts: the graph of rows and route reports, its DOT (parsed by Graphviz
where it is installed), and the realm read from manifests alone."""

import shutil
import subprocess
from pathlib import Path

import pytest

from component_manager.cli.graph_dot import build_graph, to_dot
from component_manager.cli.offline_realm import OfflineRealm
from component_manager.cli.output import status_tone
from component_manager.errors import CmError
from component_manager.moniker import parse
from component_manager.routing.report import plan_reports

pytestmark = pytest.mark.timeout(30)

REALM = Path(__file__).resolve().parents[3] / "components" / "realm.cml"
ROWS = [{"moniker": "/", "status": "running", "url": "realm.cml"},
        {"moniker": "/echo_server", "status": "failed (gave up after 5 restarts)", "url": "s.cml"},
        {"moniker": "/echo_client", "status": "backing off (attempt 2, next in 1.5s)", "url": "c.cml"},
        {"moniker": "/workers:c1", "status": "stopped", "url": "w.cml"}]
OK_ROUTE = {"kind": "protocol", "capability": "echo.Echo", "direction": "use", "status": "ok", "error": None,
            "source_moniker": "/echo_server", "hops": []}
BROKEN = {"kind": "protocol", "capability": "x.X", "direction": "use", "status": "broken",
          "error": "'/' does not offer it", "source_moniker": None, "hops": []}


def dot_plain(dot_text: str) -> list[list[str]]:
    """Graphviz's own reading of the DOT (``-Tplain``): its node and edge lines."""
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed (apt-get install graphviz)")
    out = subprocess.run(["dot", "-Tplain"], input=dot_text, capture_output=True, text=True, check=True).stdout
    return [line.split(" ", 3) for line in out.splitlines() if line.startswith(("node", "edge"))]


@pytest.mark.parametrize("status, tone", [
    ("running", "running"), ("paused", "waiting"), ("backing off (attempt 2)", "waiting"),
    ("failed", "failed"), ("failed (gave up after 5 restarts)", "failed"), ("stopped", "quiet"),
    ("unresolved", "quiet"), ("destroyed", "quiet"), ("something new", "quiet")])
def test_every_status_has_a_tone(status, tone):
    assert status_tone(status) == tone


def test_the_graph_has_the_topology_and_each_route():
    graph = build_graph(ROWS, {"/echo_client": [OK_ROUTE, BROKEN], "/": [{**OK_ROUTE, "direction": "expose"}]})
    tones = {n["moniker"]: n["tone"] for n in graph["nodes"]}
    assert tones == {"/": "running", "/echo_server": "failed", "/echo_client": "waiting", "/workers:c1": "quiet"}
    children = {(e["from"], e["to"]) for e in graph["edges"] if e["kind"] == "child"}
    assert children == {("/", "/echo_server"), ("/", "/echo_client"), ("/", "/workers:c1")}
    routes = [(e["from"], e["to"], e["capability"], e["status"]) for e in graph["edges"] if e["kind"] == "route"]
    assert routes == [("/echo_server", "/echo_client", "echo.Echo", "ok"), (None, "/echo_client", "x.X", "broken")]


def test_the_dot_parses_with_a_node_per_instance_and_an_edge_per_route():
    graph = build_graph(ROWS, {"/echo_client": [OK_ROUTE, BROKEN]})
    parsed = dot_plain(to_dot(graph))
    nodes = {line[1].strip('"') for line in parsed if line[0] == "node"}
    assert nodes >= {r["moniker"] for r in ROWS}
    assert len(nodes) == len(ROWS) + 1  # the broken route's "✗" marker
    edges = [line for line in parsed if line[0] == "edge"]
    assert len(edges) == 3 + 2
    assert any(line[1:3] == ['"/echo_server"', '"/echo_client"'] for line in edges)


def test_quotes_in_a_capability_name_do_not_break_the_dot():
    odd = {**OK_ROUTE, "capability": 'a"b\\c'}
    parsed = dot_plain(to_dot(build_graph(ROWS, {"/echo_client": [odd]})))
    assert sum(line[0] == "edge" for line in parsed) == 4


def test_the_example_realm_offline_has_its_instances_and_routes():
    realm = OfflineRealm.load(str(REALM))
    assert [str(m) for m in realm.monikers][:4] == ["/", "/echo_server", "/echo_client", "/counter"]
    assert len(realm.monikers) == 1 + len(realm.decl(parse("/")).children)  # the realm may grow
    client = parse("/echo_client")
    [report] = plan_reports(realm, client, realm.decl(client))
    assert (report["status"], report["source_moniker"]) == ("ok", "/echo_server")
    counter = parse("/counter")
    assert [r["source_moniker"] for r in plan_reports(realm, counter, realm.decl(counter))] == ["/"]


def test_an_offline_realm_with_a_missing_child_manifest_is_one_line(tmp_path):
    (tmp_path / "root.cml").write_text('{ children: [ { name: "gone", url: "gone.cml" } ] }')
    with pytest.raises(CmError, match=r"gone\.cml: cannot read"):
        OfflineRealm.load(str(tmp_path / "root.cml"))
