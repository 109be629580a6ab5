"""`cm route` and `cm events`: where capabilities come from, and what happened.

    cm route /echo_client echo.Echo     # the trace, one line per hop; a break is marked
    cm events --follow --type stopped   # stored history (it survives restarts), then live
"""

from __future__ import annotations

import json
import sys
from functools import partial

import grpc

from .._generated import manager_pb2
from ..api.messages import event_dict, route_dict
from ..errors import InstanceNotFound, ManagerNotRunning, UsageError
from .client import Client, RemoteError
from .exitcodes import EXIT_ERROR
from .monikers import MONIKER_HELP, resolve_moniker
from .output import colour_enabled, format_event, format_route, parse_since

__all__ = ["register", "route_dict"]


def register(sub, command: str) -> None:
    """Add the parser of ``command``: route or events."""
    {"route": _register_route, "events": _register_events}[command](sub)


def _register_route(sub) -> None:
    route = sub.add_parser("route", help="the route of each capability an instance uses or exposes")
    route.add_argument("moniker", help=MONIKER_HELP)
    route.add_argument("capability", nargs="?", default="", help="only this capability")
    route.add_argument("--json", action="store_true", help="print JSON")
    route.set_defaults(handler=_route)


def _register_events(sub) -> None:
    events = sub.add_parser("events", help="lifecycle events: the stored history, then (--follow) live")
    events.add_argument("-f", "--follow", action="store_true", help="keep printing new events until Ctrl-C")
    events.add_argument("--moniker", default="", metavar="PREFIX",
                        help="only events of this instance and its descendants (fragments accepted)")
    events.add_argument("--type", action="append", default=[], dest="types", metavar="TYPE",
                        help="only events of this type (started, stopped, ...); repeatable")
    events.add_argument("--since", metavar="TIME", help="only events since TIME: 10m, 2h, 1d, 12:00, 2024-05-01 12:00")
    events.add_argument("-n", "--limit", type=int, default=0, metavar="N", help="only the last N stored events")
    events.add_argument("--json", action="store_true", help="print one JSON object per line")
    events.set_defaults(handler=_events)


def _route(args) -> int:
    client = Client(args.state_dir)
    moniker = resolve_moniker(client, args.moniker)
    reply = client.call(client.query.Route, manager_pb2.RouteRequest(moniker=moniker, capability=args.capability))
    routes = [route_dict(r) for r in reply.routes]
    if args.json:
        print(json.dumps({"moniker": moniker, "routes": routes}, indent=2))
    elif not routes:
        print(f"{moniker} uses and exposes no capabilities")
    else:
        colour = colour_enabled(args)
        print("\n\n".join(format_route(r, colour) for r in routes))
    return 0


def _json_line(data: dict) -> str:
    return json.dumps(data)


def _events(args) -> int:
    """The stored history (filtered by ``--since``, the last ``--limit``), then with
    ``--follow`` a second subscription that skips what the first printed."""
    client = Client(args.state_dir)
    since = _since(args.since)
    prefix = resolve_moniker(client, args.moniker) if args.moniker else ""
    history = list(_stream(client, prefix, args.types, follow=False))
    if prefix.startswith("/") and prefix != "/" and not history and not _exists(client, prefix):
        raise InstanceNotFound(prefix)  # neither in the tree nor in the stored history
    shown = [e for e in history if e.timestamp >= since]
    render = _json_line if args.json else partial(format_event, enabled=colour_enabled(args))
    for event in shown[-args.limit:] if args.limit else shown:
        print(render(event_dict(event)), flush=args.follow)
    if not args.follow:
        return 0
    last_seq = history[-1].seq if history else 0
    try:
        for event in _stream(client, prefix, args.types, follow=True):
            if event.seq > last_seq:
                print(render(event_dict(event)), flush=True)
    except KeyboardInterrupt:
        return 0
    except ManagerNotRunning:
        print("cm: the manager went away", file=sys.stderr)
        return EXIT_ERROR
    return 0


def _since(text: str | None) -> float:
    if not text:
        return 0.0
    try:
        return parse_since(text)
    except ValueError as e:
        raise UsageError(f"--since: {e}") from None


def _exists(client, moniker: str) -> bool:
    try:
        client.call(client.query.GetInstance, manager_pb2.InstanceRequest(moniker=moniker))
    except RemoteError as e:
        if e.code == grpc.StatusCode.NOT_FOUND:
            return False
        raise
    return True


def _stream(client, prefix: str, types: list[str], follow: bool):
    """The events of one Subscribe call (stored history first); errors as CmErrors: an
    unknown type is a UsageError (exit 2), the manager gone ManagerNotRunning."""
    stream = client.events.Subscribe(manager_pb2.SubscribeRequest(
        moniker_prefix=prefix, types=types, history=True, follow=follow))
    try:
        yield from stream
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.UNAVAILABLE:
            raise ManagerNotRunning(client.state_dir) from None
        if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise UsageError(f"--type: {e.details()}") from None
        raise RemoteError(e) from None
    finally:
        stream.cancel()
