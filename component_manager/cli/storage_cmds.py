"""`cm storage list|show|delete`: the per-instance storage areas.

    cm storage list              # every instance that uses storage: moniker, name, path, size
    cm storage show counter      # one instance's areas
    cm storage delete counter    # refused while it runs: stop it first
"""

from __future__ import annotations

import json

from .._generated import manager_pb2 as pb
from .client import Client
from .monikers import MONIKER_HELP, resolve_moniker
from .output import format_size, table

__all__ = ["register"]


def register(sub, command: str) -> None:
    """Add the parser of ``command`` (storage) and its subcommands."""
    storage = sub.add_parser("storage", help="per-instance storage areas")
    storage_sub = storage.add_subparsers(dest="storage_command", metavar="SUBCOMMAND", required=True)
    for name, helptext, handler, takes_moniker in (
        ("list", "every instance with storage: moniker, name, path, size", _list, False),
        ("show", "one instance's storage areas", _show, True),
        ("delete", "delete an instance's storage (only while it is not running)", _delete, True),
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
    rows = _areas(client.call(client.query.GetInstance, pb.InstanceRequest(moniker=moniker)))
    _print(args, rows)
    if not rows and not args.json:
        print(f"{moniker} uses no storage")
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
