"""What `cm list`, `cm tree`, `cm show` and `cm logs` read from a running manager: its query
socket (``api/query_wire.py``: JSON, no grpc to import), else RealmQuery over gRPC, which
answers the same rows (both are made by ``api/messages.py``).

    list_lines(".cm")          # b'{"moniker": "/", ...}\\n{"moniker": "/echo_server", ...}'
    rows_of(list_lines(".cm")) # [{"moniker": "/", ...}, ...]
    show(".cm", "server")      # the `cm show --json` object of /echo_server

The query socket is asked first; where it does not answer (a manager from before it, a
stale socket, a refusal, a reply cut off) the same request goes over gRPC, which says
whether a manager runs at all. An error it answers (a moniker that names nothing) is raised
as the RemoteError gRPC would have raised.
"""

from __future__ import annotations

import json

from ..api.query_wire import Unanswered, ask
from .monikers import resolve_with

__all__ = ["list_lines", "rows_of", "show"]

TIMEOUT_S = 120.0  # as a gRPC call of `cm` (client.CALL_TIMEOUT_S)


def list_lines(state_dir: str) -> bytes:
    """Every instance's ``cm list --json`` row, one JSON object per line, parents first."""
    body = _ask(state_dir, {"method": "ListInstances"})
    if body is not None:
        return body
    from ..api.messages import summary_dict

    return "\n".join([json.dumps(summary_dict(s)) for s in _grpc_list(state_dir)]).encode()


def rows_of(lines: bytes) -> list[dict]:
    """The rows of ``list_lines``, decoded (no row holds a raw newline: JSON escapes them)."""
    return json.loads(b"[" + lines.replace(b"\n", b",") + b"]")


def show(state_dir: str, text: str) -> dict:
    """The ``cm show --json`` object of the instance ``text`` names (a moniker or a unique
    fragment: ``monikers.resolve_with``)."""
    moniker = resolve_with(text, lambda: [row["moniker"] for row in rows_of(list_lines(state_dir))])
    body = _ask(state_dir, {"method": "GetInstance", "moniker": moniker})
    if body is not None:
        return json.loads(body)
    from .._generated import manager_pb2
    from ..api.messages import show_dict
    from .client import Client

    client = Client(state_dir)
    return show_dict(client.call(client.query.GetInstance, manager_pb2.InstanceRequest(moniker=moniker)))


def _ask(state_dir: str, request: dict) -> bytes | None:
    """The query socket's answer to ``request``; None where it did not answer."""
    try:
        header, body = ask(state_dir, request, TIMEOUT_S)
    except Unanswered:
        return None
    if "error" not in header:
        return body
    if header["code"] == "UNIMPLEMENTED":
        return None
    from .client import RemoteError

    raise RemoteError.answered(header["code"], header["error"])


def _grpc_list(state_dir: str):
    from .._generated import manager_pb2
    from .client import Client

    client = Client(state_dir)
    return client.call(client.query.ListInstances, manager_pb2.ListInstancesRequest()).instances
