"""The query socket's wire: RealmQuery's two reads (ListInstances, GetInstance) as JSON on a
Unix socket, for clients that should not pay for importing grpc (`cm list`, `cm show`).

The manager serves it on ``query.sock`` in its state directory (``query_socket.py``); it
answers from the same model, with the same functions, as the gRPC RealmQuery, and admits the
same peers as ``manager.sock``. One request per connection::

    -> {"method": "GetInstance", "moniker": "/echo_server"}\\n       (at most MAX_REQUEST bytes)
    <- {"length": 1234}\\n  then 1234 bytes: the reply, UTF-8 JSON
    <- {"error": "instance '/x' not found", "code": "NOT_FOUND", "type": "InstanceNotFound"}\\n

ListInstances (``"prefix"`` optional) answers one ``cm list --json`` row per line; GetInstance
answers the ``cm show --json`` object. ``code`` is the gRPC status code the same error gets
from RealmQuery (api/status.py).

    ask(state_dir, {"method": "ListInstances"})   # (header, body); raises Unanswered

This module imports only the standard library's socket and json: it is on `cm`'s fast path.
"""

from __future__ import annotations

import json
import os
import socket

__all__ = ["MAX_HEADER", "MAX_REQUEST", "QUERY_SOCKET", "Unanswered", "ask", "header_line"]

QUERY_SOCKET = "query.sock"
MAX_REQUEST = 64 * 1024  # a request is a method and a moniker
MAX_HEADER = 4 * 1024  # {"length": N} or an error (its message is cut at 1,000 characters)


class Unanswered(Exception):
    """No answer from the query socket (none there, refused, cut off, or not understood):
    the caller asks the gRPC API instead, which says whether a manager runs."""


def header_line(header: dict) -> bytes:
    return json.dumps(header).encode() + b"\n"


def ask(state_dir: str, request: dict, timeout: float) -> tuple[dict, bytes]:
    """Send ``request`` to the manager at ``state_dir``; its header and body (b"" with an
    error header). Raises Unanswered when no complete answer came."""
    path = os.path.join(state_dir, QUERY_SOCKET)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            sock.sendall(json.dumps(request).encode() + b"\n")
            with sock.makefile("rb") as reply:
                header = _header(reply.readline(MAX_HEADER))
                length = header.get("length", 0)
                body = reply.read(length)
        except (OSError, ValueError) as e:
            raise Unanswered(str(e)) from None
    if len(body) != length:
        raise Unanswered(f"the answer was cut off after {len(body)} of {length} bytes")
    return header, body


def _header(line: bytes) -> dict:
    if not line.endswith(b"\n"):
        raise ValueError("no answer" if not line else "the answer's header is cut off")
    header = json.loads(line)
    length = header.get("length", 0) if isinstance(header, dict) else None
    if not isinstance(length, int) or length < 0 or ("error" in header and not isinstance(header.get("code"), str)):
        raise ValueError(f"not an answer: {line[:100]!r}")
    return header
