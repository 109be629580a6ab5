"""TopologyStore on a real LMDB in tmp_path: durability, subtree deletes, counters, events."""

import asyncio
import time

import pytest

from component_manager.errors import StorageError
from component_manager.storage.records import InstanceRecord, ProcessRecord
from component_manager.storage.topology import TopologyStore

IID = "ab" * 32
STOP = {"reason": "requested", "disposition": "stopped", "exit_code": 0, "signal": None,
        "run_time_s": 1.5, "stopped_at": 1700000000.0, "detail": ""}


def record(moniker: str, **kw) -> InstanceRecord:
    return InstanceRecord(moniker, kw.pop("instance_id", IID), kw.pop("url", "file:///p/x.cm"), **kw)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "state" / "manager.lmdb"


@pytest.fixture
def store(path):
    s = TopologyStore(path)
    yield s
    s.close()


def reopen(store: TopologyStore) -> TopologyStore:
    store.close()
    return TopologyStore(store.path)


def test_record_roundtrip():
    r = record("/a/c:x", incarnation=3, collection="c", dynamic=True,
               last_start={"reason": "cm start", "at": 1.0}, last_stop=STOP)
    assert InstanceRecord.from_bytes(r.moniker, r.to_bytes()) == r
    p = ProcessRecord(IID, "/a", 10, 10, 12345, "boot", 2.5)
    assert ProcessRecord.from_bytes(IID, p.to_bytes()) == p


def test_instances_survive_close_and_reopen(store):
    r = record("/app", last_start={"reason": "eager", "at": 2.0}, last_stop=STOP)
    store.put_instance(r)
    store = reopen(store)
    try:
        assert store.get_instance("/app") == r
        assert store.get_instance("/nope") is None
        assert store.all_instances() == [r]
    finally:
        store.close()


def test_processes_survive_reopen_and_delete(store):
    p = ProcessRecord(IID, "/app/server", 4242, 4242, 981234, "boot-1", 3.0)
    store.put_process(p)
    store = reopen(store)
    try:
        assert store.all_processes() == [p]
        assert store.get_process(IID) == p
        assert store.delete_process(IID) is True
        assert store.delete_process(IID) is False
        assert store.all_processes() == []
    finally:
        store.close()


def test_delete_subtree_spares_siblings_with_a_common_prefix(store):
    for m in ["/", "/app", "/app/a", "/app/c:x", "/app/c:x/y", "/app-2", "/app.b", "/apple"]:
        store.put_instance(record(m))
    assert store.delete_subtree("/app") == 4
    assert [r.moniker for r in store.all_instances()] == ["/", "/app-2", "/app.b", "/apple"]


def test_delete_instance_removes_only_that_record(store):
    store.put_instance(record("/a"))
    store.put_instance(record("/a/b"))
    assert store.delete_instance("/a") is True
    assert store.delete_instance("/a") is False
    assert [r.moniker for r in store.all_instances()] == ["/a/b"]


def test_delete_subtree_of_root_deletes_everything(store):
    for m in ["/", "/a", "/a/b"]:
        store.put_instance(record(m))
    assert store.delete_subtree("/") == 3
    assert store.all_instances() == []


def test_incarnation_is_never_reused(store):
    assert [store.next_incarnation("/core", "workers") for _ in range(3)] == [1, 2, 3]
    assert store.next_incarnation("/core", "other") == 1
    assert store.next_incarnation("/core/x", "workers") == 1
    store.put_instance(record("/core/workers:j", incarnation=3, collection="workers", dynamic=True))
    store.delete_subtree("/core")
    store = reopen(store)
    try:
        assert store.next_incarnation("/core", "workers") == 4
    finally:
        store.close()


def test_batch_commits_all_or_nothing(store):
    with store.batch() as b:
        b.put_instance(record("/a"))
        seq = b.append_event({"type": "created", "moniker": "/a"})
        n = b.next_incarnation("/", "c")
    assert (seq, n) == (1, 1)
    assert store.get_instance("/a") is not None
    with pytest.raises(RuntimeError):
        with store.batch() as b:
            b.put_instance(record("/b"))
            b.next_incarnation("/", "c")
            raise RuntimeError("abort")
    assert store.get_instance("/b") is None
    assert store.next_incarnation("/", "c") == 2


def test_events_keep_order_seq_and_survive_reopen(store):
    seqs = [store.append_event({"type": "started", "n": i}) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    store = reopen(store)
    try:
        assert [e["n"] for e in store.events()] == [0, 1, 2, 3, 4]
        assert [e["seq"] for e in store.events(since_seq=2, limit=2)] == [3, 4]
        assert store.events(since_seq=5) == []
        assert store.append_event({"type": "x"}) == 6
    finally:
        store.close()


def test_event_ring_trims_oldest_in_the_same_commit(path):
    store = TopologyStore(path, event_ring=10)
    try:
        for i in range(25):
            store.append_event({"n": i})
        events = store.events()
        assert [e["seq"] for e in events] == list(range(16, 26))
        assert store.statistics()["events"] == 10
        assert store.events(since_seq=0, limit=1)[0]["n"] == 15
    finally:
        store.close()


def _write_txns(store: TopologyStore) -> int:
    return store._env.info()["last_txnid"]


async def test_group_commits_share_transactions_and_are_durable_when_awaited(store):
    before = _write_txns(store)
    futures = []
    for i in range(50):
        b = store.new_batch()
        b.put_instance(record(f"/w{i:02d}"))
        b.append_event({"type": "created", "n": i})
        futures.append(store.commit(b))
    await asyncio.gather(*futures)
    assert _write_txns(store) - before < 10  # batches queued during a commit share the next
    assert len(store.all_instances()) == 50
    assert [e["n"] for e in store.events()] == list(range(50))
    store = reopen(store)
    try:
        assert len(store.all_instances()) == 50
    finally:
        store.close()


async def test_a_failing_batch_fails_alone(store):
    good, bad = store.new_batch(), store.new_batch()
    good.put_instance(record("/good"))
    bad.put_instance(record("/" + "x" * 600))  # longer than an LMDB key may be
    results = await asyncio.gather(store.commit(good), store.commit(bad), return_exceptions=True)
    assert not isinstance(results[0], Exception)
    assert isinstance(results[1], StorageError) and "write failed" in str(results[1])
    assert store.get_instance("/good") is not None


async def test_a_blocking_commit_takes_the_queued_batches_first(store):
    queued = store.new_batch()
    first = queued.append_event({"type": "a"})
    future = store.commit(queued)
    assert store.append_event({"type": "b"}) == first + 1
    assert [e["type"] for e in store.events()] == ["a", "b"]
    assert len(await future) == 2  # the event and its counter


async def test_close_commits_what_is_queued(path):
    store = TopologyStore(path)
    b = store.new_batch()
    b.put_instance(record("/late"))
    store.commit(b)
    store = reopen(store)
    try:
        assert store.get_instance("/late") is not None
    finally:
        store.close()


def test_opening_twice_in_one_process_is_a_storage_error(store):
    with pytest.raises(StorageError, match="already open"):
        TopologyStore(store.path)


def test_close_is_idempotent_and_allows_reopen(store):
    store.close()
    store.close()
    TopologyStore(store.path).close()


def test_unreadable_record_is_a_storage_error(store):
    with store._env.begin(write=True) as txn:
        txn.put(b"/bad", b"not json", db=store._instances)
    with pytest.raises(StorageError, match="unreadable"):
        store.all_instances()


def test_every_write_is_synced(store):
    # One fsync per commit (data pages); the meta page rides with the next (docs/design.md)
    flags = store._env.flags()
    assert flags["sync"] and not flags["metasync"] and not flags["writemap"]


class _CountingEnv:
    """The store's environment, counting the explicit syncs."""

    def __init__(self, env):
        self.env, self.syncs = env, 0

    def sync(self, force=False):
        self.syncs += 1
        return self.env.sync(force)

    def __getattr__(self, name):
        return getattr(self.env, name)


@pytest.mark.parametrize("write, synced", [
    (lambda b: b.put_tombstone("/a", IID), True),   # storage is deleted next: must survive the OS
    (lambda b: b.put_uid(IID, 61184), True),          # files will be owned by it
    (lambda b: b.put_snapshot(IID, b"{}"), True),     # the older snapshot's file goes next
    (lambda b: b.delete_snapshot(IID), True),         # the snapshot's file goes next
    (lambda b: b.put_instance(record("/a")), False),  # a create: lost at most on an OS crash
    (lambda b: b.append_event({"type": "x"}), False),
])
def test_intents_whose_effects_outlive_the_os_sync_the_meta_page(store, write, synced):
    env = store._env = _CountingEnv(store._env)
    try:
        with store.batch() as b:
            write(b)
        assert env.syncs == (1 if synced else 0)
    finally:
        store._env = env.env


def test_a_value_holding_two_json_arrays_is_unreadable(store):
    store.put_instance(record("/a"))
    with store._env.begin(write=True) as txn:
        txn.put(b"/b", b'[1,"x","u",0,"",false,null,null],[1,"y","u",0,"",false,null,null]',
                db=store._instances)
    with pytest.raises(StorageError, match="'/b' is unreadable"):
        store.all_instances()


def test_records_share_their_url_and_collection_strings(store):
    with store.batch() as b:
        for name in ("x", "y"):
            b.put_instance(record(f"/c:{name}", collection="c", dynamic=True))
    first, second = store.all_instances()
    assert first.url is second.url and first.collection is second.collection


def test_loading_100k_records(store, capsys):
    stop = dict(STOP)
    with store.batch() as b:
        for i in range(100_000):
            b.put_instance(InstanceRecord(f"/core/workers:job-{i:06d}", f"{i:064x}",
                                          "file:///pkgs/job.cm", i, "workers", True,
                                          {"reason": "cm start", "at": 1.0}, stop))
    start = time.perf_counter()
    records = store.all_instances()
    elapsed = time.perf_counter() - start
    assert len(records) == 100_000 and records[5].incarnation == 5
    with capsys.disabled():
        print(f"\n  all_instances(): 100,000 records in {elapsed * 1000:.0f} ms")


from hypothesis import given, settings, strategies as st  # noqa: E402

STEP = st.sampled_from(["a", "a-b", "a.b", "b", "c:a", "c:x", "ab"])
MONIKERS = st.lists(st.lists(STEP, min_size=0, max_size=3).map(lambda s: "/" + "/".join(s)), max_size=15)


@settings(max_examples=100, deadline=None)
@given(MONIKERS, MONIKERS)
def test_delete_subtree_matches_the_moniker_tree(tmp_path_factory, present, targets):
    with TopologyStore(tmp_path_factory.mktemp("s") / "manager.lmdb") as store:
        with store.batch() as b:
            for m in present:
                b.put_instance(record(m))
        target = (targets or ["/a"])[0]
        prefix = target.rstrip("/") + "/"
        expected = sorted(m for m in set(present) if m != target and not m.startswith(prefix))
        store.delete_subtree(target)
        assert [r.moniker for r in store.all_instances()] == expected


async def test_lazy_commits_ride_with_the_next_commit_in_order(store):
    txns = _write_txns(store)
    lazy = []
    for i in range(20):
        b = store.new_batch()
        b.append_event({"type": "lazy", "n": i})
        lazy.append(store.commit_lazily(b))
    assert _write_txns(store) == txns  # nothing written yet: no thread woken for them
    urgent = store.new_batch()
    urgent.append_event({"type": "urgent"})
    await store.commit(urgent)
    await asyncio.gather(*lazy)
    assert _write_txns(store) - txns <= 2
    assert [e["type"] for e in store.events()] == ["lazy"] * 20 + ["urgent"]


async def test_lazy_commits_are_made_within_a_bound_and_before_a_history_read(store):
    b = store.new_batch()
    b.append_event({"type": "alone"})
    await asyncio.wait_for(store.commit_lazily(b), 5)  # no other commit comes: the timer does it
    b = store.new_batch()
    b.append_event({"type": "read soon"})
    store.commit_lazily(b)
    assert [e["type"] for e in store.events()] == ["alone", "read soon"]


def test_a_process_record_keeps_what_adopting_needs_and_reads_older_records():
    run = {"token": "t", "grant_key": "ab", "serve_address": "unix:/s", "reason": "r", "config": {}, "cgroup": ""}
    record = ProcessRecord("id", "/a", 4242, 4242, 981, "boot", 1.5, run)
    assert ProcessRecord.from_bytes("id", record.to_bytes()) == record
    older = b'[1,"/a",4242,4242,981,"boot",1.5]'  # version 1: no run, so not adoptable
    assert ProcessRecord.from_bytes("id", older).run is None


def test_tombstones_are_committed_and_removed_with_the_records(store):
    with store.batch() as b:
        b.put_tombstone("/c:x", "id1")
    assert store.tombstones() == {"/c:x": "id1"}
    with store.batch() as b:
        b.delete_subtree("/c:x")
        b.delete_tombstone("/c:x")
    assert store.tombstones() == {}
