"""The records the manager keeps in its own LMDB, and their byte encoding.

A record is immutable (a frozen dataclass, or a NamedTuple); ``to_bytes()`` gives the stored
value and ``from_bytes()`` reads it back. The key (moniker or instance id) is not repeated in
the value: ``from_bytes`` takes it as an argument. Values are compact JSON arrays
(positional, no field names) whose first element is the record's format version, so a later
version can still read old values.

Example::

    r = InstanceRecord("/app/workers:job-1", "ab" * 32, "file:///pkgs/job.cm", 1, "workers", True)
    InstanceRecord.from_bytes(r.moniker, r.to_bytes()) == r   # True
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["InstanceRecord", "ProcessRecord", "RecordFormatError", "instance_records"]

_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_DECODE = json.JSONDecoder().decode
_VERSION = 1
_PROCESS_VERSION = 2  # version 2 added ``run``


class RecordFormatError(ValueError):
    """A stored value is not a record of a version this code reads (wrapped by the store)."""


def _decode(data: bytes, width: int, version: int = _VERSION) -> list[Any]:
    try:
        fields = _DECODE(str(data, "utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise RecordFormatError(f"not a JSON record: {e}") from None
    if type(fields) is not list or len(fields) != width + 1 or fields[0] != version:
        raise RecordFormatError(f"expected a version-{version} record of {width} fields")
    return fields


class InstanceRecord(NamedTuple):
    """What the manager remembers about one instance, keyed by its moniker string. A tuple:
    a boot makes 100,000 of them, and a tuple is made several times faster than a frozen
    dataclass.

    ``last_start`` is ``{"reason", "at", ...}``; ``last_stop`` is
    ``{"reason", "disposition", "exit_code", "signal", "run_time_s", "stopped_at", "detail"}``
    (both ``None`` until the first start / stop). Example: a dynamic child
    ``InstanceRecord("/core/workers:job-7", id, url, incarnation=3, collection="workers",
    dynamic=True)``.
    """

    moniker: str
    instance_id: str
    url: str
    incarnation: int = 0
    collection: str = ""
    dynamic: bool = False
    last_start: dict | None = None
    last_stop: dict | None = None

    def to_bytes(self) -> bytes:
        return _ENCODE([_VERSION, self.instance_id, self.url, self.incarnation, self.collection,
                        self.dynamic, self.last_start, self.last_stop]).encode("utf-8")

    @classmethod
    def from_bytes(cls, moniker: str, data: bytes) -> InstanceRecord:
        """Raises RecordFormatError if ``data`` is not an instance record."""
        _, instance_id, url, incarnation, collection, dynamic, start, stop = _decode(data, 7)
        return cls(moniker, instance_id, url, incarnation, collection, dynamic, start, stop)


def instance_records(items: list[tuple[bytes, bytes]]) -> list[InstanceRecord]:
    """The records of many ``(moniker, value)`` pairs (a boot reads 100,000): their values
    are parsed as one JSON array, one call instead of one per record, and the URL and
    collection strings, shared by many records, are kept once (``sys.intern``). Raises
    RecordFormatError when a value is not an instance record (the caller finds which)."""
    try:
        rows = _DECODE(str(b"[" + b",".join([value for _, value in items]) + b"]", "utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise RecordFormatError(f"not a JSON record: {e}") from None
    if len(rows) != len(items):  # a value such as ``1],[2`` is not one record
        raise RecordFormatError("a value is not one JSON array")
    records = []
    intern, new = sys.intern, tuple.__new__  # a NamedTuple's own __new__ is Python: 3x slower
    for (key, _), row in zip(items, rows):
        if type(row) is not list or len(row) != 8 or row[0] != _VERSION or type(row[2]) is not str \
                or type(row[4]) is not str:
            raise RecordFormatError(f"expected a version-{_VERSION} record of 7 fields")
        _, instance_id, url, incarnation, collection, dynamic, start, stop = row
        records.append(new(InstanceRecord, (key.decode(), instance_id, intern(url), incarnation,
                                            intern(collection), dynamic, start, stop)))
    return records


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    """A program that is running now, keyed by instance id, so that a manager that restarts
    (even after ``kill -9``) finds it. ``start_ticks`` and ``boot_id`` tell a live process
    from a later one that reuses the pid. Example:
    ``ProcessRecord(id, "/app/server", pid=4242, pgid=4242, start_ticks=981234, boot_id="…")``.

    It is committed before the program may run (``actions/start.py``), and ``run`` holds
    what a restarted manager needs to adopt it rather than kill it: ``{"token", "grant_key"
    (hex), "serve_address", "reason", "config", "cgroup", "released"}``: "released" is noted
    (lazily) once the program was let run; only then is it adopted. These are secrets of the run;
    the store is the manager's alone. A version-1 record (no ``run``) is read with ``run``
    empty: its program cannot be adopted, only stopped.
    """

    instance_id: str
    moniker: str
    pid: int
    pgid: int
    start_ticks: int
    boot_id: str
    started_at: float = 0.0
    run: dict | None = None

    def to_bytes(self) -> bytes:
        return _ENCODE([_PROCESS_VERSION, self.moniker, self.pid, self.pgid, self.start_ticks,
                        self.boot_id, self.started_at, self.run]).encode("utf-8")

    @classmethod
    def from_bytes(cls, instance_id: str, data: bytes) -> ProcessRecord:
        """Raises RecordFormatError if ``data`` is not a process record."""
        try:
            _, moniker, pid, pgid, start_ticks, boot_id, started_at, run = _decode(data, 7, _PROCESS_VERSION)
        except RecordFormatError:
            _, moniker, pid, pgid, start_ticks, boot_id, started_at = _decode(data, 6)
            run = None
        return cls(instance_id, moniker, pid, pgid, start_ticks, boot_id, started_at, run)


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON, as stored for events."""
    return _ENCODE(value).encode("utf-8")


def decode_json(data: bytes) -> Any:
    return _DECODE(str(data, "utf-8"))
