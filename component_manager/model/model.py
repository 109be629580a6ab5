"""The model: the topology tree and everything it keeps. Data only: it changes nothing by
itself; actions (``component_manager.actions``) do, through the methods below.

The Model owns every Instance (indexed by moniker text), the manager's TopologyStore
(LMDB), the per-instance storage areas, the resolver, the event bus and the owner of every
background task. Its methods are the tree's bookkeeping (make, find and forget instances)
and its records (write durably that an instance started or stopped).

Persistence: every instance has a record keyed by its moniker (instance id, url,
incarnation, collection, last start and stop). A record is written durably before the
request that made it returns, so a manager killed with -9 comes back with the same tree.
Records of concurrent requests share one group commit (``TopologyStore.commit``).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

from ..errors import InstanceNotFound
from ..moniker import Moniker, parse
from ..runners.limits import tag_of
from ..runners.isolation import own_folder
from ..storage.areas import StorageAreas
from ..storage.snapshots import SnapshotStore
from ..storage.topology import TopologyStore
from . import persist
from .action_set import TaskOwner
from .events import EventBus
from .instance import Instance, new_instance_id
from .reasons import StopRecord
from .resolver import Resolver, absolute_url, url_path

__all__ = ["Model"]


class Model:
    def __init__(self, state_dir: Path, root_url: str, component_address: str = "",
                 package_roots=None):
        """``package_roots``: folders URLs may resolve under, besides the root manifest's
        folder (and so everything below them)."""
        self.state_dir = Path(state_dir)
        self.root_url = absolute_url(root_url)
        self.component_address = component_address
        self.run_dir = self.state_dir / "run"
        self.log_dir = self.state_dir / "logs"
        for folder in (self.run_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.store = TopologyStore(self.state_dir / "manager.lmdb")
        self.areas = StorageAreas(self.state_dir / "storage")
        self.snapshots = SnapshotStore(self.state_dir / "snapshots", self.store)
        self.resolver = Resolver([Path(url_path(self.root_url)).parent, *(package_roots or ())],
                                 excluded=[self.state_dir])  # programs write there
        self.events = EventBus(self.store)
        self.owner = TaskOwner()
        self.index: dict[str, Instance] = {}
        self.tokens: dict[str, tuple] = {}  # run token -> (instance, run), for ComponentRuntime
        self.creating: set[str] = set()  # monikers of dynamic children whose create commits
        self.framework_address = ""  # where routed control protocols are served (api/server.py)
        self.framework_key = b""  # grants for them are made with this key
        self.mark = tag_of(self.log_dir)  # in its programs' environment: CM_INSTANCE_MARK
        self.cgroups = None  # runners.cgroups' Hierarchy when the manager has one (set by it)
        self.cgroup_tag = tag_of(self.log_dir)  # names this manager's folder of cgroups
        self.placements: dict[str, str] = {}  # moniker -> Ray node (cm manager run --ray-place)
        self.pre_start_hooks: list = []  # filled by policy.Policies (hooks.py)
        self.post_stop_hooks: list = []
        self.root: Instance | None = None

    # ---- the tree ------------------------------------------------------------------------

    def find(self, moniker) -> Instance:
        """The instance at ``moniker`` (text or Moniker). Raises MonikerError, InstanceNotFound."""
        text = moniker if isinstance(moniker, str) else str(moniker)
        inst = self.index.get(text)
        if inst is None:
            text = str(parse(text))  # raises MonikerError for bad syntax
            inst = self.index.get(text)
            if inst is None:
                raise InstanceNotFound(text)
        return inst

    def instantiate(self, moniker: Moniker | None, parent: Instance | None, url: str, record=None,
                    text: str = "") -> Instance:
        """An Instance for ``moniker`` (or its canonical ``text``), from its stored ``record``
        if it has one, indexed; its record is written (not yet committed) when it is new or
        names another URL. Only a stored instance can be dynamic (created ones are made by
        ``actions.create``)."""
        if record is None:
            inst = Instance(moniker, parent, url, new_instance_id(), self.owner, 0, None, text)
        else:
            inst = Instance(moniker, parent, url, record.instance_id, self.owner, record.incarnation,
                            record.collection or None, text)
            inst.last_start = record.last_start
            if record.last_stop is not None:
                inst.last_stop = StopRecord.from_dict(record.last_stop)
        if record is None or record.url != url:  # new, or its manifest now names another URL
            persist.save(self.store, inst)
        self.index[inst.moniker_text] = inst
        return inst

    def adopt(self, child: Instance) -> None:
        """Put a child whose records are durable into the tree."""
        self.index[child.moniker_text] = child
        child.parent.add_child(child.leaf_text, child)

    def forget_subtree(self, moniker_text: str, records: dict) -> None:
        """Delete, at boot, the storage, logs and records of an instance that is not
        restored (and its tombstone, if a destroy of it was interrupted)."""
        prefix = moniker_text + "/"
        for text, record in records.items():
            if text == moniker_text or text.startswith(prefix):
                self.areas.delete(record.instance_id)
                self.snapshots.delete(record.instance_id)
                (self.log_dir / f"{record.instance_id}.log").unlink(missing_ok=True)
                shutil.rmtree(own_folder(self.run_dir, record.instance_id), ignore_errors=True)
        batch = self.store.new_batch()
        batch.delete_subtree(moniker_text)
        batch.delete_tombstone(moniker_text)
        self.store.commit_now(batch)

    async def bury(self, inst: Instance) -> None:
        """Commit that ``inst`` is being destroyed, before its storage goes: a manager killed
        in between finishes the destroy when it boots (never an instance without storage)."""
        batch = self.store.new_batch()
        batch.put_tombstone(inst.moniker_text, inst.instance_id)
        await self.store.commit(batch)

    async def remove(self, inst: Instance) -> None:
        """Forget a destroyed instance: its records and tombstone go, and its ``destroyed``
        event is stored, in one durable commit (its descendants are already gone)."""
        if inst.parent is not None:
            inst.parent.remove_child(inst.leaf_text)
        self.index.pop(inst.moniker_text, None)
        batch = self.store.new_batch()
        batch.delete_subtree(inst.moniker_text)
        batch.delete_tombstone(inst.moniker_text)
        event = self.events.stage(batch, "destroyed", inst)
        await self.store.commit(batch)
        self.events.deliver(event)

    def socket_path(self, inst: Instance) -> Path:
        # In the instance's own folder, the one place its program may write besides its
        # storage (runners/isolation.py); sun_path holds 108 bytes: keep it short.
        return own_folder(self.run_dir, inst.instance_id) / "s.sock"

    def log_path(self, inst: Instance) -> Path:
        return self.log_dir / f"{inst.instance_id}.log"

    async def close(self) -> None:
        """Cancel what is still running in the background, then close the store."""
        await self.owner.close()
        self.store.close()

    # ---- records -------------------------------------------------------------------------

    async def record_stop(self, inst: Instance, record: StopRecord, commit=None) -> None:
        """Record how the program ended, and that it no longer runs, in one durable commit:
        the store's group commit, or ``commit(fill)`` (a batch's, ``actions/batch.py``),
        which fills a batch with ``fill(batch)`` when it commits it."""
        inst.last_stop = record
        events: list = []
        await self._commit(lambda batch: events.append(self._fill_stop(batch, inst, record)), commit)
        self.events.deliver(events[0])

    def record_stop_now(self, inst: Instance, record: StopRecord) -> None:
        """``record_stop`` for code outside the event loop (recovery at boot)."""
        inst.last_stop = record
        batch = self.store.new_batch()
        event = self._fill_stop(batch, inst, record)
        self.store.commit_now(batch)
        self.events.deliver(event)

    def _fill_stop(self, batch, inst: Instance, record: StopRecord) -> dict:
        persist.save(batch, inst)
        persist.forget_process(batch, inst)
        return self.events.stage(batch, "stopped", inst, reason=record.reason.value,
                                 stop=record.to_dict(), detail=record.detail)

    def _commit(self, fill, commit=None) -> asyncio.Future:
        """Commit what ``fill(batch)`` writes, by ``commit(fill)`` if given. A batch is filled
        just before it is queued: its counters (event numbers) are taken in commit order."""
        if commit is not None:
            return commit(fill)
        batch = self.store.new_batch()
        fill(batch)
        return self.store.commit(batch)

    async def record_start(self, inst: Instance, reason: str, pid: int, identity=None,
                           started_at: float = 0.0) -> None:
        """Record the start (and, given ``identity``, the running process) in one commit."""
        self._note_start(inst, reason, pid)
        batch = self.store.new_batch()
        self._fill_start(batch, inst, identity, started_at)
        event = self.events.stage(batch, "started", inst, reason=reason)
        await self.store.commit(batch)
        self.events.deliver(event)

    def store_start(self, inst: Instance, reason: str, pid: int, identity, started_at: float,
                    run_info: dict | None = None, commit=None) -> asyncio.Future:
        """Commit the start's records (not its event) before the program may run: the
        process record (with ``run_info``, what adopting it after a restart needs) lets a
        later manager find it. The caller publishes ``started`` once it is ready.
        ``commit(fill)``: as for ``record_stop``."""
        self._note_start(inst, reason, pid)
        return self._commit(lambda batch: self._fill_start(batch, inst, identity, started_at, run_info), commit)

    def note_released(self, inst: Instance, identity, started_at: float, run_info: dict) -> None:
        """Note, lazily, that the program was released (``run_info["released"]``): only a
        released program is adopted after a restart. Lost in a crash, it costs an adoption
        (the program is stopped instead), never a second copy."""
        batch = self.store.new_batch()
        persist.save_process(batch, inst, identity, started_at, {**run_info, "released": True})
        self.store.commit_lazily(batch).add_done_callback(_ignore_outcome)

    @staticmethod
    def _note_start(inst: Instance, reason: str, pid: int) -> None:
        inst.last_start = {"reason": reason, "at": time.time(), "pid": pid}

    @staticmethod
    def _fill_start(batch, inst: Instance, identity, started_at: float, run_info: dict | None = None) -> None:
        persist.save(batch, inst)
        if identity is not None:
            persist.save_process(batch, inst, identity, started_at, run_info)


def _ignore_outcome(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()  # a failed lazy note only costs an adoption after a crash
