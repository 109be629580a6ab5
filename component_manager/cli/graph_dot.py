"""The realm as a picture: instances and routes in, a graph (plain dict), DOT or SVG out.

Pure except for ``to_svg``, which runs Graphviz's ``dot``. Used by `cm graph` and the web page
(``cm ui``). Two kinds of edge: the topology (parent -> child, grey) and, when routes are
given, capability routes (provider -> user, labelled with the capability, blue; a broken route
red, from a "✗" marker, an unavailable optional one grey from "∅"). Example, from the rows
of ``cm list --json`` and the reports of ``cm route --json``::

    graph = build_graph(rows, {"/echo_client": reports})
    graph["edges"][-1] == {"kind": "route", "from": "/echo_server", "to": "/echo_client",
                           "capability": "echo.Echo", "capability_kind": "protocol",
                           "status": "ok", "error": ""}
    print(to_dot(graph))
"""

from __future__ import annotations

import shutil
import subprocess

from .output import status_tone

__all__ = ["DotMissing", "build_graph", "route_edges", "to_dot", "to_svg"]

# tone (cli/output.status_tone) -> (fill, border): pale fills, a saturated border
TONE_STYLE = {
    "running": ("#d8f3dc", "#2d6a4f"),
    "waiting": ("#fff3bf", "#b08900"),
    "failed": ("#ffd6d6", "#c92a2a"),
    "quiet": ("#f1f3f5", "#868e96"),
    "offline": ("#ffffff", "#495057"),
}
ROUTE_COLOUR = {"ok": "#1c7ed6", "unavailable": "#adb5bd", "broken": "#e03131"}


def build_graph(rows: list[dict], routes: dict[str, list[dict]] | None = None) -> dict:
    """``rows``: instances (moniker, status, url; status "" offline; the label is the longer
    ``status_detail`` where the manager sends one, e.g. "failed (gave up after 5 restarts)"). ``routes``: moniker ->
    its route reports (as ``cm route --json`` has them), or None for the topology only."""
    known = {r["moniker"] for r in rows}
    nodes = [{"moniker": r["moniker"], "status": r.get("status_detail") or r.get("status") or "",
              "tone": status_tone(r["status"]) if r.get("status") else "offline",
              "url": r.get("url", "")} for r in rows]
    edges = [{"kind": "child", "from": _parent(r["moniker"]), "to": r["moniker"]}
             for r in rows if r["moniker"] != "/" and _parent(r["moniker"]) in known]
    for moniker, reports in (routes or {}).items():
        edges += route_edges(moniker, reports)
    return {"nodes": nodes, "edges": edges}


def route_edges(moniker: str, reports: list[dict]) -> list[dict]:
    """One edge per capability ``moniker`` uses: from its provider (None when the route is
    broken or ends nowhere)."""
    return [{"kind": "route", "from": r["source_moniker"] or None, "to": moniker,
             "capability": r["capability"], "capability_kind": r["kind"], "status": r["status"],
             "error": r.get("error") or ""}
            for r in reports if r["direction"] == "use"]


def _parent(moniker: str) -> str:
    return moniker.rsplit("/", 1)[0] or "/"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _node_line(node: dict) -> str:
    name = node["moniker"].rsplit("/", 1)[1] or "/"
    second = node["status"] or node["url"].rsplit("/", 1)[-1]
    fill, border = TONE_STYLE[node["tone"]]
    return (f'  {_quote(node["moniker"])} [label={_quote(name + chr(10) + second)}, '
            f'fillcolor="{fill}", color="{border}", tooltip={_quote(node["moniker"])}];')


def _route_label(edge: dict) -> str:
    kind = "" if edge["capability_kind"] == "protocol" else f'{edge["capability_kind"]} '
    return kind + edge["capability"]


def _route_lines(edge: dict, n: int) -> list[str]:
    colour = ROUTE_COLOUR.get(edge["status"], ROUTE_COLOUR["broken"])
    lines, source = [], edge["from"]
    if source is None:  # nothing provides it: draw where it should come from
        source = f"route-{n}"
        mark = "∅" if edge["status"] == "unavailable" else "✗"
        tip = edge["error"] or edge["status"]
        lines.append(f'  {_quote(source)} [label={_quote(mark)}, shape=circle, style=filled, width=0.3, '
                     f'fixedsize=true, fillcolor="{colour}", fontcolor="white", color="{colour}", '
                     f'tooltip={_quote(tip)}];')
    style = "solid" if edge["status"] == "ok" else "dashed"
    lines.append(f'  {_quote(source)} -> {_quote(edge["to"])} [label={_quote(_route_label(edge))}, '
                 f'color="{colour}", fontcolor="{colour}", style={style}, constraint=false, penwidth=1.4];')
    return lines


def to_dot(graph: dict, title: str = "realm") -> str:
    """The graph in Graphviz's language: a tree top-down, routes across it."""
    lines = [f"digraph {_quote(title)} {{",
             '  graph [rankdir=TB, fontname="Helvetica", nodesep=0.35, ranksep=0.55, bgcolor="white"];',
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11, penwidth=1.4];',
             '  edge [fontname="Helvetica", fontsize=9, arrowsize=0.7];']
    known = {n["moniker"] for n in graph["nodes"]}
    lines += [_node_line(n) for n in graph["nodes"]]
    for n, edge in enumerate(graph["edges"]):
        if edge["kind"] == "child":
            lines.append(f'  {_quote(edge["from"])} -> {_quote(edge["to"])} [color="#adb5bd", arrowhead=none];')
            continue
        if edge["from"] is not None and edge["from"] not in known:  # a provider outside the subtree
            lines.append(f'  {_quote(edge["from"])} [style="rounded,dashed", fillcolor="white"];')
            known.add(edge["from"])
        lines += _route_lines(edge, n)
    lines.append("}")
    return "\n".join(lines) + "\n"


class DotMissing(Exception):
    """Graphviz's ``dot`` is not installed."""


def to_svg(dot_text: str, timeout: float = 60.0) -> str:
    """Render with ``dot -Tsvg``. Raises DotMissing without Graphviz, RuntimeError if dot
    refuses the input (its first line of error) or takes longer than ``timeout``. Measured
    here: 1,000 instances take 0.5 s, 7 s with a route each (Graphviz's edge routing)."""
    dot = shutil.which("dot")
    if dot is None:
        raise DotMissing("Graphviz's `dot` is not installed (Debian: apt-get install graphviz); "
                         "--format dot prints the graph without it")
    try:
        done = subprocess.run([dot, "-Tsvg"], input=dot_text, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"dot took more than {timeout:.0f} s: draw one realm (MONIKER), or without --routes") from None
    if done.returncode != 0:
        raise RuntimeError(f"dot failed: {(done.stderr.strip().splitlines() or ['?'])[0]}")
    return done.stdout
