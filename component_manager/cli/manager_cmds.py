"""`cm manager run` and the commands that drive a running manager.

Every command takes ``--json``; the JSON shapes of ``show`` and ``list`` are stable
(DESIGN.md section 6).
"""

from __future__ import annotations

import json
import os
import sys
import time

# pathlib is imported where a handler needs it: the queries (show, list, logs) use os.path, so
# that `cm show` does not pay for pathlib's imports (urllib.parse, fnmatch).

__all__ = ["MONIKER_HELP", "register"]

MONIKER_HELP = "an absolute moniker (/echo_server) or a unique fragment of one (server)"


def register(sub) -> None:
    manager = sub.add_parser("manager", help="run the component manager")
    manager_sub = manager.add_subparsers(dest="manager_command", metavar="SUBCOMMAND", required=True)
    run = manager_sub.add_parser("run", help="run the manager (foreground; SIGTERM/Ctrl-C: ordered shutdown)")
    run.add_argument("--root", help="URL of the root component (default: the example realm)")
    run.add_argument("--detach", action="store_true", help="run in the background; pid in STATE_DIR/manager.pid")
    run.add_argument("--ready-fd", type=int, help=argparse_suppress())
    # the manager owns LMDB, child processes and log handlers: let the interpreter shut down
    run.set_defaults(handler=_manager_run, normal_exit=True)

    _simple(sub, "list", "every instance: moniker, state, url, instance id", _list)
    _simple(sub, "tree", "the topology as a tree", _tree)
    for name, helptext, handler in (
        ("show", "everything about one instance", _show),
        ("start", "start an instance (and what it needs)", _start),
        ("stop", "stop an instance (reason: requested)", _stop),
        ("destroy", "destroy a dynamic instance and its storage", _destroy),
        ("resolve", "resolve an instance's manifest", _resolve),
        ("logs", "print a program's output", _logs),
    ):
        _simple(sub, name, helptext, handler).add_argument("moniker", help=MONIKER_HELP)
    sub.choices["logs"].add_argument("-f", "--follow", action="store_true",
                                     help="keep printing as the log grows (until Ctrl-C or destroy)")
    for name, start in (("create", False), ("run", True)):
        p = _simple(sub, name, "create a dynamic child" + (" and start it" if start else ""), _create)
        p.add_argument("moniker", help="PARENT/COLLECTION:NAME, e.g. /workers:c1")
        p.add_argument("url")
        p.set_defaults(start_child=start)


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


def colour_enabled(args) -> bool:
    from .output import colour_enabled as enabled

    return enabled(args)


def _simple(sub, name, helptext, handler):
    parser = sub.add_parser(name, help=helptext)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=handler)
    return parser


def _client(args):
    from .client import Client

    return Client(args.state_dir)


def _target(client, args) -> str:
    from .monikers import resolve_moniker

    return resolve_moniker(client, args.moniker)


def _pb():
    from .._generated import manager_pb2

    return manager_pb2


# ---- manager run ---------------------------------------------------------------------------

def default_root() -> str:
    from pathlib import Path

    here = Path("components/realm.cml")
    if here.exists():
        return str(here.resolve())
    return str(Path(__file__).resolve().parents[2] / "components" / "realm.cml")


def _manager_run(args) -> int:
    root = args.root or default_root()
    if args.detach:
        return _detach(args, root)
    import asyncio
    import logging
    from pathlib import Path

    from ..manager import Manager
    from ..model.resolver import absolute_url

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    manager = Manager(Path(args.state_dir), absolute_url(root))

    def ready():
        print(f"component manager serving at {manager.state_dir} (root {absolute_url(root)})", flush=True)
        if args.ready_fd is not None:
            os.write(args.ready_fd, b"ready\n")
            os.close(args.ready_fd)

    asyncio.run(manager.run(on_ready=ready))
    return 0


def _detach(args, root: str) -> int:
    import subprocess
    from pathlib import Path

    state_dir = Path(args.state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    read_end, write_end = os.pipe()
    with open(state_dir / "manager.log", "ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "component_manager.cli.main", "--state-dir", str(state_dir),
             "manager", "run", "--root", root, "--ready-fd", str(write_end)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(write_end,),
            start_new_session=True)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as ready:
        line = ready.readline()  # EOF without "ready": the manager failed to start
    if line.strip() != b"ready":
        print(f"cm: the manager failed to start (exit {child.wait()}); see {state_dir / 'manager.log'}",
              file=sys.stderr)
        return 1
    print(f"manager running at {state_dir}, pid {child.pid}")
    return 0


# ---- queries -------------------------------------------------------------------------------

def summary_dict(s) -> dict:
    return {"moniker": s.moniker, "url": s.url, "instance_id": s.instance_id, "state": s.state,
            "execution_state": s.execution_state, "incarnation": s.incarnation,
            "pid": s.pid or None, "last_stop_reason": s.last_stop_reason or None,
            "last_stop_disposition": s.last_stop_disposition or None}


def _list(args) -> int:
    return _print_instances(args, format_list)


def _print_instances(args, formatter) -> int:
    client = _client(args)
    reply = client.call(client.query.ListInstances, _pb().ListInstancesRequest())
    rows = [summary_dict(s) for s in reply.instances]
    print(json.dumps(rows, indent=2) if args.json else formatter(rows, colour_enabled(args)))
    return 0


def format_list(rows: list[dict], colour: bool = False) -> str:
    """MONIKER STATUS PID ID URL; STATUS is running/stopped/failed/... in its colour."""
    from .output import state_colour, state_label, table

    cells = [[r["moniker"], state_label(r), str(r["pid"] or "-"), r["instance_id"][:12], r["url"]] for r in rows]
    colours = [[None, state_colour(r), None, "dim", None] for r in rows]
    return table(["MONIKER", "STATUS", "PID", "ID", "URL"], cells, colours, colour)


def _tree(args) -> int:
    return _print_instances(args, format_tree)


def format_tree(rows: list[dict], colour: bool = False) -> str:
    """The topology with box-drawing branches, each name followed by its status::

        /  running
        ├── echo_server  stopped
        └── workers:c1  failed (crashed)
    """
    from .output import paint, state_colour, state_label

    children: dict[str, list[dict]] = {}
    for r in rows:
        if r["moniker"] != "/":
            children.setdefault(_parent(r["moniker"]), []).append(r)
    lines: list[str] = []

    def walk(row: dict, prefix: str, branch: str, name: str) -> None:
        label = state_label(row)
        if label == "failed" and row.get("last_stop_disposition"):
            label += f" ({row['last_stop_disposition']})"
        lines.append(f"{prefix}{branch}{name}  {paint(label, state_colour(row), colour)}")
        kids = children.get(row["moniker"], [])
        inner = prefix + ("" if not branch else ("    " if branch.startswith("└") else "│   "))
        for i, kid in enumerate(kids):
            walk(kid, inner, "└── " if i == len(kids) - 1 else "├── ", kid["moniker"].rsplit("/", 1)[1])

    known = {r["moniker"] for r in rows}
    for root in (r for r in rows if r["moniker"] == "/" or _parent(r["moniker"]) not in known):
        walk(root, "", "", root["moniker"])
    return "\n".join(lines)


def _parent(moniker: str) -> str:
    return moniker.rsplit("/", 1)[0] or "/"


def show_dict(d) -> dict:
    from ..api.messages import stop_dict

    s = d.summary
    last_stop = stop_dict(d.last_stop) if d.has_last_stop else None
    return {
        **summary_dict(s),
        "start_reason": d.start_reason or None,
        "started_at": d.started_at or None,
        "last_stop": last_stop,
        "uses": [{"kind": u.kind, "name": u.name, "source": u.source, "route": u.route_status} for u in d.uses],
        "exposes": list(d.exposes),
        "storage": [{"name": x.name, "path": x.path, "size_bytes": x.size_bytes} for x in d.storage],
        "config": {c.key: json.loads(c.value_json) for c in d.config},
        "children": list(d.children),
        "collections": [{"name": c.name, "durability": c.durability, "children": list(c.children)}
                        for c in d.collections],
        "log_path": d.log_path,
        "fingerprint": d.fingerprint,
    }


def _get(args):
    client = _client(args)
    return client.call(client.query.GetInstance, _pb().InstanceRequest(moniker=_target(client, args)))


def _show(args) -> int:
    info = show_dict(_get(args))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(format_show(info))
    return 0


def format_show(info: dict) -> str:
    lines = [f"{'Moniker':<16}{info['moniker']}", f"{'URL':<16}{info['url']}",
             f"{'Instance ID':<16}{info['instance_id']}",
             f"{'State':<16}{info['state']} ({info['execution_state']})"]
    if info["pid"]:
        uptime = time.time() - (info["started_at"] or time.time())
        lines.append(f"{'PID':<16}{info['pid']} (up {uptime:.1f}s)")
    if info["start_reason"]:
        lines.append(f"{'Start reason':<16}{info['start_reason']}")
    if info["last_stop"]:
        ls = info["last_stop"]
        code = f"exit code {ls['exit_code']}" if ls["exit_code"] is not None else (
            f"signal {ls['signal']}" if ls["signal"] is not None else "")
        lines.append(f"{'Last stop':<16}{ls['reason']}, {ls['disposition']}"
                     f"{', ' + code if code else ''}, ran {ls['run_time_s']:.2f}s"
                     f"{' (' + ls['detail'] + ')' if ls['detail'] else ''}")
    for use in info["uses"]:
        lines.append(f"{'Uses':<16}{use['kind']} {use['name']} from {use['source'] or '?'} [{use['route']}]")
    for expose in info["exposes"]:
        lines.append(f"{'Exposes':<16}{expose}")
    for area in info["storage"]:
        lines.append(f"{'Storage':<16}{area['name']}: {area['path']} ({area['size_bytes']} bytes)")
    for key, value in info["config"].items():
        lines.append(f"{'Config':<16}{key} = {json.dumps(value)}")
    for child in info["children"]:
        lines.append(f"{'Child':<16}{child}")
    for coll in info["collections"]:
        lines.append(f"{'Collection':<16}{coll['name']} ({coll['durability']}, {len(coll['children'])} children)")
    return "\n".join(lines)


def _logs(args) -> int:
    info = _get(args)
    if not args.follow:
        if os.path.exists(info.log_path):
            with open(info.log_path, "rb") as f:
                sys.stdout.buffer.write(f.read())
        return 0
    from pathlib import Path

    from .follow import follow_log

    return follow_log(args.state_dir, info.summary.moniker, Path(info.log_path))


# ---- actions -------------------------------------------------------------------------------

def _print(args, message: str, data: dict) -> int:
    print(json.dumps(data, indent=2) if args.json else message)
    return 0


def _start(args) -> int:
    client = _client(args)
    reply = client.call(client.lifecycle.Start, _pb().InstanceRequest(moniker=_target(client, args)))
    state = "already running" if reply.was_running else "started"
    return _print(args, f"{reply.instance.moniker}: {state}", summary_dict(reply.instance))


def _stop(args) -> int:
    client = _client(args)
    reply = client.call(client.lifecycle.Stop, _pb().InstanceRequest(moniker=_target(client, args)))
    if not reply.was_running:
        return _print(args, f"{reply.instance.moniker}: was not running", summary_dict(reply.instance))
    stop = reply.stop
    return _print(args, f"{reply.instance.moniker}: stopped ({stop.disposition}, ran {stop.run_time_s:.2f}s)",
                  {**summary_dict(reply.instance), "disposition": stop.disposition})


def _destroy(args) -> int:
    client = _client(args)
    reply = client.call(client.lifecycle.Destroy, _pb().InstanceRequest(moniker=_target(client, args)))
    return _print(args, f"{reply.moniker}: destroyed", {"moniker": reply.moniker, "instance_id": reply.instance_id})


def _resolve(args) -> int:
    client = _client(args)
    reply = client.call(client.lifecycle.Resolve, _pb().InstanceRequest(moniker=_target(client, args)))
    return _print(args, f"{reply.moniker}: {reply.state}", summary_dict(reply))


def _create(args) -> int:
    from pathlib import Path

    from ..errors import MonikerError
    from ..moniker import parse

    moniker = parse(args.moniker)
    leaf = moniker.leaf
    if leaf is None or leaf.collection is None:
        raise MonikerError(args.moniker, "a dynamic child is named PARENT/COLLECTION:NAME")
    url = args.url
    if "://" not in url and Path(url).exists():
        url = str(Path(url).resolve())  # a path the user can see; otherwise relative to the parent
    client = _client(args)
    request = _pb().CreateChildRequest(parent=str(moniker.parent), collection=leaf.collection,
                                       name=leaf.name, url=url, start=args.start_child)
    reply = client.call(client.realm.CreateChild, request)
    verb = "created and started" if args.start_child else "created"
    return _print(args, f"{reply.moniker}: {verb} (instance id {reply.instance_id})", summary_dict(reply))
