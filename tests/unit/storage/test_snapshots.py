"""Storage snapshots on real LMDB areas and a real topology store: pack/unpack, the checks
that keep a bad blob from being written, a restore interrupted between areas, and the
manager's SnapshotStore with its recovery."""

import hashlib
import subprocess
import sys

import pytest

from component_manager.storage import snapshots as snap
from component_manager.storage.areas import StorageAreas, open_environment
from component_manager.storage.snapshots import (
    SnapshotCorrupt, SnapshotError, SnapshotStore, SnapshotTooLarge, pack_areas, read_header, unpack_areas)
from component_manager.storage.topology import TopologyStore

pytestmark = pytest.mark.timeout(60)

A = "a1" * 32
B = "b2" * 32


def fill(path, prefix, n, db=None):
    env = open_environment(path)
    try:
        sub = env.open_db(db) if db else None
        with env.begin(write=True, db=sub) as txn:
            for i in range(n):
                txn.put(f"{prefix}{i:06d}".encode(), f"{prefix}-value-{i}".encode() * 8)
    finally:
        env.close()


def contents(path, db=None):
    env = open_environment(path, readonly=True)
    try:
        sub = env.open_db(db, create=False) if db else None
        with env.begin(db=sub) as txn:  # (a named database's entry holds page numbers: skipped)
            return {k: v for k, v in txn.cursor() if k != b"side"}
    finally:
        env.close()


@pytest.fixture
def areas(tmp_path):
    return StorageAreas(tmp_path / "node1" / "storage")


@pytest.fixture
def source(areas):
    """Two areas of instance A: "data" (5000 keys and a named sub-database), "cache" (300)."""
    data, cache = areas.create(A, "data"), areas.create(A, "cache")
    fill(data, "k", 5000)
    fill(data, "s", 50, db=b"side")
    fill(cache, "c", 300)
    return {"data": data, "cache": cache}


def test_round_trip_moves_every_key_of_every_area(source, tmp_path):
    blob = pack_areas(source)
    other = StorageAreas(tmp_path / "node2" / "storage")
    dest = {"data": other.path_for(A, "data"), "cache": other.path_for(A, "cache")}
    assert unpack_areas(blob, dest) == ["cache", "data"]
    assert contents(dest["data"]) == contents(source["data"]) and len(contents(dest["data"])) == 5000
    assert contents(dest["data"], b"side") == contents(source["data"], b"side")
    assert contents(dest["cache"]) == contents(source["cache"])
    assert sorted(p.name for p in dest["data"].parent.iterdir()) == ["cache", "data"]  # nothing left beside


def test_restore_replaces_existing_areas_in_place(source, areas):
    blob = pack_areas(source)
    fill(source["data"], "later", 10)  # written after the snapshot: must go
    unpack_areas(blob, source)
    keys = contents(source["data"])
    assert len(keys) == 5000 and b"later000000" not in keys
    fill(source["data"], "again", 1)  # the restored area is a working environment
    assert b"again000000" in contents(source["data"])


def test_header_names_areas_sizes_and_checksums(source):
    blob = pack_areas(source)
    entries = read_header(blob)
    assert [e["name"] for e in entries] == ["cache", "data"]
    for e in entries:
        area = blob[e["offset"]:e["offset"] + e["size"]]
        assert hashlib.sha256(area).hexdigest() == e["sha256"]
    assert blob.startswith(snap.MAGIC)
    header_end = entries[0]["offset"]
    assert blob[-32:] == hashlib.sha256(blob[:header_end]).digest()  # commits to the area digests
    assert snap.digest_of(blob) == blob[-32:].hex()


def test_compacted_copy_is_smaller_than_a_churned_area(areas):
    path = areas.create(A, "data")
    fill(path, "k", 20000)
    env = open_environment(path)
    with env.begin(write=True) as txn:
        for i in range(19000):
            txn.delete(f"k{i:06d}".encode())
    env.close()
    blob = pack_areas({"data": path})
    assert len(blob) < (path / "data.mdb").stat().st_size / 2


@pytest.mark.parametrize("damage", ["truncated", "flipped", "first_area", "digest", "empty", "garbage", "header"])
def test_a_bad_blob_is_rejected_and_nothing_is_written(source, tmp_path, damage):
    blob = pack_areas(source)
    bad = {
        "truncated": blob[: len(blob) // 2],
        "flipped": blob[:-100] + bytes([blob[-100] ^ 1]) + blob[-99:],
        "first_area": blob[:1000] + bytes([blob[1000] ^ 1]) + blob[1001:],
        "digest": blob[:-1] + bytes([blob[-1] ^ 1]),
        "empty": b"",
        "garbage": b"x" * 5000,
        "header": blob[:20] + b"{" + blob[21:],
    }[damage]
    dest = {"data": tmp_path / "node2" / A / "data", "cache": source["cache"]}
    before = contents(source["cache"])
    with pytest.raises(SnapshotCorrupt) as caught:
        unpack_areas(bad, dest)
    assert "\n" not in str(caught.value) and str(caught.value)
    assert not (tmp_path / "node2").exists()
    assert contents(source["cache"]) == before
    assert sorted(p.name for p in source["cache"].parent.iterdir()) == ["cache", "data"]


def test_an_area_over_the_limit_is_refused_both_ways(source, tmp_path):
    with pytest.raises(SnapshotTooLarge, match="'data' is .* MB compacted; a snapshot carries at most"):
        pack_areas(source, max_area_bytes=64 << 10)
    blob = pack_areas(source)
    with pytest.raises(SnapshotTooLarge):
        unpack_areas(blob, {"data": tmp_path / "x" / "data"}, max_area_bytes=64 << 10)
    assert not (tmp_path / "x").exists()


def test_missing_area_and_bad_name_are_one_line_errors(tmp_path, source):
    with pytest.raises(SnapshotError, match="no LMDB environment"):
        pack_areas({"data": tmp_path / "nowhere"})
    with pytest.raises(SnapshotError, match="invalid storage area name"):
        pack_areas({"../x": source["data"]})


def test_only_the_areas_both_sides_name_are_restored(source, tmp_path):
    blob = pack_areas(source)
    fresh = tmp_path / "n2" / A
    assert unpack_areas(blob, {"data": fresh / "data", "new": fresh / "new"}) == ["data"]
    assert sorted(p.name for p in fresh.iterdir()) == ["data"]


def test_failure_while_staging_leaves_every_old_area(source, monkeypatch):
    """Staging (writing the new folders) fails at the second area: nothing is swapped."""
    blob = pack_areas(source)
    fill(source["data"], "later", 3)
    fill(source["cache"], "later", 3)
    old = {name: contents(path) for name, path in source.items()}
    real, calls = snap._stage, []

    def failing(target, data):
        calls.append(target.name)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", str(target))
        return real(target, data)

    monkeypatch.setattr(snap, "_stage", failing)
    with pytest.raises(SnapshotError, match="No space left on device"):
        unpack_areas(blob, source)
    assert {name: contents(path) for name, path in source.items()} == old
    assert sorted(p.name for p in source["data"].parent.iterdir()) == ["cache", "data"]


def test_crash_between_swaps_leaves_each_area_whole(source, monkeypatch):
    """Killed after the first area is swapped in: that one is new, the other old, both whole;
    restoring the blob again finishes the job."""
    blob = pack_areas(source)
    snapshot_state = {name: contents(path) for name, path in source.items()}
    fill(source["data"], "later", 3)
    fill(source["cache"], "later", 3)
    old_data = contents(source["data"])
    real, calls = snap._swap_in, []

    def crashing(folder, target):
        calls.append(target.name)
        if len(calls) == 2:
            raise KeyboardInterrupt  # stands for a kill: nothing after this runs
        real(folder, target)

    monkeypatch.setattr(snap, "_swap_in", crashing)
    with pytest.raises(KeyboardInterrupt):
        unpack_areas(blob, source)
    assert contents(source["cache"]) == snapshot_state["cache"]  # swapped in
    assert contents(source["data"]) == old_data  # untouched
    monkeypatch.setattr(snap, "_swap_in", real)
    unpack_areas(blob, source)
    assert {name: contents(path) for name, path in source.items()} == snapshot_state


def test_leftovers_of_a_killed_restore_are_cleaned_and_an_aside_area_comes_back(source):
    blob = pack_areas(source)
    parent = source["data"].parent
    (parent / ".data.restore-abc").mkdir()
    (parent / ".data.restore-abc" / "data.mdb").write_bytes(b"half")
    aside = parent / ".cache.old-xyz"
    aside.mkdir()
    source["cache"].rename(aside / "area")  # killed between the fallback's two renames
    unpack_areas(blob, {"data": source["data"]})
    assert sorted(p.name for p in parent.iterdir()) == [".cache.old-xyz", "data"]  # not its business
    unpack_areas(blob, {"cache": source["cache"]})
    assert sorted(p.name for p in parent.iterdir()) == ["cache", "data"]


def test_fallback_without_rename_exchange(source, monkeypatch):
    blob = pack_areas(source)
    expected = contents(source["data"])
    fill(source["data"], "later", 3)
    monkeypatch.setattr(snap, "_exchange", lambda a, b: False)
    unpack_areas(blob, source)
    assert contents(source["data"]) == expected
    assert sorted(p.name for p in source["data"].parent.iterdir()) == ["cache", "data"]


def test_the_module_needs_only_the_standard_library_and_lmdb(source, tmp_path):
    """What a Ray node runs: the module file alone, imported outside the package."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('snapshots', {str(snap.__file__)!r})\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['snapshots'] = m; spec.loader.exec_module(m)\n"
        f"blob = m.pack_areas({{'data': {str(source['data'])!r}}})\n"
        f"print(m.unpack_areas(blob, {{'data': {str(tmp_path / 'n2' / 'data')!r}}}))\n"
        "print(sorted(n for n in sys.modules if n.startswith(('component_manager', 'grpc', 'capnp'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.splitlines() == ["['data']", "[]"]


# ---- the store -------------------------------------------------------------------------


@pytest.fixture
def topology(tmp_path):
    store = TopologyStore(tmp_path / "state" / "manager.lmdb")
    yield store
    store.close()


@pytest.fixture
def store(tmp_path, topology):
    return SnapshotStore(tmp_path / "state" / "snapshots", topology)


def test_put_get_info_delete(store, source):
    assert store.info(A) is None and store.get(A) is None
    blob = pack_areas(source)
    info = store.put(A, blob, node="node2")
    assert (info.size, info.sha256, info.node) == (len(blob), snap.digest_of(blob), "node2")
    assert store.info(A) == info
    assert store.get(A) == (info, blob)
    assert store.info(B) is None
    store.delete(A)
    store.delete(A)  # idempotent
    assert store.info(A) is None and store.get(A) is None
    assert list(store.root.iterdir()) == []


def test_the_last_put_wins_and_old_files_go(store, source):
    first = store.put(A, pack_areas(source), node="node1")
    fill(source["data"], "more", 100)
    blob = pack_areas(source)
    second = store.put(A, blob, node="node2")
    assert second.sha256 != first.sha256 and second.taken_at >= first.taken_at
    assert store.get(A) == (second, blob)
    assert len(list(store.root.iterdir())) == 1


def test_survives_a_reopen(tmp_path, source):
    blob = pack_areas(source)
    with TopologyStore(tmp_path / "m.lmdb") as topology:
        info = SnapshotStore(tmp_path / "snaps", topology).put(A, blob, "node1")
    with TopologyStore(tmp_path / "m.lmdb") as topology:
        assert SnapshotStore(tmp_path / "snaps", topology).get(A) == (info, blob)


def test_put_refuses_a_bad_blob(store, source):
    blob = pack_areas(source)
    with pytest.raises(SnapshotCorrupt):
        store.put(A, blob[:-1], "node1")
    assert store.info(A) is None


def test_an_altered_or_missing_file_is_reported_on_get(store, source):
    info = store.put(A, pack_areas(source), "node1")
    (path,) = store.root.iterdir()
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotCorrupt, match="does not match its checksum"):
        store.get(A)
    path.unlink()
    with pytest.raises(SnapshotCorrupt, match="is missing"):
        store.get(A)
    assert store.info(A) == info


def test_recovery_after_a_crash_mid_put_keeps_the_old_snapshot(tmp_path, topology, source, monkeypatch):
    """Killed after the new blob is durable but before its record: the old snapshot stands,
    and the orphan file (and a temporary one) go when the store is opened again."""
    store = SnapshotStore(tmp_path / "snaps", topology)
    old_blob = pack_areas(source)
    old = store.put(A, old_blob, "node1")
    fill(source["data"], "more", 10)
    monkeypatch.setattr(topology, "commit_now", lambda batch: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        store.put(A, pack_areas(source), "node2")
    monkeypatch.undo()
    assert len(list(store.root.iterdir())) == 2
    (store.root / f".{A}.x.tmp").write_bytes(b"half")
    reopened = SnapshotStore(tmp_path / "snaps", topology)
    assert reopened.get(A) == (old, old_blob)
    assert len(list(store.root.iterdir())) == 1


def test_recovery_after_a_crash_mid_delete(tmp_path, topology, source):
    store = SnapshotStore(tmp_path / "snaps", topology)
    store.put(A, pack_areas(source), "node1")
    batch = topology.new_batch()
    batch.delete_snapshot(A)  # the record went; killed before the file did
    topology.commit_now(batch)
    SnapshotStore(tmp_path / "snaps", topology)
    assert list(store.root.iterdir()) == []


def test_invalid_instance_id(store, source):
    with pytest.raises(SnapshotError, match="invalid instance id"):
        store.put("../etc", pack_areas(source), "node1")
