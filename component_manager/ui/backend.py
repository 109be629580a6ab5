"""The web page's side of the wire: the manager's gRPC API (an asyncio channel to its control
socket), answered as the same plain dicts `cm --json` prints.

A refused call raises ``Refused`` with the manager's own message and the HTTP status it maps
to (NOT_FOUND 404, INVALID_ARGUMENT 400, FAILED_PRECONDITION 409, the manager gone 503, ...),
so the page shows what `cm` would have said.
"""

from __future__ import annotations

import asyncio
import os

import grpc
from google.protobuf.message_factory import GetMessageClass

from .._generated import manager_pb2 as pb
from .._generated import manager_pb2_grpc as pb_grpc
from ..api.messages import event_dict, route_dict, show_dict, summary_dict
from ..cli.graph_dot import build_graph, route_edges, to_dot, to_svg
from ..cli.output import status_tone

__all__ = ["Backend", "Refused"]

LOG_TAIL_BYTES = 16 * 1024
CALL_TIMEOUT_S = 120.0  # as `cm`: a start may wait for a program's start_timeout
_HTTP = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.INVALID_ARGUMENT: 400,
         grpc.StatusCode.FAILED_PRECONDITION: 409, grpc.StatusCode.ALREADY_EXISTS: 409,
         grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.UNAVAILABLE: 503,
         grpc.StatusCode.DEADLINE_EXCEEDED: 504, grpc.StatusCode.UNIMPLEMENTED: 501}


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _lifecycle_methods() -> dict:
    return pb.DESCRIPTOR.services_by_name["LifecycleController"].methods_by_name


def _request(method: str, moniker: str):
    """The request message ``LifecycleController.<method>`` takes, naming ``moniker``."""
    return GetMessageClass(_lifecycle_methods()[method].input_type)(moniker=moniker)


class Backend:
    """One channel to the manager at ``state_dir``; open it inside the serving event loop."""

    def __init__(self, state_dir: str):
        self.state_dir = os.path.realpath(state_dir)
        self.channel: grpc.aio.Channel | None = None
        # verbs the page offers: pause and resume where the API has them; restart always
        # (the API's own, else stop then start)
        methods = _lifecycle_methods()
        self.verbs = [v for v in ("start", "stop", "restart", "pause", "resume", "destroy")
                      if v.capitalize() in methods or v == "restart"]

    def open(self) -> None:
        socket = os.path.join(self.state_dir, "manager.sock")
        self.channel = grpc.aio.insecure_channel(f"unix:{socket}", options=(("grpc.max_receive_message_length", -1),))
        self.query = pb_grpc.RealmQueryStub(self.channel)
        self.lifecycle = pb_grpc.LifecycleControllerStub(self.channel)
        self.events_api = pb_grpc.EventStreamStub(self.channel)

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()

    async def _call(self, method, request):
        try:
            return await method(request, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as e:
            raise _refused(e, self.state_dir) from None

    # ---- reads -----------------------------------------------------------------------------

    async def instances(self) -> list[dict]:
        """`cm list --json` rows, each with its ``tone`` (the colour family of its status)."""
        reply = await self._call(self.query.ListInstances, pb.ListInstancesRequest())
        return [_toned(summary_dict(s)) for s in reply.instances]

    async def show(self, moniker: str) -> dict:
        """`cm show --json`, plus the log's last LOG_TAIL_BYTES as ``log_tail``."""
        details = await self._call(self.query.GetInstance, pb.InstanceRequest(moniker=moniker))
        info = _toned(show_dict(details))
        info["log_tail"] = await asyncio.to_thread(_tail, details.log_path)
        return info

    async def routes(self, moniker: str, capability: str = "") -> list[dict]:
        reply = await self._call(self.query.Route, pb.RouteRequest(moniker=moniker, capability=capability))
        return [route_dict(r) for r in reply.routes]

    async def graph(self, routes: bool) -> dict:
        """The graph of every instance; with ``routes`` the routes of each resolved one (an
        unresolved instance is not resolved for a picture)."""
        rows = await self.instances()
        graph = build_graph(rows)
        if routes:
            for row in rows:
                if row["state"] in ("resolved", "started"):
                    graph["edges"] += route_edges(row["moniker"], await self.routes(row["moniker"]))
        return graph

    async def graph_svg(self, routes: bool) -> str:
        """Raises graph_dot.DotMissing without Graphviz."""
        return await asyncio.to_thread(to_svg, to_dot(await self.graph(routes)))

    # ---- actions ---------------------------------------------------------------------------

    async def act(self, verb: str, moniker: str) -> dict:
        """Run one lifecycle verb; the instance's summary afterwards (destroy: moniker and id)."""
        if verb not in self.verbs:
            raise Refused(400, f"unknown action {verb!r} (this manager offers: {', '.join(self.verbs)})")
        if verb == "restart" and "Restart" not in _lifecycle_methods():  # an older manager: stop, then start
            await self._call(self.lifecycle.Stop, _request("Stop", moniker))
            verb = "start"
        name = verb.capitalize()
        reply = await self._call(getattr(self.lifecycle, name), _request(name, moniker))
        if verb == "destroy":
            return {"moniker": reply.moniker, "instance_id": reply.instance_id}
        details = await self._call(self.query.GetInstance, pb.InstanceRequest(moniker=moniker))
        return _toned(summary_dict(details.summary))  # whatever the verb's own reply holds

    # ---- the event stream ------------------------------------------------------------------

    def subscribe(self):
        """The stored history, then live events, as an async iterator of event dicts; cancel
        the returned call to end it."""
        return self.events_api.Subscribe(pb.SubscribeRequest(history=True, follow=True))

    @staticmethod
    def event(message) -> dict:
        return event_dict(message)


def _toned(row: dict) -> dict:
    row["tone"] = status_tone(row["status"])
    return row


def _refused(e: grpc.aio.AioRpcError, state_dir: str) -> Refused:
    if e.code() == grpc.StatusCode.UNAVAILABLE:
        return Refused(503, f"no manager is running at {state_dir} (start one with `cm manager run`)")
    return Refused(_HTTP.get(e.code(), 500), e.details() or e.code().name)


def _tail(path: str) -> str:
    """The end of a log, from a line start; "" when there is none."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - LOG_TAIL_BYTES))
            data = f.read(LOG_TAIL_BYTES)
    except OSError:
        return ""
    if size > LOG_TAIL_BYTES and b"\n" in data:
        data = data.split(b"\n", 1)[1]
    return data.decode("utf-8", "replace")
