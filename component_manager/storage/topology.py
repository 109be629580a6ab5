"""TopologyStore: the manager's own LMDB environment (``<state_dir>/manager.lmdb``).

It holds what must survive the manager: every instance (id, url, incarnation, last start and
stop), the programs running right now (so a restarted manager finds them), the last
``EVENT_RING`` events, and counters. Sub-databases:

    instances   moniker string      -> InstanceRecord
    processes   instance id         -> ProcessRecord
    restarts    moniker string      -> JSON restart state (policy/restart.py: attempt,
                                       next try, gave up), deleted with the instance
    events      8-byte big-endian seq -> JSON event (a ring: the newest EVENT_RING are kept)
    uids        instance id         -> 4-byte big-endian uid it runs under (``runners/isolation.py``)
    snapshots   instance id         -> its last storage snapshot's record (``snapshots.py``)
    meta        b"schema"           -> schema version
                b"root_url"         -> the root URL the tree was built from (utf-8)
                b"event_seq"        -> next event sequence number
                b"inc\\0<parent>\\0<collection>" -> next incarnation in that collection
                b"tomb\\0<moniker>" -> instance id of an instance being destroyed

Every commit is durable against a crash of the manager (``kill -9`` included) the moment it
returns, and one fsync makes it so: LMDB writes the data pages and fsyncs them, then writes
the meta page that points at them without a second fsync (``metasync=False``); the next
commit's fsync, or the kernel's writeback (~30 s), carries that page to disk. A
crash of the *machine* (OS crash, power loss) never leaves a half-written or corrupt store,
but may undo the last commit made before it (one group commit, if none followed it). Batches whose effect
outlives the machine's crash (a destroy's tombstone, before storage is deleted; a uid,
before files are owned by it; a snapshot record, before a snapshot file is removed) ask for
the second fsync too (``Batch.sync_meta``). See
docs/design.md, "Persistence and recovery". Two ways in:

* the plain methods and ``batch()`` commit before they return (they block the caller);
* ``commit(batch)`` (async) is a *group commit*: the batch joins the next transaction of
  the store's commit thread (``committer.py``), and the caller's future resolves once that
  transaction is durable. The event loop never waits for an fsync, and concurrent starts,
  stops and creates share one (0.2-0.3 ms here) instead of paying one each.

Both go through that one thread's queue, so commits land in the order they were made, and
a blocking commit waits for the batches queued before it. Counters (event sequence numbers,
incarnations) are handed out when a batch is filled, from a cache of the committed values,
so a batch needs no read inside its transaction. One process opens the environment once
(LMDB forbids opening it twice in one process).

Example::

    store = TopologyStore(state_dir / "manager.lmdb")
    n = store.next_incarnation("/core", "workers")          # 1, then 2, ... never reused
    store.put_instance(InstanceRecord("/core/workers:job", iid, url, n, "workers", True))
    with store.batch() as b:                                  # one commit for both
        b.delete_subtree("/core/workers:job")
        b.append_event({"type": "destroyed", "moniker": "/core/workers:job"})
    b = store.new_batch()                                     # async code: a group commit
    b.put_instance(record)
    await store.commit(b)                                     # durable here
    store.close()
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lmdb

from ..errors import StorageError
from .committer import GroupCommitter
from .records import InstanceRecord, ProcessRecord, RecordFormatError, decode_json, encode_json, instance_records

__all__ = ["Batch", "EVENT_RING", "InstanceRecord", "ProcessRecord", "SCHEMA_VERSION", "TopologyStore"]

SCHEMA_VERSION = 1
EVENT_RING = 10_000
LAZY_COMMIT_S = 0.05  # longest a lazily committed batch waits for company
MAP_SIZE = 64 << 30  # only address space: LMDB grows the file as it is used
_OWNER = "<manager>"  # the "moniker" StorageErrors about the manager's own store carry
_open_paths: set[str] = set()  # environments open in this process (LMDB allows one each)


def _u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


class _Wakeups:
    """Settles the commit futures of one event loop from the commit thread, waking the loop
    once for all the futures of a commit (a group commit of 200 stops: one wake-up, not 200
    writes to the loop's self-pipe and 200 callbacks)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._due: list[tuple[asyncio.Future, list | None, BaseException | None]] = []
        self._lock = threading.Lock()

    def settler(self, future: asyncio.Future):
        """A committer callback that settles ``future`` in its loop."""
        def settle(results: list | None, error: BaseException | None) -> None:
            with self._lock:
                self._due.append((future, results, error))
                first = len(self._due) == 1
            if first:  # later ones ride with this wake-up until the loop has run it
                try:
                    self.loop.call_soon_threadsafe(self._settle_due)
                except RuntimeError:  # the loop is closed: nobody waits any more
                    pass
        return settle

    def _settle_due(self) -> None:
        with self._lock:
            due, self._due = self._due, []
        for future, results, error in due:
            _settle_future(future, results, error)


def _settle_future(future: asyncio.Future, results: list | None, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled: the write happened all the same
        return
    if error is None:
        future.set_result(results)
    else:
        future.set_exception(error)


_TOMB = b"tomb\0"


def _incarnation_key(parent_moniker: str, collection: str) -> bytes:
    return b"inc\0" + parent_moniker.encode() + b"\0" + collection.encode()


def _delete_prefixed(txn: lmdb.Transaction, db, key: bytes, prefix: bytes) -> int:
    """Delete ``key`` and every key under ``prefix`` in ``db``; return how many."""
    deleted = int(txn.delete(key, db=db))
    cursor = txn.cursor(db=db)
    if cursor.set_range(prefix):
        while cursor.key().startswith(prefix):
            deleted += 1
            if not cursor.delete():  # moves to the next record; False at the end
                break
    return deleted


class Batch:
    """Writes collected for one commit (``store.batch()`` or ``store.commit()``).

    Operations run later, inside the commit's transaction; counters are handed out now.
    Fill a batch and hand it over without awaiting in between: its counter values are only
    reserved for the store once it is queued.
    """

    def __init__(self, store: TopologyStore) -> None:
        self._s = store
        self._ops: list[Callable[[lmdb.Transaction], Any]] = []
        self._counters: dict[bytes, int] = {}  # key -> next value, once this batch commits

    def put_instance(self, record: InstanceRecord) -> None:
        self._put(record.moniker.encode(), record.to_bytes(), self._s._instances)

    def delete_instance(self, moniker: str) -> None:
        """Delete one record (not its descendants)."""
        key, db = moniker.encode(), self._s._instances
        self._ops.append(lambda txn: txn.delete(key, db=db))

    def delete_subtree(self, moniker: str) -> None:
        """Delete ``moniker`` and every descendant's record (the commit's result: how many).

        Example: ``delete_subtree("/app")`` removes ``/app``, ``/app/a`` and
        ``/app/c:x/y`` but not ``/app-2``."""
        key, instances, restarts = moniker.encode(), self._s._instances, self._s._restarts
        prefix = moniker.rstrip("/").encode() + b"/"

        def delete(txn: lmdb.Transaction) -> int:
            _delete_prefixed(txn, restarts, key, prefix)
            return _delete_prefixed(txn, instances, key, prefix)

        self._ops.append(delete)

    def put_restart(self, moniker: str, state: dict[str, Any]) -> None:
        self._put(moniker.encode(), encode_json(state), self._s._restarts)

    def delete_restart(self, moniker: str) -> None:
        key, db = moniker.encode(), self._s._restarts
        self._ops.append(lambda txn: txn.delete(key, db=db))

    def put_process(self, record: ProcessRecord) -> None:
        self._put(record.instance_id.encode(), record.to_bytes(), self._s._processes)

    def delete_process(self, instance_id: str) -> None:
        key, db = instance_id.encode(), self._s._processes
        self._ops.append(lambda txn: txn.delete(key, db=db))

    def put_tombstone(self, moniker: str, instance_id: str) -> None:
        """Mark ``moniker`` as being destroyed: a later manager finishes the destroy. Its
        storage is deleted next, which a machine crash does not undo: so this must not be."""
        self._put(_TOMB + moniker.encode(), instance_id.encode(), self._s._meta)
        self.sync_meta()

    def delete_tombstone(self, moniker: str) -> None:
        key, db = _TOMB + moniker.encode(), self._s._meta
        self._ops.append(lambda txn: txn.delete(key, db=db))

    def put_snapshot(self, instance_id: str, record: bytes) -> None:
        """The older snapshot's file is removed next: this record must survive the machine."""
        self._put(instance_id.encode(), record, self._s._snapshots)
        self.sync_meta()

    def delete_snapshot(self, instance_id: str) -> None:
        """The snapshot's file is removed next: this must survive the machine too."""
        key, db = instance_id.encode(), self._s._snapshots
        self._ops.append(lambda txn: txn.delete(key, db=db))
        self.sync_meta()

    def put_uid(self, instance_id: str, uid: int) -> None:
        """Files will be owned by ``uid``: never handed to another instance after a crash."""
        self._put(instance_id.encode(), uid.to_bytes(4, "big"), self._s._uids)
        self.sync_meta()

    def sync_meta(self) -> None:
        """Make this batch's commit survive a crash of the machine too (a second fsync, of
        LMDB's meta page), for a record whose effect a machine crash does not undo."""
        self._ops.append(self._s._sync_meta_after_commit)

    def delete_uid(self, instance_id: str) -> None:
        key, db = instance_id.encode(), self._s._uids
        self._ops.append(lambda txn: txn.delete(key, db=db))

    def append_event(self, event: dict[str, Any]) -> int:
        """Store ``event`` under the next sequence number (1, 2, ...) and return it; trim the
        ring to the newest ``store.event_ring`` events in the same transaction."""
        seq = self._next_counter(b"event_seq")
        self._put(_u64(seq), encode_json(event), self._s._events)
        if seq > self._s.event_ring:
            self._ops.append(self._s._trim_events)
        return seq

    def next_incarnation(self, parent_moniker: str, collection: str) -> int:
        """The next incarnation number (1, 2, ...) for a child of ``collection`` in
        ``parent_moniker``; the counter is durable and never goes back, not even when every
        child (or the parent) is deleted."""
        return self._next_counter(_incarnation_key(parent_moniker, collection))

    def put_meta(self, key: str, value: str) -> None:
        self._put(key.encode(), value.encode(), self._s._meta)

    def _put(self, key: bytes, value: bytes, db) -> None:
        self._ops.append(lambda txn: txn.put(key, value, db=db))

    def _next_counter(self, key: bytes) -> int:
        value = self._counters.get(key) or self._s._next_value(key)
        self._counters[key] = value + 1
        self._put(key, _u64(value + 1), self._s._meta)
        return value


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
        self._restarts = self._env.open_db(b"restarts")
        self._uids = self._env.open_db(b"uids")
        self._snapshots = self._env.open_db(b"snapshots")
        self._check_schema()
        self._next: dict[bytes, int] = {}  # counter key -> next value, committed or queued
        self._meta_sync_due = False  # set inside a transaction by Batch.sync_meta
        self._wakeups: _Wakeups | None = None  # of the loop that commits
        self._committer = GroupCommitter(self._transaction, f"lmdb-commit {self.path.name}")
        self._lazy: list[tuple[list, Callable]] = []  # commit_lazily's batches, not yet submitted
        self._order = threading.RLock()  # batches reach the committer in the order they were filled

    def _open(self, map_size: int) -> lmdb.Environment:
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            # metasync=False: one fsync per commit, not two (see the module docstring)
            return lmdb.open(str(self.path), map_size=map_size, subdir=True, max_dbs=8, lock=True,
                             writemap=False, sync=True, metasync=False, max_readers=256, mode=0o600)
        except (lmdb.Error, OSError) as e:
            raise StorageError(_OWNER, self.path.name, f"cannot open {self.path}: {e}") from None

    def _check_schema(self) -> None:
        with self._env.begin(write=True) as txn:
            raw = txn.get(b"schema", db=self._meta)
            if raw is None:
                txn.put(b"schema", _u64(SCHEMA_VERSION), db=self._meta)
            elif int.from_bytes(raw, "big") != SCHEMA_VERSION:
                version = int.from_bytes(raw, "big")
                self.close()
                raise StorageError(_OWNER, self.path.name,
                                   f"schema version {version}; this manager reads {SCHEMA_VERSION}")

    def get_meta(self, key: str) -> str | None:
        """A text value of the meta database (``root_url``), or None."""
        with self._read() as txn:
            raw = txn.get(key.encode(), db=self._meta)
        return None if raw is None else bytes(raw).decode()

    def put_meta(self, key: str, value: str) -> None:
        """Set a text value of the meta database, durably, before returning."""
        with self.batch() as b:
            b.put_meta(key, value)

    def close(self) -> None:
        """Commit what is queued, then close the environment. Safe to call twice."""
        if self._key in _open_paths:
            self._submit_lazy()
            self._committer.close()
            self._env.sync(True)  # the last commit's meta page too: a clean exit loses nothing
            _open_paths.discard(self._key)
            self._env.close()

    def __enter__(self) -> TopologyStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- transactions --------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """Several writes in one durable commit when the block ends (with every batch still
        queued for a group commit, which goes first); nothing is written if the block raises.

        Example: ``with store.batch() as b: b.put_instance(r); b.append_event(e)``."""
        batch = Batch(self)
        yield batch
        self.commit_now(batch)

    def new_batch(self) -> Batch:
        """An empty batch for ``commit()``."""
        return Batch(self)

    def commit(self, batch: Batch) -> asyncio.Future:
        """Queue ``batch`` for the next group commit; the future's result (the list of its
        operations' results) is set once it is durable, or its exception is a StorageError
        naming what failed. Call it from the running event loop."""
        future, settle = self._loop_future()
        self._enqueue(batch, settle)
        return future

    def commit_lazily(self, batch: Batch) -> asyncio.Future:
        """``commit``, for a batch nobody waits on (an event such as ``capability_requested``):
        it rides with the next commit, or is committed ``LAZY_COMMIT_S`` from now, so that a
        stream of them wakes the commit thread once, not once each. ``events()`` and
        ``close()`` commit it first."""
        future, settle = self._loop_future()
        with self._order:
            self._next.update(batch._counters)
            self._lazy.append((batch._ops, settle))
            if len(self._lazy) == 1:
                asyncio.get_running_loop().call_later(LAZY_COMMIT_S, self._submit_lazy)
        return future

    def _loop_future(self) -> tuple[asyncio.Future, Callable]:
        """A future of the running loop, and the committer callback that settles it."""
        loop = asyncio.get_running_loop()
        wakeups = self._wakeups
        if wakeups is None or wakeups.loop is not loop:  # the manager has one loop; tests, several
            wakeups = self._wakeups = _Wakeups(loop)
        future = loop.create_future()
        return future, wakeups.settler(future)

    def commit_now(self, batch: Batch) -> list:
        """Commit ``batch`` (after everything queued before it) before returning; the list
        of its operations' results. Raises StorageError."""
        done = threading.Event()
        outcome: list = []

        def settle(results: list | None, error: BaseException | None) -> None:
            outcome.extend((results, error))
            done.set()

        self._enqueue(batch, settle)
        done.wait()
        results, error = outcome
        if error is not None:
            raise error
        return results

    def _enqueue(self, batch: Batch, settle) -> None:
        with self._order:
            self._next.update(batch._counters)  # from now on these values are taken
            self._submit_lazy()  # batches filled earlier commit first: order holds
            self._committer.submit(batch._ops, settle)

    def _submit_lazy(self) -> None:
        with self._order:
            lazy, self._lazy = self._lazy, []
            for ops, settle in lazy:
                self._committer.submit(ops, settle)

    def _transaction(self, ops: list) -> list:
        self._meta_sync_due = False
        try:
            with self._env.begin(write=True) as txn:
                results = [op(txn) for op in ops]
            if self._meta_sync_due:
                self._env.sync(True)
            return results
        except lmdb.Error as e:
            raise StorageError(_OWNER, self.path.name, f"write failed: {e}") from None

    def _sync_meta_after_commit(self, txn: lmdb.Transaction) -> None:
        """An op (``Batch.sync_meta``): fsync once more after this transaction commits."""
        self._meta_sync_due = True

    def _next_value(self, key: bytes) -> int:
        """The next value of a durable counter: queued batches first, else the committed one."""
        value = self._next.get(key)
        if value is None:
            with self._read() as txn:
                raw = txn.get(key, db=self._meta)
            value = self._next[key] = int.from_bytes(raw, "big") if raw else 1
        return value

    def _trim_events(self, txn: lmdb.Transaction) -> None:
        excess = txn.stat(self._events)["entries"] - self.event_ring
        if excess <= 0:
            return
        cursor = txn.cursor(db=self._events)
        cursor.first()
        for _ in range(excess):
            cursor.delete()

    def _read(self) -> lmdb.Transaction:
        return self._env.begin(write=False)

    # ---- instances -----------------------------------------------------------------------

    def put_instance(self, record: InstanceRecord) -> None:
        with self.batch() as b:
            b.put_instance(record)

    def delete_instance(self, moniker: str) -> bool:
        """Delete one instance record (see ``delete_subtree`` for descendants too)."""
        batch = Batch(self)
        batch.delete_instance(moniker)
        return self.commit_now(batch)[0]

    def delete_subtree(self, moniker: str) -> int:
        """Delete ``moniker``'s record and all its descendants'; return how many."""
        batch = Batch(self)
        batch.delete_subtree(moniker)
        return self.commit_now(batch)[0]

    def get_instance(self, moniker: str) -> InstanceRecord | None:
        with self._read() as txn:
            raw = txn.get(moniker.encode(), db=self._instances)
        return None if raw is None else self._record(InstanceRecord, moniker, raw)

    def all_instances(self) -> list[InstanceRecord]:
        """Every instance record, in moniker order (parents before their descendants)."""
        with self._read() as txn:
            items = list(txn.cursor(db=self._instances))
        try:
            return instance_records(items)
        except RecordFormatError:
            return [self._record(InstanceRecord, k.decode(), v) for k, v in items]  # names the bad one

    # ---- processes -----------------------------------------------------------------------

    def put_process(self, record: ProcessRecord) -> None:
        with self.batch() as b:
            b.put_process(record)

    def delete_process(self, instance_id: str) -> bool:
        batch = Batch(self)
        batch.delete_process(instance_id)
        return self.commit_now(batch)[0]

    def get_process(self, instance_id: str) -> ProcessRecord | None:
        with self._read() as txn:
            raw = txn.get(instance_id.encode(), db=self._processes)
        return None if raw is None else self._record(ProcessRecord, instance_id, raw)

    def all_processes(self) -> list[ProcessRecord]:
        with self._read() as txn:
            items = list(txn.cursor(db=self._processes))
        return [self._record(ProcessRecord, k.decode(), v) for k, v in items]

    def tombstones(self) -> dict[str, str]:
        """Moniker -> instance id of every destroy that was committed but not finished."""
        with self._read() as txn:
            cursor = txn.cursor(db=self._meta)
            found = {}
            if cursor.set_range(_TOMB):
                for key, value in cursor:
                    if not key.startswith(_TOMB):
                        break
                    found[key[len(_TOMB):].decode()] = value.decode()
        return found

    # ---- restart states -----------------------------------------------------------------

    def all_restarts(self) -> dict[str, dict[str, Any]]:
        """Every stored restart state, by moniker."""
        with self._read() as txn:
            items = list(txn.cursor(db=self._restarts))
        return {k.decode(): decode_json(v) for k, v in items}

    # ---- uids ----------------------------------------------------------------------------

    def all_uids(self) -> dict[str, int]:
        """Instance id -> the uid its programs run under (when the manager runs as root)."""
        with self._read() as txn:
            return {k.decode(): int.from_bytes(v, "big") for k, v in txn.cursor(db=self._uids)}

    # ---- storage snapshots ----------------------------------------------------------------

    def get_snapshot(self, instance_id: str) -> bytes | None:
        """The stored snapshot record (``snapshots.SnapshotInfo.to_bytes()``), or None."""
        with self._read() as txn:
            raw = txn.get(instance_id.encode(), db=self._snapshots)
        return None if raw is None else bytes(raw)

    def all_snapshots(self) -> dict[str, bytes]:
        with self._read() as txn:
            return {k.decode(): bytes(v) for k, v in txn.cursor(db=self._snapshots)}

    # ---- events and counters -------------------------------------------------------------

    def append_event(self, event: dict[str, Any]) -> int:
        """Store an event (any JSON-able dict); return its sequence number (1, 2, ...)."""
        with self.batch() as b:
            return b.append_event(event)

    def events(self, since_seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Stored events with ``seq > since_seq``, oldest first, at most ``limit``; each
        dict carries its ``"seq"``. Example: ``events(since_seq=41, limit=2)`` -> the
        events 42 and 43 (if the ring still holds them)."""
        if self._lazy:
            self.commit_now(Batch(self))  # lazily committed events are history too
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
        with self.batch() as b:
            return b.next_incarnation(parent_moniker, collection)

    def statistics(self) -> dict[str, int]:
        """Entry counts per sub-database, for diagnostics and tests."""
        with self._read() as txn:
            return {name: txn.stat(db)["entries"] for name, db in (
                ("instances", self._instances), ("processes", self._processes),
                ("events", self._events), ("meta", self._meta), ("restarts", self._restarts),
                ("uids", self._uids), ("snapshots", self._snapshots))}

    def _record(self, cls, key: str, raw: bytes):
        try:
            return cls.from_bytes(key, raw)
        except RecordFormatError as e:
            raise StorageError(_OWNER, self.path.name, f"record {key!r} is unreadable: {e}") from None
