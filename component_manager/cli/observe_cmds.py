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
from ..errors import ManagerNotRunning
from .client import Client, RemoteError
from .exitcodes import EXIT_ERROR
from .monikers import MONIKER_HELP, resolve_moniker
from .output import colour_enabled, format_event, format_route

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
    client = Client(args.state_dir)
    prefix = resolve_moniker(client, args.moniker) if args.moniker else ""
    request = manager_pb2.SubscribeRequest(moniker_prefix=prefix, types=args.types, history=True,
                                           follow=args.follow)
    render = _json_line if args.json else partial(format_event, enabled=colour_enabled(args))
    stream = client.events.Subscribe(request)
    try:
        for event in stream:
            print(render(event_dict(event)), flush=args.follow)
    except KeyboardInterrupt:
        stream.cancel()
        return 0
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.UNAVAILABLE and args.follow:
            print("cm: the manager went away", file=sys.stderr)
            return EXIT_ERROR

        raise (ManagerNotRunning(client.state_dir) if e.code() == grpc.StatusCode.UNAVAILABLE
               else RemoteError(e)) from None
    return 0
