"""Per-instance storage areas: one directory per (instance id, storage name), holding an
LMDB environment that the instance's program opens.

Layout: ``<state_dir>/storage/<instance_id>/<storage_name>/{data.mdb,lock.mdb}``. The area
is keyed by the instance id, not the moniker, so it survives stops and manager restarts and
goes away only when the instance is destroyed. Programs open it with ``open_environment``
(through the SDK), so every LMDB setting lives here.

Example::

    areas = StorageAreas(state_dir / "storage")
    path = areas.create(iid, "data")        # .../storage/<iid>/data, an empty environment
    env = open_environment(path)            # what the program does
    areas.size(iid)                         # bytes on disk
    areas.delete(iid)                       # on destroy; idempotent
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import lmdb

from ..errors import StorageError

__all__ = ["AREA_MAP_SIZE", "AREA_MAX_DBS", "StorageAreas", "open_environment"]

AREA_MAP_SIZE = 1 << 30  # 1 GiB of address space per area (not disk)
AREA_MAX_DBS = 16
_ID = re.compile(r"[0-9a-f]{1,128}")
_NAME = re.compile(r"[-_.a-zA-Z0-9]{1,100}")


def open_environment(path: Path | str, readonly: bool = False, map_size: int = AREA_MAP_SIZE) -> lmdb.Environment:
    """Open the LMDB environment of a storage area with the settings every program uses.

    Example: ``env = open_environment(os.environ[...])``; ``with env.begin(write=True) as t:
    t.put(b"k", b"v")``. Raises StorageError if it cannot be opened (missing when readonly,
    permissions, already open in this process).
    """
    path = Path(path)
    try:
        return lmdb.open(str(path), map_size=map_size, subdir=True, max_dbs=AREA_MAX_DBS,
                         readonly=readonly, create=not readonly, lock=True, mode=0o600)
    except lmdb.Error as e:
        raise StorageError("", path.name, f"cannot open {path}: {e}") from None


class StorageAreas:
    """The storage areas under ``root``; see the module docstring."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path_for(self, instance_id: str, storage_name: str) -> Path:
        """``<root>/<instance_id>/<storage_name>``; raises StorageError for a name that could
        escape the root (``..``, ``/``)."""
        return self._dir(instance_id) / _check(_NAME, storage_name, instance_id, storage_name)

    def create(self, instance_id: str, storage_name: str) -> Path:
        """Make the area (mode 0700) with an empty LMDB environment in it, if it does not
        exist yet; return its path. Idempotent: an existing area is left untouched, never
        opened here again (it is its program's: the manager, maybe root, must not follow a
        link the program left in it; the SDK creates a missing environment itself)."""
        path = self.path_for(instance_id, storage_name)
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.parent.mkdir(mode=0o700, exist_ok=True)
            path.mkdir(mode=0o700)
        except FileExistsError:
            return path
        except OSError as e:
            raise StorageError(instance_id, storage_name, f"cannot create {path}: {e.strerror or e}") from None
        open_environment(path).close()
        return path

    def size(self, instance_id: str) -> int:
        """Bytes on disk (allocated blocks) of every file in the instance's areas; 0 if none."""
        base = self._dir(instance_id)
        if not base.is_dir():
            return 0
        return sum(p.lstat().st_blocks * 512 for p in base.rglob("*") if p.is_file())

    def delete(self, instance_id: str) -> None:
        """Remove every area of the instance. Idempotent."""
        shutil.rmtree(self._dir(instance_id), ignore_errors=False, onerror=_ignore_missing)

    def list(self) -> list[str]:
        """Instance ids that have at least one area directory, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _ID.fullmatch(p.name))

    def _dir(self, instance_id: str) -> Path:
        return self.root / _check(_ID, instance_id, instance_id, "")


def _check(pattern: re.Pattern, text: str, instance_id: str, storage_name: str) -> str:
    if not pattern.fullmatch(text) or text in (".", ".."):
        raise StorageError(instance_id, storage_name, f"invalid storage path component {text!r}")
    return text


def _ignore_missing(func, path, exc_info) -> None:
    if not issubclass(exc_info[0], FileNotFoundError):
        raise exc_info[1]
