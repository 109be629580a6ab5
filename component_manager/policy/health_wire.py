"""``grpc.health.v1.Health/Check`` (service "") over one HTTP/2 connection per probed program,
with prebuilt frames and the answers read in a Protocol callback.

Why by hand: grpcio's asyncio client costs ~136 us of CPU per unary call on these machines
(two tasks and a dozen Python objects per call), so 1,000 programs probed every second would
take ~14% of a core from the manager; this costs about a third of that. A Check is one fixed request; here it is two frames
written from bytes built once, and its answer is the one DATA frame of the stream (5 bytes
of gRPC framing, then ``status`` as field 1). What the server sends besides is handled as
HTTP/2 demands: SETTINGS and PING are acknowledged (a PING with the next check, when checks
are frequent), flow-control credit is given back,
headers are skipped (their HPACK state is never needed: only DATA is read), RST_STREAM and
GOAWAY end the checks in flight. A stream that ends without a message (an error status in
its trailers, e.g. NOT_FOUND) is an unhealthy answer.

Example::

    transport, conn = await loop.create_unix_connection(HealthConnection, "/run/x.sock")
    conn.check(lambda status, text: print(status, text))   # 1 "SERVING"
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

__all__ = ["HealthConnection", "LAZY_ACK_PERIOD_S", "STATUS_NAMES"]

STATUS_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
Answer = Callable[[int | None, str], None]  # (status or None, what to show)

_DATA, _HEADERS, _RST, _SETTINGS, _PING, _GOAWAY, _WINDOW = 0, 1, 3, 4, 6, 7, 8
_END_STREAM, _ACK, _END_HEADERS, _PADDED = 0x1, 0x1, 0x4, 0x8
_READ = frozenset({_DATA, _HEADERS, _RST, _SETTINGS, _PING, _GOAWAY})  # WINDOW_UPDATE etc.: ignored
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_CREDIT = 32768  # give flow-control credit back once this much DATA has arrived
_LAST_STREAM = 2**31 - 1
# Reads land in a buffer of our own (a BufferedProtocol): asyncio's plain protocols receive
# into a fresh 256 KiB bytes object each time, which cost ~35 us per read here.
_BUFFER = 16384
LAZY_ACK_PERIOD_S = 5.0


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", kind, flags, stream) + payload


def _literal(index: int, value: bytes) -> bytes:
    """HPACK "literal without indexing, indexed name" (index < 15), no Huffman."""
    return bytes([index, len(value)]) + value


# :method POST, :scheme http (static 3, 6), :path, :authority, content-type (static 31), te
_REQUEST_HEADERS = (b"\x83\x86" + _literal(4, b"/grpc.health.v1.Health/Check") + _literal(1, b"localhost")
                    + b"\x0f\x10" + bytes([16]) + b"application/grpc" + b"\x00\x02te\x08trailers")
_REQUEST_MESSAGE = b"\x00\x00\x00\x00\x00"  # not compressed, 0 bytes: HealthCheckRequest(service="")
# The two frames of a Check without their stream ids (written between head and payload)
_HEADERS_HEAD = _frame(_HEADERS, _END_HEADERS, 0, _REQUEST_HEADERS)[:5]
_DATA_HEAD = _frame(_DATA, _END_STREAM, 0, _REQUEST_MESSAGE)[:5]


class HealthConnection(asyncio.BufferedProtocol):
    """``lazy_acks``: acknowledge the program's PINGs with the next check rather than at
    once. gRPC servers send a PING (bandwidth probing) on each request they receive and none
    while one is unanswered; answered at once, it is a second write from us and a second
    read per check (~13 us of the ~59 us a check costs here). Only for probes at least every
    ``LAZY_ACK_PERIOD_S``: a keepalive PING must be answered within 20 s by default."""

    def __init__(self, lazy_acks: bool = False) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = bytearray(_BUFFER)  # read into, never reallocated per read
        self._view = memoryview(self._buffer)
        self._filled = 0
        self._next_stream = 1
        self._pending: dict[int, list] = {}  # stream -> [answer, status seen]
        self._received = 0  # DATA bytes not yet credited back
        self._lazy_acks = lazy_acks
        self._ack = b""  # a PING ACK owed, sent with the next check

    # -- checks ------------------------------------------------------------------------

    def check(self, answer: Answer) -> int:
        """Send one Check; ``answer(status, text)`` is called once it is answered or the
        connection fails. Returns the stream id (for ``forget``)."""
        stream = self._next_stream
        if self.closed or stream > _LAST_STREAM:  # (a new connection is made for the next)
            self.closed = True
            asyncio.get_running_loop().call_soon(answer, None, "connection closed")
            return 0
        self._next_stream += 2
        self._pending[stream] = [answer, None]
        sid = stream.to_bytes(4, "big")
        ack, self._ack = self._ack, b""
        self.transport.write(b"".join((ack, _HEADERS_HEAD, sid, _REQUEST_HEADERS, _DATA_HEAD, sid, _REQUEST_MESSAGE)))
        return stream

    def forget(self, stream: int) -> None:
        """Drop a check that timed out (a late answer is then ignored)."""
        self._pending.pop(stream, None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- the connection ----------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(_PREFACE + _frame(_SETTINGS, 0, 0))

    def connection_lost(self, exc) -> None:
        self.closed = True
        self._fail_all("connection lost" + (f": {exc}" if exc else ""))

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._filled == len(self._buffer):  # a frame larger than the buffer: make room
            self._buffer.extend(bytes(len(self._buffer)))
            self._view = memoryview(self._buffer)
        return self._view[self._filled:]

    def buffer_updated(self, nbytes: int) -> None:
        self._filled += nbytes
        buf, start, end = self._buffer, 0, self._filled
        while end - start >= 9:
            length = int.from_bytes(buf[start:start + 3], "big")
            if end - start < 9 + length:
                break
            kind = buf[start + 3]
            if kind in _READ:  # (the others need no payload, and most frames are those)
                stream = int.from_bytes(buf[start + 5:start + 9], "big") & _LAST_STREAM
                self._on_frame(kind, buf[start + 4], stream, bytes(buf[start + 9:start + 9 + length]))
            start += 9 + length
        if start:
            buf[:end - start] = buf[start:end]
            self._filled = end - start

    def _on_frame(self, kind: int, flags: int, stream: int, payload: bytes) -> None:
        if kind == _DATA:
            self._on_data(flags, stream, payload)
        elif kind == _HEADERS and flags & _END_STREAM:
            self._finish(stream)
        elif kind == _SETTINGS and not flags & _ACK:
            self.transport.write(_frame(_SETTINGS, _ACK, 0))
        elif kind == _PING and not flags & _ACK:
            if self._lazy_acks:
                self._ack = _frame(_PING, _ACK, 0, payload)
            else:
                self.transport.write(_frame(_PING, _ACK, 0, payload))
        elif kind == _RST:
            self._finish(stream, "stream reset by the program")
        elif kind == _GOAWAY:
            self.closed = True
            self._fail_all("the program closed the connection (GOAWAY)")
            self.transport.close()

    def _on_data(self, flags: int, stream: int, payload: bytes) -> None:
        self._received += len(payload)
        if self._received >= _CREDIT:
            # the connection's window only: each stream carries a few bytes and then ends
            self.transport.write(_frame(_WINDOW, 0, 0, struct.pack(">I", self._received)))
            self._received = 0
        if flags & _PADDED and payload:
            payload = payload[1:len(payload) - payload[0]]
        pending = self._pending.get(stream)
        if pending is not None and len(payload) >= 5:
            pending[1] = _status(payload[5:])
        if flags & _END_STREAM:
            self._finish(stream)

    def _finish(self, stream: int, why: str = "") -> None:
        pending = self._pending.pop(stream, None)
        if pending is None:
            return
        answer, status = pending
        if status is None:
            answer(None, why or "no answer (the program replied with an error status)")
        else:
            answer(status, STATUS_NAMES.get(status, str(status)))

    def _fail_all(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        for answer, _ in pending.values():
            answer(None, why)


def _status(message: bytes) -> int:
    """``HealthCheckResponse.status`` (field 1, varint) of a serialized message; 0 if absent."""
    if len(message) >= 2 and message[0] == 0x08:
        return message[1] & 0x7F  # the statuses are below 128: one varint byte
    return 0
