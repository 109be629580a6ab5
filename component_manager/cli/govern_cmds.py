"""`cm restart`, `cm pause`, `cm resume` MONIKER and `cm reload [MONIKER]`: the commands
that govern running instances. Each takes ``--json``.
"""

from __future__ import annotations

import json

from ..api.messages import summary_dict

__all__ = ["register"]

_HELP = {
    "restart": "stop an instance (reason: requested) and start it again",
    "pause": "freeze a running instance's program (its capability requests wait)",
    "resume": "thaw a paused instance (its waiting requests are answered)",
    "reload": "re-read manifests and program files; restart only what changed",
}
_REPORT = ("restarted", "updated", "created", "destroyed", "unchanged", "failed")


def register(sub, command: str) -> None:
    from .monikers import MONIKER_HELP

    parser = sub.add_parser(command, help=_HELP[command])
    parser.add_argument("--json", action="store_true", help="print JSON")
    if command == "reload":
        parser.add_argument("moniker", nargs="?", default="", help="the realm to reload (default: everything)")
    else:
        parser.add_argument("moniker", help=MONIKER_HELP)
    parser.set_defaults(handler={"restart": _restart, "pause": _pause, "resume": _resume,
                                 "reload": _reload}[command])


def _call(args, method: str):
    from .._generated import manager_pb2
    from .client import Client
    from .monikers import resolve_moniker

    client = Client(args.state_dir)
    moniker = resolve_moniker(client, args.moniker) if args.moniker else ""
    return client.call(getattr(client.lifecycle, method), manager_pb2.InstanceRequest(moniker=moniker))


def _print(args, message: str, data: dict) -> int:
    print(json.dumps(data, indent=2) if args.json else message)
    return 0


def _restart(args) -> int:
    reply = _call(args, "Restart")
    before = f"stopped ({reply.stop.disposition}), " if reply.was_running else "was not running, "
    return _print(args, f"{reply.instance.moniker}: {before}started (pid {reply.instance.pid})",
                  {**summary_dict(reply.instance), "was_running": reply.was_running})


def _pause(args) -> int:
    reply = _call(args, "Pause")
    return _print(args, f"{reply.moniker}: paused", summary_dict(reply))


def _resume(args) -> int:
    reply = _call(args, "Resume")
    return _print(args, f"{reply.moniker}: running", summary_dict(reply))


def _reload(args) -> int:
    reply = _call(args, "Reload")
    data = {key: list(getattr(reply, key)) for key in (*_REPORT, "errors")}
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        for key in _REPORT:
            if key == "unchanged":
                print(f"unchanged: {len(data[key])} instance(s)")
            elif data[key]:
                print(f"{key}: {', '.join(data[key])}")
        for line in data["errors"]:
            print(f"error: {line}")
    return 1 if data["failed"] else 0
