"""TopologyStore: the manager's own LMDB environment (``<state_dir>/manager.lmdb``).

It holds what must survive the manager: every instance (id, url, incarnation, last start and
stop), the programs running right now (so a restarted manager finds them), the last
``EVENT_RING`` events, and counters. Sub-databases:

    instances   moniker string      -> InstanceRecord
    processes   instance id         -> ProcessRecord
    events      8-byte big-endian seq -> JSON event (a ring: the newest EVENT_RING are kept)
    meta        b"schema"           -> schema version
                b"event_seq"        -> next event sequence number
                b"inc\\0<parent>\\0<collection>" -> next incarnation in that collection

Every call is synchronous and durable when it returns (LMDB ``sync=True``), and no
transaction outlives the call. Several writes can share one durable commit with ``batch()``.
One process opens the environment once (LMDB forbids opening it twice in one process).

Example::

    store = TopologyStore(state_dir / "manager.lmdb")
    n = store.next_incarnation("/core", "workers")          # 1, then 2, ... never reused
    store.put_instance(InstanceRecord("/core/workers:job", iid, url, n, "workers", True))
    with store.batch() as b:                                  # one commit for both
        b.delete_subtree("/core/workers:job")
        b.append_event({"type": "destroyed", "moniker": "/core/workers:job"})
    store.close()
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lmdb

from ..errors import StorageError
from .records import InstanceRecord, ProcessRecord, RecordFormatError, decode_json, encode_json

__all__ = ["Batch", "EVENT_RING", "InstanceRecord", "ProcessRecord", "SCHEMA_VERSION", "TopologyStore"]

SCHEMA_VERSION = 1
EVENT_RING = 10_000
MAP_SIZE = 64 << 30  # only address space: LMDB grows the file as it is used
_OWNER = "<manager>"  # the "moniker" StorageErrors about the manager's own store carry
_open_paths: set[str] = set()  # environments open in this process (LMDB allows one each)


def _u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def _incarnation_key(parent_moniker: str, collection: str) -> bytes:
    return b"inc\0" + parent_moniker.encode() + b"\0" + collection.encode()


class Batch:
    """The write operations of TopologyStore inside one transaction (see ``batch()``)."""

    def __init__(self, store: TopologyStore, txn: lmdb.Transaction) -> None:
        self._s = store
        self._txn = txn

    def put_instance(self, record: InstanceRecord) -> None:
        self._txn.put(record.moniker.encode(), record.to_bytes(), db=self._s._instances)

    def delete_instance(self, moniker: str) -> bool:
        """Delete one record (not its descendants). True if it existed."""
        return self._txn.delete(moniker.encode(), db=self._s._instances)

    def delete_subtree(self, moniker: str) -> int:
        """Delete ``moniker`` and every descendant's record; return how many were deleted.

        Example: ``delete_subtree("/app")`` removes ``/app``, ``/app/a`` and
        ``/app/c:x/y`` but not ``/app-2``."""
        deleted = int(self.delete_instance(moniker))
        prefix = moniker.rstrip("/").encode() + b"/"
        cursor = self._txn.cursor(db=self._s._instances)
        if cursor.set_range(prefix):
            while cursor.key().startswith(prefix):
                deleted += 1
                if not cursor.delete():  # moves to the next record; False at the end
                    break
        return deleted

    def put_process(self, record: ProcessRecord) -> None:
        self._txn.put(record.instance_id.encode(), record.to_bytes(), db=self._s._processes)

    def delete_process(self, instance_id: str) -> bool:
        return self._txn.delete(instance_id.encode(), db=self._s._processes)

    def append_event(self, event: dict[str, Any]) -> int:
        """Store ``event`` under the next sequence number (1, 2, ...) and return it; trim the
        ring to the newest ``store.event_ring`` events in the same transaction."""
        seq = self._next_counter(b"event_seq")
        self._txn.put(_u64(seq), encode_json(event), db=self._s._events)
        self._trim_events()
        return seq

    def next_incarnation(self, parent_moniker: str, collection: str) -> int:
        """The next incarnation number (1, 2, ...) for a child of ``collection`` in
        ``parent_moniker``; the counter is durable and never goes back, not even when every
        child (or the parent) is deleted."""
        return self._next_counter(_incarnation_key(parent_moniker, collection))

    def _next_counter(self, key: bytes) -> int:
        raw = self._txn.get(key, db=self._s._meta)
        value = int.from_bytes(raw, "big") if raw else 1
        self._txn.put(key, _u64(value + 1), db=self._s._meta)
        return value

    def _trim_events(self) -> None:
        excess = self._txn.stat(self._s._events)["entries"] - self._s.event_ring
        if excess <= 0:
            return
        cursor = self._txn.cursor(db=self._s._events)
        cursor.first()
        for _ in range(excess):
            cursor.delete()


class TopologyStore:
    """The manager's durable topology; see the module docstring.

    Raises StorageError if the environment cannot be opened, is already open in this
    process, or was written by an incompatible schema version.
    """

    def __init__(self, path: Path | str, *, map_size: int = MAP_SIZE, event_ring: int = EVENT_RING) -> None:
        self.path = Path(path)
        self.event_ring = event_ring
        key = str(self.path.resolve())
        if key in _open_paths:
            raise StorageError(_OWNER, self.path.name, f"{self.path} is already open in this process")
        self._env = self._open(map_size)
        _open_paths.add(key)
        self._key = key
        self._instances = self._env.open_db(b"instances")
        self._processes = self._env.open_db(b"processes")
        self._events = self._env.open_db(b"events")
        self._meta = self._env.open_db(b"meta")
        self._check_schema()

    def _open(self, map_size: int) -> lmdb.Environment:
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            return lmdb.open(str(self.path), map_size=map_size, subdir=True, max_dbs=8, lock=True,
                             writemap=False, sync=True, metasync=True, max_readers=256)
        except (lmdb.Error, OSError) as e:
            raise StorageError(_OWNER, self.path.name, f"cannot open {self.path}: {e}") from None

    def _check_schema(self) -> None:
        with self._write() as b:
            raw = b._txn.get(b"schema", db=self._meta)
            if raw is None:
                b._txn.put(b"schema", _u64(SCHEMA_VERSION), db=self._meta)
            elif int.from_bytes(raw, "big") != SCHEMA_VERSION:
                version = int.from_bytes(raw, "big")
                self.close()
                raise StorageError(_OWNER, self.path.name,
                                   f"schema version {version}; this manager reads {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the environment. Safe to call twice."""
        if self._key in _open_paths:
            _open_paths.discard(self._key)
            self._env.close()

    def __enter__(self) -> TopologyStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- transactions --------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """Several writes in one durable commit; nothing is written if the block raises.

        Example: ``with store.batch() as b: b.put_instance(r); b.append_event(e)``."""
        with self._write() as b:
            yield b

    @contextmanager
    def _write(self) -> Iterator[Batch]:
        try:
            with self._env.begin(write=True) as txn:
                yield Batch(self, txn)
        except lmdb.Error as e:
            raise StorageError(_OWNER, self.path.name, f"write failed: {e}") from None

    def _read(self) -> lmdb.Transaction:
        return self._env.begin(write=False)

    # ---- instances -----------------------------------------------------------------------

    def put_instance(self, record: InstanceRecord) -> None:
        with self._write() as b:
            b.put_instance(record)

    def delete_instance(self, moniker: str) -> bool:
        """Delete one instance record (see ``delete_subtree`` for descendants too)."""
        with self._write() as b:
            return b.delete_instance(moniker)

    def delete_subtree(self, moniker: str) -> int:
        """Delete ``moniker``'s record and all its descendants'; return how many."""
        with self._write() as b:
            return b.delete_subtree(moniker)

    def get_instance(self, moniker: str) -> InstanceRecord | None:
        with self._read() as txn:
            raw = txn.get(moniker.encode(), db=self._instances)
        return None if raw is None else self._record(InstanceRecord, moniker, raw)

    def all_instances(self) -> list[InstanceRecord]:
        """Every instance record, in moniker order (parents before their descendants)."""
        with self._read() as txn:
            items = list(txn.cursor(db=self._instances))
        try:
            return [InstanceRecord.from_bytes(k.decode(), v) for k, v in items]
        except RecordFormatError:
            return [self._record(InstanceRecord, k.decode(), v) for k, v in items]  # names the bad one

    # ---- processes -----------------------------------------------------------------------

    def put_process(self, record: ProcessRecord) -> None:
        with self._write() as b:
            b.put_process(record)

    def delete_process(self, instance_id: str) -> bool:
        with self._write() as b:
            return b.delete_process(instance_id)

    def get_process(self, instance_id: str) -> ProcessRecord | None:
        with self._read() as txn:
            raw = txn.get(instance_id.encode(), db=self._processes)
        return None if raw is None else self._record(ProcessRecord, instance_id, raw)

    def all_processes(self) -> list[ProcessRecord]:
        with self._read() as txn:
            items = list(txn.cursor(db=self._processes))
        return [self._record(ProcessRecord, k.decode(), v) for k, v in items]

    # ---- events and counters -------------------------------------------------------------

    def append_event(self, event: dict[str, Any]) -> int:
        """Store an event (any JSON-able dict); return its sequence number (1, 2, ...)."""
        with self._write() as b:
            return b.append_event(event)

    def events(self, since_seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Stored events with ``seq > since_seq``, oldest first, at most ``limit``; each
        dict carries its ``"seq"``. Example: ``events(since_seq=41, limit=2)`` -> the
        events 42 and 43 (if the ring still holds them)."""
        items: list[tuple[bytes, bytes]] = []
        with self._read() as txn:
            cursor = txn.cursor(db=self._events)
            if not cursor.set_range(_u64(max(since_seq, 0) + 1)):
                return []
            for key, value in cursor:
                if limit is not None and len(items) >= limit:
                    break
                items.append((key, value))
        return [{**decode_json(v), "seq": int.from_bytes(k, "big")} for k, v in items]

    def next_incarnation(self, parent_moniker: str, collection: str) -> int:
        """Durable counter per (parent, collection): 1, 2, 3, ... never reused."""
        with self._write() as b:
            return b.next_incarnation(parent_moniker, collection)

    def statistics(self) -> dict[str, int]:
        """Entry counts per sub-database, for diagnostics and tests."""
        with self._read() as txn:
            return {name: txn.stat(db)["entries"] for name, db in (
                ("instances", self._instances), ("processes", self._processes),
                ("events", self._events), ("meta", self._meta))}

    def _record(self, cls, key: str, raw: bytes):
        try:
            return cls.from_bytes(key, raw)
        except RecordFormatError as e:
            raise StorageError(_OWNER, self.path.name, f"record {key!r} is unreadable: {e}") from None
