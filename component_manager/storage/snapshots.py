"""Storage snapshots: an instance's LMDB areas as one checked blob, and where the manager
keeps the last one of each instance.

Storage follows the instance: when it stops on one node, its areas are packed
(``pack_areas``, on that node); the manager keeps the blob (``SnapshotStore``); when it next
starts on another node, the areas are restored there (``unpack_areas``) before its program
runs. ``pack_areas`` and ``unpack_areas`` run on any node: this module imports only the
standard library and ``lmdb`` at its top, never the rest of the manager.

The blob::

    MAGIC (12 bytes) | header length (4 bytes, big-endian) | header (UTF-8 JSON)
    | the areas' compacted data.mdb, in header order | digest (32 bytes)

    header = {"version": 1, "areas": [{"name": "data", "size": 81920, "sha256": "9f…"}, …]}
    digest = sha256(MAGIC | header length | header)

The digest covers every byte: the header directly, each area through its sha256 in the
header; so a flipped bit anywhere is found, and the area bytes are hashed once (sha256 costs
1.7 ms/MB here, more than the compacted copy). It is the snapshot's identity:
``SnapshotInfo.sha256``.

Example::

    blob = pack_areas({"data": node1_area})                    # on node1, after the stop
    info = snapshots.put(iid, blob, node="node1")              # in the manager: durable
    info, blob = snapshots.get(iid)                            # checked
    unpack_areas(blob, {"data": node2_area})                   # on node2, before the start

Errors: ``SnapshotError`` (a ``ValueError``), with ``SnapshotCorrupt`` (a blob or a kept file
that fails a check) and ``SnapshotTooLarge`` (an area over the limit); ``str(e)`` is one line.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import lmdb

if TYPE_CHECKING:
    from .topology import TopologyStore

__all__ = [
    "FORMAT_VERSION",
    "MAX_AREA_BYTES",
    "SnapshotCorrupt",
    "SnapshotError",
    "SnapshotInfo",
    "SnapshotStore",
    "SnapshotTooLarge",
    "digest_of",
    "pack_areas",
    "read_header",
    "unpack_areas",
]

FORMAT_VERSION = 1
MAGIC = b"cm-snapshot\n"
# One area's compacted size at most: the blob lives in memory on both sides and, with Ray,
# in its object store (100 MB in the test cluster); 50 MB moves between nodes in 1-1.8 s.
MAX_AREA_BYTES = 256 << 20
_MAX_HEADER = 64 << 10
_DIGEST = 32
_NAME = re.compile(r"[-_a-zA-Z0-9][-_.a-zA-Z0-9]{0,99}")
_READ_MAP_SIZE = 1 << 30  # as the programs open their areas (storage/areas.py)


class SnapshotError(ValueError):
    """A snapshot cannot be made, read or restored; ``str(e)`` says what and where."""


class SnapshotCorrupt(SnapshotError):
    """A blob (or a kept snapshot file) is truncated, altered or of another format."""


class SnapshotTooLarge(SnapshotError):
    """An area is bigger than the limit a snapshot may carry."""


# ---- the blob --------------------------------------------------------------------------


def pack_areas(areas: Mapping[str, Path], *, max_area_bytes: int = MAX_AREA_BYTES) -> bytes:
    """A compacted copy of each named LMDB area, in one self-describing blob (see the module
    docstring). The areas are only read (a read transaction: a writer may go on meanwhile,
    and the copy is its last commit). Each copy is made in a scratch folder, then read.

    Raises SnapshotError for a bad name or an area without an LMDB environment,
    SnapshotTooLarge for an area whose compacted copy exceeds ``max_area_bytes``."""
    entries, payloads = [], []
    with tempfile.TemporaryDirectory(prefix="cm-snapshot-") as scratch:
        for name in sorted(areas):
            data = _compacted(_check_name(name), Path(areas[name]), Path(scratch) / name, max_area_bytes)
            entries.append({"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
            payloads.append(data)
    header = json.dumps({"version": FORMAT_VERSION, "areas": entries}, separators=(",", ":")).encode()
    head = MAGIC + len(header).to_bytes(4, "big") + header
    return b"".join([head, *payloads, hashlib.sha256(head).digest()])


def _compacted(name: str, path: Path, scratch: Path, limit: int) -> bytes:
    if not (path / "data.mdb").is_file():
        raise SnapshotError(f"storage area {name!r}: no LMDB environment at {path}")
    scratch.mkdir()
    try:
        env = lmdb.open(str(path), readonly=True, subdir=True, lock=True, map_size=_READ_MAP_SIZE)
    except lmdb.Error as e:
        raise SnapshotError(f"storage area {name!r}: cannot open {path}: {e}") from None
    try:
        env.copy(str(scratch), compact=True)
    except lmdb.Error as e:
        raise SnapshotError(f"storage area {name!r}: cannot copy {path}: {e}") from None
    finally:
        env.close()
    copy = scratch / "data.mdb"
    size = copy.stat().st_size
    if size > limit:
        raise SnapshotTooLarge(f"storage area {name!r} is {_mb(size)} compacted; "
                               f"a snapshot carries at most {_mb(limit)} an area")
    return copy.read_bytes()


def read_header(blob: bytes, *, max_area_bytes: int = MAX_AREA_BYTES) -> list[dict]:
    """Check ``blob`` whole (magic, version, the digest, lengths, each area's sha256) and
    return its areas: ``[{"name", "size", "sha256", "offset"}, ...]``.

    Raises SnapshotCorrupt naming the first problem found."""
    view = memoryview(blob)
    if len(view) < len(MAGIC) + 4 + _DIGEST or view[:len(MAGIC)] != MAGIC:
        raise SnapshotCorrupt(f"not a storage snapshot ({len(view)} bytes, no {MAGIC!r} at the start)")
    at = len(MAGIC) + 4
    length = int.from_bytes(view[len(MAGIC):at], "big")
    if length > _MAX_HEADER or at + length + _DIGEST > len(view):
        raise SnapshotCorrupt(f"snapshot truncated: a header of {length} bytes in a blob of {len(view)}")
    if hashlib.sha256(view[:at + length]).digest() != view[-_DIGEST:]:
        raise SnapshotCorrupt(f"snapshot checksum mismatch ({len(view)} bytes): truncated or altered")
    entries = _parse_header(bytes(view[at:at + length]), max_area_bytes)
    at += length
    for entry in entries:
        entry["offset"] = at
        at += entry["size"]
    if at != len(view) - _DIGEST:
        raise SnapshotCorrupt(f"snapshot areas add up to {at + _DIGEST} bytes, the blob has {len(view)}")
    for entry in entries:
        area = view[entry["offset"]:entry["offset"] + entry["size"]]
        if hashlib.sha256(area).hexdigest() != entry["sha256"]:
            raise SnapshotCorrupt(f"snapshot area {entry['name']!r}: checksum mismatch")
    return entries


def digest_of(blob: bytes) -> str:
    """The snapshot's identity (hex): its trailing digest. Read it after ``read_header``."""
    return bytes(blob[-_DIGEST:]).hex()


def _parse_header(raw: bytes, limit: int) -> list[dict]:
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise SnapshotCorrupt("snapshot header is not JSON") from None
    if type(header) is not dict or header.get("version") != FORMAT_VERSION:
        version = header.get("version") if type(header) is dict else None
        raise SnapshotCorrupt(f"snapshot format version {version!r}; this reads version {FORMAT_VERSION}")
    areas = header.get("areas")
    if type(areas) is not list or not all(_valid_entry(a) for a in areas):
        raise SnapshotCorrupt("snapshot header: malformed area list")
    if len({a["name"] for a in areas}) != len(areas):
        raise SnapshotCorrupt("snapshot header: an area is named twice")
    for a in areas:
        if a["size"] > limit:
            raise SnapshotTooLarge(f"snapshot area {a['name']!r} is {_mb(a['size'])}; at most {_mb(limit)} is restored")
    return [{"name": a["name"], "size": a["size"], "sha256": a["sha256"]} for a in areas]


def _valid_entry(a) -> bool:
    return (type(a) is dict and type(a.get("name")) is str and _NAME.fullmatch(a["name"]) is not None
            and type(a.get("size")) is int and a["size"] >= 0
            and type(a.get("sha256")) is str and re.fullmatch(r"[0-9a-f]{64}", a["sha256"]) is not None)


def unpack_areas(blob: bytes, dest: Mapping[str, Path], *, max_area_bytes: int = MAX_AREA_BYTES) -> list[str]:
    """Restore the areas of ``blob`` whose names ``dest`` maps to a folder; return their names.

    Everything is checked before anything is written (SnapshotCorrupt, nothing touched).
    Then every area is written into a new folder beside its target and fsynced, and only
    once all are staged, each is swapped with its target in one atomic rename
    (``renameat2(RENAME_EXCHANGE)``) and the old one removed. A crash leaves each area
    whole: the old one, or the new one; the blob can be restored again. Areas of ``dest``
    that the blob lacks are left as they are; areas of the blob that ``dest`` lacks are
    skipped. The area's program must not run meanwhile.

    Raises SnapshotCorrupt, SnapshotTooLarge, SnapshotError (a folder cannot be written)."""
    entries = read_header(blob, max_area_bytes=max_area_bytes)
    view = memoryview(blob)
    wanted = [(e, Path(dest[e["name"]])) for e in entries if e["name"] in dest]
    staged: list[tuple[Path, Path]] = []
    try:
        for entry, target in wanted:
            _clean_leftovers(target)
            staged.append((_stage(target, view[entry["offset"]:entry["offset"] + entry["size"]]), target))
        for folder, target in staged:
            _swap_in(folder, target)
    except OSError as e:
        raise SnapshotError(f"cannot restore storage area at {e.filename or '?'}: {e.strerror or e}") from None
    finally:
        for folder, _ in staged:
            _remove(folder)  # a folder swapped in is gone; the rest (an error) go here
    return [e["name"] for e, _ in wanted]


def _stage(target: Path, data: memoryview) -> Path:
    """A new folder beside ``target`` holding ``data`` as its data.mdb, durably."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.restore-", dir=target.parent))
    fd = os.open(folder / "data.mdb", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb", closefd=False) as out:
            out.write(data)
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(folder)
    return folder


def _swap_in(folder: Path, target: Path) -> None:
    """Put ``folder`` where ``target`` is, atomically; the old area ends up in ``folder``."""
    if not os.path.lexists(target):
        os.rename(folder, target)
    elif not _exchange(folder, target):
        # No RENAME_EXCHANGE on this filesystem: two renames; a crash between them leaves the
        # old area as .NAME.old-*, which the next restore (_clean_leftovers) puts back.
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rename(target, old / "area")
        os.rename(folder, target)
        os.rename(old / "area", folder)
        _remove(old)
    _fsync_dir(target.parent)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


@functools.cache
def _renameat2():
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except AttributeError:  # a libc without it (glibc before 2.28)
        return None


def _exchange(a: Path, b: Path) -> bool:
    """renameat2(a, b, RENAME_EXCHANGE); False where the kernel or filesystem lacks it."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _clean_leftovers(target: Path) -> None:
    """Remove what an interrupted restore of ``target`` left beside it; an old area moved
    aside by the two-rename fallback goes back if the new one never arrived."""
    parent = target.parent
    if not parent.is_dir():
        return
    for entry in parent.iterdir():
        if entry.name.startswith(f".{target.name}.old-") and (entry / "area").is_dir() and not os.path.lexists(target):
            os.rename(entry / "area", target)
        if entry.name.startswith((f".{target.name}.restore-", f".{target.name}.old-")):
            _remove(entry)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SnapshotError(f"invalid storage area name {name!r}")
    return name


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


# ---- the manager's store ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """The last snapshot of an instance: when it was taken (unix seconds), its size in
    bytes, its digest (hex: ``digest_of``, a sha256 that commits to every byte) and the node
    it came from."""

    taken_at: float
    size: int
    sha256: str
    node: str

    def to_bytes(self) -> bytes:
        return json.dumps([1, self.taken_at, self.size, self.sha256, self.node], separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> SnapshotInfo:
        """Raises SnapshotCorrupt if ``data`` is not a version-1 record."""
        try:
            version, taken_at, size, sha256, node = json.loads(data)
        except (ValueError, TypeError):
            raise SnapshotCorrupt("snapshot record unreadable") from None
        if version != 1:
            raise SnapshotCorrupt(f"snapshot record version {version!r}; this reads version 1")
        return cls(taken_at, size, sha256, node)


class SnapshotStore:
    """The last snapshot of each instance, kept by the manager: the blob in
    ``<root>/<instance id>.<sha256>.snap``, its ``SnapshotInfo`` in the topology store
    (sub-database ``snapshots``). The record is the commit point: the blob is made durable
    before the record names it, and an older blob is removed only after; a file no record
    names (a crash between the two) is removed when the store is opened. The last put wins.

    Methods block on disk (fsync, reading a blob): call them from a thread in async code.

    Example::

        store = SnapshotStore(state_dir / "snapshots", topology)
        store.put(iid, blob, node="node2")     # SnapshotInfo(taken_at=…, size=…, …)
        store.info(iid).node                   # "node2", without reading the blob
        store.get(iid)                         # (info, blob), checked; None if there is none
        store.delete(iid)                      # idempotent
    """

    def __init__(self, root: Path | str, topology: TopologyStore) -> None:
        self.root = Path(root)
        self._topology = topology
        self.recover()

    def put(self, instance_id: str, blob: bytes, node: str) -> SnapshotInfo:
        """Keep ``blob`` as the instance's snapshot, durably, replacing any older one.

        Raises SnapshotCorrupt if ``blob`` is not a whole snapshot (it is checked first)."""
        read_header(blob)
        info = SnapshotInfo(time.time(), len(blob), digest_of(blob), node)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self._path(instance_id, info.sha256)
        fd, tmp = tempfile.mkstemp(prefix=f".{instance_id}.", suffix=".tmp", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(blob)
                out.flush()
                os.fsync(out.fileno())
            os.rename(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.root)
        from ..faults import crash_point  # here: a node that only packs and unpacks never needs it

        crash_point("snapshot.written")
        batch = self._topology.new_batch()
        batch.put_snapshot(instance_id, info.to_bytes())
        self._topology.commit_now(batch)  # the commit point: from here on, this one is the snapshot
        self._remove_files(instance_id, keep=path.name)
        return info

    def get(self, instance_id: str) -> tuple[SnapshotInfo, bytes] | None:
        """The instance's snapshot and its blob, checked against its record; None if none.

        Raises SnapshotCorrupt if the file is missing, of another size or altered."""
        info = self.info(instance_id)
        if info is None:
            return None
        path = self._path(instance_id, info.sha256)
        try:
            with open(path, "rb") as f:
                blob = f.read(info.size + 1)
        except FileNotFoundError:
            raise SnapshotCorrupt(f"snapshot of {instance_id[:16]}: file {path.name} is missing") from None
        if len(blob) != info.size or digest_of(blob) != info.sha256 or not _whole(blob):
            raise SnapshotCorrupt(f"snapshot of {instance_id[:16]}: {path.name} does not match its checksum")
        return info, blob

    def info(self, instance_id: str) -> SnapshotInfo | None:
        """The instance's snapshot record, or None; reads no blob."""
        raw = self._topology.get_snapshot(instance_id)
        return None if raw is None else SnapshotInfo.from_bytes(raw)

    def delete(self, instance_id: str) -> None:
        """Forget the instance's snapshot: the record first, then the file. Idempotent."""
        if self.info(instance_id) is not None:
            batch = self._topology.new_batch()
            batch.delete_snapshot(instance_id)
            self._topology.commit_now(batch)
        self._remove_files(instance_id)

    def recover(self) -> None:
        """Remove what an interrupted put or delete left: temporary files, and blobs no
        record names."""
        if not self.root.is_dir():
            return
        named = {self._path(iid, SnapshotInfo.from_bytes(raw).sha256).name
                 for iid, raw in self._topology.all_snapshots().items()}
        for entry in self.root.iterdir():
            if entry.name not in named and entry.is_file():
                entry.unlink(missing_ok=True)

    def _path(self, instance_id: str, sha256: str) -> Path:
        return self.root / f"{_check_id(instance_id)}.{sha256[:32]}.snap"

    def _remove_files(self, instance_id: str, keep: str = "") -> None:
        if not self.root.is_dir():
            return
        for entry in self.root.glob(f"{_check_id(instance_id)}.*.snap"):
            if entry.name != keep:
                entry.unlink(missing_ok=True)


def _whole(blob: bytes) -> bool:
    try:
        read_header(blob)
    except SnapshotError:
        return False
    return True


def _check_id(instance_id: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{1,128}", instance_id):
        raise SnapshotError(f"invalid instance id {instance_id!r}")
    return instance_id
