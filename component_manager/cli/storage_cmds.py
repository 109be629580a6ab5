"""`cm storage list|show|delete|snapshot|restore`: the per-instance storage areas.

    cm storage list              # every instance that uses storage: moniker, name, path, size
    cm storage show counter      # one instance's areas (and its snapshot, if it has one)
    cm storage delete counter    # refused while it runs: stop it first (its snapshot goes too)
    cm storage snapshot counter  # keep a compacted copy of its areas (the manager keeps one)
    cm storage restore counter   # put them back as the snapshot has them; refused while it runs
"""

from __future__ import annotations

import json

from .._generated import manager_pb2 as pb
from .client import Client
from .monikers import MONIKER_HELP, resolve_moniker
from ..api.messages import snapshot_dict
from .output import format_size, format_snapshot, table

__all__ = ["register"]


def register(sub, command: str) -> None:
    """Add the parser of ``command`` (storage) and its subcommands."""
    storage = sub.add_parser("storage", help="per-instance storage areas")
    storage_sub = storage.add_subparsers(dest="storage_command", metavar="SUBCOMMAND", required=True)
    for name, helptext, handler, takes_moniker in (
        ("list", "every instance with storage: moniker, name, path, size", _list, False),
        ("show", "one instance's storage areas", _show, True),
        ("delete", "delete an instance's storage (only while it is not running)", _delete, True),
        ("snapshot", "keep a copy of an instance's storage (replaces its last snapshot)", _snapshot, True),
        ("restore", "put an instance's storage back from its snapshot (only while it is not running)",
         _restore, True),
    ):
        p = storage_sub.add_parser(name, help=helptext)
        if takes_moniker:
            p.add_argument("moniker", help=MONIKER_HELP)
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(handler=handler)


def _areas(details) -> list[dict]:
    s = details.summary
    return [{"moniker": s.moniker, "instance_id": s.instance_id, "execution_state": s.execution_state,
             "name": a.name, "path": a.path, "size_bytes": a.size_bytes} for a in details.storage]


def _print(args, rows: list[dict]) -> None:
    if args.json:
        print(json.dumps(rows, indent=2))
    elif rows:
        print(table(["MONIKER", "NAME", "SIZE", "PATH"],
                    [[r["moniker"], r["name"], format_size(r["size_bytes"]), r["path"]] for r in rows]))


def _list(args) -> int:
    client = Client(args.state_dir)
    instances = client.call(client.query.ListInstances, pb.ListInstancesRequest()).instances
    rows = []
    for s in instances:
        rows += _areas(client.call(client.query.GetInstance, pb.InstanceRequest(moniker=s.moniker)))
    _print(args, rows)
    if not rows and not args.json:
        print("no instance uses storage")
    return 0


def _show(args) -> int:
    client = Client(args.state_dir)
    moniker = resolve_moniker(client, args.moniker)
    details = client.call(client.query.GetInstance, pb.InstanceRequest(moniker=moniker))
    rows = _areas(details)
    _print(args, rows)  # --json: the areas only, as always (`cm show --json` has the snapshot)
    if args.json:
        return 0
    if not rows:
        print(f"{moniker} uses no storage")
    if details.HasField("snapshot"):
        print(f"snapshot: {format_snapshot(snapshot_dict(details.snapshot))}")
    return 0


def _delete(args) -> int:
    client = Client(args.state_dir)
    moniker = resolve_moniker(client, args.moniker)
    reply = client.call(client.lifecycle.DeleteStorage, pb.InstanceRequest(moniker=moniker))
    deleted = [{"name": a.name, "path": a.path, "size_bytes": a.size_bytes} for a in reply.deleted]
    if args.json:
        print(json.dumps({"moniker": reply.moniker, "instance_id": reply.instance_id, "deleted": deleted}, indent=2))
    else:
        names = ", ".join(a["name"] for a in deleted) or "nothing"
        print(f"{reply.moniker}: storage deleted ({names})")
    return 0


def _snapshot(args) -> int:
    return _copy(args, "SnapshotStorage", lambda r, names: f"storage snapshot taken ({names}, "
                                                         f"{format_size(r.snapshot.size_bytes)})")


def _restore(args) -> int:
    return _copy(args, "RestoreStorage", lambda r, names: f"storage restored ({names}); snapshot: "
                                                        f"{format_snapshot(snapshot_dict(r.snapshot))}")


def _copy(args, method: str, done) -> int:
    client = Client(args.state_dir)
    moniker = resolve_moniker(client, args.moniker)
    reply = client.call(getattr(client.lifecycle, method), pb.InstanceRequest(moniker=moniker))
    snapshot = snapshot_dict(reply.snapshot)
    if args.json:
        print(json.dumps({"moniker": reply.moniker, "instance_id": reply.instance_id, "areas": list(reply.areas),
                          "snapshot": snapshot}, indent=2))
    else:
        print(f"{reply.moniker}: {done(reply, ', '.join(reply.areas) or 'no area')}")
    return 0
