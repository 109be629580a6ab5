"""The query socket (``query.sock``): RealmQuery's ListInstances and GetInstance as JSON, so
that `cm list` and `cm show` need not import grpc (~45 ms of a ~100 ms command). The wire
is in ``query_wire.py``.

The same state, the same code: a list is ``control.listing`` (what ListInstances sends),
each row as ``messages.summary_row`` shapes it (what a gRPC client makes of it); a show is
``control.details`` (GetInstance's reply) and ``messages.show_dict``. Errors get the gRPC code RealmQuery gives
them (``status.code_for``). The same peers as ``manager.sock``: the socket is 0600 and a
connection is refused, before a byte is read, when ``relay.admitted`` refuses its peer.

Nothing here blocks the event loop on a client: one request per connection, at most
MAX_REQUEST bytes, within REQUEST_TIMEOUT_S; the answer is written without waiting (the
transport buffers it) and the connection aborted if the client has not taken it within
ANSWER_TIMEOUT_S; at most MAX_CONNECTIONS at once (a client beyond that is closed and asks
gRPC instead). A list is snapshotted on the loop in one pass, as ListInstances does; its
rows are encoded in a worker thread (100,000 rows: ~0.15 s of JSON the loop does not wait
for).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import CmError, InvalidArgument
from .control import details, listing
from .messages import show_dict, summary_json
from .query_wire import MAX_REQUEST, header_line
from .relay import admitted, serve_owner_only
from .status import bounded, code_for

log = logging.getLogger("component_manager.api")

__all__ = ["QueryServer"]

REQUEST_TIMEOUT_S = 10.0
ANSWER_TIMEOUT_S = 120.0
MAX_CONNECTIONS = 64


class QueryServer:
    """Serve ``model`` on the Unix socket ``path`` (created 0600) to the peers
    ``relay.admitted`` lets in; ``program_sessions()`` as for the control relay."""

    def __init__(self, model, path: Path, program_sessions: Callable[[], Iterable[int]]):
        self.model = model
        self.path = Path(path)
        self.program_sessions = program_sessions
        self._server: asyncio.AbstractServer | None = None
        self._open: set[_Connection] = set()

    async def start(self) -> None:
        self._server = await serve_owner_only(self.path, lambda: _Connection(self))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self._open):
            connection.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self.path.unlink(missing_ok=True)

    async def answer(self, line: bytes) -> tuple[bytes, ...]:
        """The answer to one request line: its header, then its body if it has one (two
        pieces: a list of 100,000 is not copied once more to join them)."""
        try:
            body = await self._body(_request(line))
        except CmError as e:
            return _error(bounded(str(e)), code_for(e).name, type(e).__name__)
        except Exception as e:  # noqa: BLE001 - a bug: logged, answered in one line, never raised
            log.exception("query socket: internal error", exc_info=e)
            return _error(bounded(f"internal error: {type(e).__name__}: {e}"), "INTERNAL", type(e).__name__)
        if body is None:  # the client asks gRPC instead
            return _error("the query socket serves ListInstances and GetInstance", "UNIMPLEMENTED", "")
        return header_line({"length": len(body)}), body

    async def _body(self, request: dict) -> bytes | None:
        method = request.get("method")
        if method == "ListInstances":
            fields = listing(self.model, _text(request, "prefix"))
            return await asyncio.to_thread(_rows_json, fields)
        if method == "GetInstance":
            info = show_dict(details(self.model, self.model.find(_text(request, "moniker"))))
            return json.dumps(info).encode()
        return None


def _error(message: str, code: str, kind: str) -> tuple[bytes]:
    return (header_line({"error": message, "code": code, "type": kind}),)


def _request(line: bytes) -> dict:
    try:
        request = json.loads(line)
    except ValueError:
        request = None
    if not isinstance(request, dict):
        raise InvalidArgument(f"a query socket request is one JSON object on one line, not {line[:100]!r}")
    return request


def _text(request: dict, key: str) -> str:
    value = request.get(key, "")
    if not isinstance(value, str):
        raise InvalidArgument(f"{key} must be a string, not {type(value).__name__}")
    return value


def _rows_json(fields: list[dict]) -> bytes:
    """One ``cm list --json`` row per line (JSON escapes every newline in a value)."""
    return "\n".join([summary_json(f) for f in fields]).encode()


async def _too_long() -> tuple[bytes]:
    return _error(f"a query socket request is at most {MAX_REQUEST} bytes", "INVALID_ARGUMENT", "InvalidArgument")


class _Connection(asyncio.Protocol):
    """One client: its request line in, the answer out, then closed."""

    def __init__(self, server: QueryServer):
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.task: asyncio.Task | None = None
        self.deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        if len(self.server._open) >= MAX_CONNECTIONS or not admitted(
                transport, self.server.program_sessions, "the query socket"):
            transport.abort()
            return
        self.server._open.add(self)
        self._expire_in(REQUEST_TIMEOUT_S)

    def data_received(self, data: bytes) -> None:
        if self.task is not None:
            return  # one request per connection: anything after it is ignored
        self.buffer += data
        end = self.buffer.find(b"\n", 0, MAX_REQUEST + 1)
        if end >= 0:
            self._reply(self.server.answer(self.buffer[:end]))
        elif len(self.buffer) > MAX_REQUEST:
            self._reply(_too_long())

    def eof_received(self) -> bool:
        if self.task is None:
            self.abort()  # it ended without a whole request
        return True  # else: answer what it asked

    def _reply(self, answer) -> None:
        self.transport.pause_reading()
        self.task = asyncio.ensure_future(self._send(answer))

    async def _send(self, answer) -> None:
        pieces = await answer
        if self.transport.is_closing():
            return
        self._expire_in(ANSWER_TIMEOUT_S)
        for piece in pieces:
            self.transport.write(piece)
        self.transport.close()  # once the buffer is written

    def _expire_in(self, seconds: float) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline = asyncio.get_running_loop().call_later(seconds, self.abort)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc) -> None:
        self.server._open.discard(self)
        if self.deadline is not None:
            self.deadline.cancel()
        if self.task is not None and not self.task.done():
            self.task.cancel()
