"""`cm graph`: the topology, each instance in its status's colour, and (``--routes``) who
routes what to whom, as DOT, SVG or JSON.

    cm graph --routes --format svg -o realm.svg     # live, from the running manager
    cm graph /workers                               # one realm's subtree, as DOT
    cm graph --manifest components/realm.cml --routes   # offline, from the manifests alone

Live, it asks the manager (ListInstances, then one Route per resolved instance); statuses are
the manager's (``status`` of ``cm list --json``). Offline, it compiles the manifests and walks
the routes itself (``routing/``, pure), without statuses.
"""

from __future__ import annotations

import json
import sys

from .._generated import manager_pb2
from ..api.messages import route_dict, summary_dict
from ..errors import CmError
from .client import Client
from .graph_dot import DotMissing, build_graph, to_dot, to_svg
from .monikers import MONIKER_HELP, resolve_moniker

__all__ = ["live_graph", "register"]


def register(sub, command: str) -> None:
    p = sub.add_parser("graph", help="the topology with statuses and routes, as DOT or SVG")
    p.add_argument("moniker", nargs="?", default="", help=f"only this realm (subtree); {MONIKER_HELP}")
    p.add_argument("--format", choices=("dot", "svg"), default="dot",
                   help="dot (default), or svg through Graphviz's `dot`")
    p.add_argument("--routes", action="store_true", help="also draw capability routes (provider -> user)")
    p.add_argument("--manifest", metavar="ROOT.cml", help="offline: the realm this manifest declares, no manager")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--json", action="store_true", help="print the graph as {nodes, edges} JSON")
    p.set_defaults(handler=_graph)


def _graph(args) -> int:
    graph = _offline_graph(args) if args.manifest else live_graph(args.state_dir, args.moniker, args.routes)
    if args.json:
        text = json.dumps(graph, indent=2) + "\n"
    else:
        text = to_dot(graph)
        if args.format == "svg":
            try:
                text = to_svg(text)
            except (DotMissing, RuntimeError) as e:
                raise CmError(str(e)) from None
    _write(text, args.output)
    return 0


def _write(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    with open(output, "w") as f:
        f.write(text)


def live_graph(state_dir: str, moniker: str = "", routes: bool = False) -> dict:
    """The graph of the running manager at ``state_dir`` (of the subtree at ``moniker``)."""
    client = Client(state_dir)
    prefix = resolve_moniker(client, moniker) if moniker else ""
    reply = client.call(client.query.ListInstances, manager_pb2.ListInstancesRequest(prefix=prefix))
    rows = [summary_dict(s) for s in reply.instances]
    return build_graph(rows, _live_routes(client, rows) if routes else None)


def _live_routes(client, rows: list[dict]) -> dict[str, list[dict]]:
    """Route reports of each instance already resolved (asking for the routes of an
    unresolved one would resolve it: a graph changes nothing)."""
    routes = {}
    for row in rows:
        if row["state"] in ("resolved", "started"):
            reply = client.call(client.query.Route, manager_pb2.RouteRequest(moniker=row["moniker"]))
            routes[row["moniker"]] = [route_dict(r) for r in reply.routes]
    return routes


def _offline_graph(args) -> dict:
    # compiling manifests and walking routes here: the live command stays a lean client
    from ..moniker import parse
    from ..routing.report import plan_reports
    from .offline_realm import OfflineRealm

    realm = OfflineRealm.load(args.manifest)
    rows = realm.rows()
    if args.moniker:
        rows = [r for r in rows if _under(r["moniker"], args.moniker)]
    routes = None
    if args.routes:
        routes = {r["moniker"]: plan_reports(realm, parse(r["moniker"]), realm.decl(parse(r["moniker"])))
                  for r in rows}
    return build_graph(rows, routes)


def _under(moniker: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/") or "/"
    return prefix == "/" or moniker == prefix or moniker.startswith(prefix + "/")
