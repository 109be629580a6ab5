"""The model: the topology tree, its persistent records, and the requests that act on it.

The Model owns every Instance (indexed by moniker string), the manager's TopologyStore
(LMDB), the per-instance storage areas, the resolver and the event bus. Requests (start,
stop, destroy, create a child, open a capability) register actions on instances; only
actions change state.

Persistence: every instance has a record keyed by its moniker (instance id, url,
incarnation, collection, last start and stop). A record is written durably before the
request that made it returns, so a manager killed with -9 comes back with the same tree.
Records of concurrent requests share one group commit (``TopologyStore.commit``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from pathlib import Path

from ..actions import destroy as destroy_action
from ..actions import resolve as resolve_action
from ..actions import start as start_action
from ..actions import stop as stop_action
from ..actions.set import ActionSet, TaskOwner
from ..errors import (CollectionNotFound, InstanceAlreadyExists, InstanceNotFound,
                      InvalidRequest)
from ..moniker import ROOT, ChildName, Moniker, check_name, parse
from ..storage.areas import StorageAreas
from ..storage.topology import TopologyStore
from .events import EventBus
from .instance import Instance, new_instance_id
from .reasons import (START_REQUESTED, START_ROOT, START_SINGLE_RUN, Disposition,
                      StopReason, StopRecord)
from .resolver import Resolver, absolute_url
from .states import State
from . import persist
from .view import ModelView

log = logging.getLogger("component_manager.model")

__all__ = ["Model"]


class Model:
    def __init__(self, state_dir: Path, root_url: str, component_address: str = ""):
        self.state_dir = Path(state_dir)
        self.root_url = absolute_url(root_url)
        self.component_address = component_address
        self.run_dir = self.state_dir / "run"
        self.log_dir = self.state_dir / "logs"
        for folder in (self.run_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.store = TopologyStore(self.state_dir / "manager.lmdb")
        self.areas = StorageAreas(self.state_dir / "storage")
        self.resolver = Resolver()
        self.events = EventBus(self.store)
        self.owner = TaskOwner()
        ActionSet.owner = self.owner
        self.index: dict[str, Instance] = {}
        self.tokens: dict[str, tuple] = {}  # run token -> (instance, run), for ComponentRuntime
        self._creating: set[str] = set()  # monikers of dynamic children whose create commits
        self.framework_address = ""  # where routed control protocols are served (api/server.py)
        self.framework_key = b""  # grants for them are made with this key
        self.pre_start_hooks: list = []
        self.post_stop_hooks: list = []
        self.root: Instance | None = None
        self.view = ModelView(self)

    # ---- the tree ------------------------------------------------------------------------

    def boot(self) -> None:
        """Rebuild the tree from the root URL and the stored records; recover programs a dead
        manager left running; destroy transient children. Run once, before serving.

        The cyclic garbage collector is paused meanwhile: building 100,000 instances would
        otherwise run it over and over on a growing heap that holds no garbage (0.5 s)."""
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._boot()
        finally:
            if collecting:
                gc.enable()

    def _boot(self) -> None:
        records = persist.load_all(self.store)
        self.root = self._instantiate(ROOT, None, self.root_url, records.get("/"))
        self._resolve_quietly(self.root, records)
        # In the store's (moniker) order, a parent comes before its descendants: "/a" sorts
        # before "/a/..." as a prefix does. Monikers are the store's own, canonical texts.
        for moniker_text, record in records.items():
            if record.collection and moniker_text not in self.index:
                self._restore_dynamic(moniker_text, record, records)
        persist.recover_processes(self)

    def _restore_dynamic(self, moniker_text: str, record, records) -> None:
        parent_text, _, leaf_text = moniker_text.rpartition("/")
        parent = self.index.get(parent_text or "/")
        if parent is None:
            self._forget_subtree(parse(moniker_text), records)  # its parent is gone: so is it
            return
        moniker = Moniker((*parent.moniker, ChildName.parse(leaf_text)))
        if parent.decl is None:  # resolve each parent once, not once per child
            self._resolve_quietly(parent, records)
        coll = parent.decl.collection(record.collection) if parent.decl else None
        if coll is None:
            log.warning("%s: collection %r no longer declared; keeping record", moniker, record.collection)
            return
        if coll.durability != "persistent":
            self._forget_subtree(moniker, records)  # transient and single_run end with a manager
            return
        child = self._instantiate(moniker, parent, record.url, record, moniker_text)
        parent.children[leaf_text] = child

    def _forget_subtree(self, moniker: Moniker, records) -> None:
        """Destroy, at boot, an instance that is not restored: its storage and its records."""
        prefix = str(moniker) + "/"
        for text, record in records.items():
            if text == str(moniker) or text.startswith(prefix):
                self.areas.delete(record.instance_id)
        self.store.delete_subtree(str(moniker))

    def _instantiate(self, moniker: Moniker, parent, url: str, record=None, text: str = "") -> Instance:
        leaf = moniker.leaf
        collection = leaf.collection if leaf else None
        if record is None:
            inst = Instance(moniker, parent, url, new_instance_id(), 0, collection, text)
        else:
            inst = Instance(moniker, parent, url, record.instance_id, record.incarnation, collection, text)
            inst.last_start = record.last_start
            inst.last_stop = StopRecord.from_dict(record.last_stop)
        if record is None or record.url != url:  # new, or its manifest now names another URL
            persist.save(self.store, inst)
        self.index[inst.moniker_text] = inst
        return inst

    def _resolve_quietly(self, inst: Instance, records=None) -> None:
        """Resolve at boot; a broken manifest leaves the instance unresolved, not the manager down."""
        try:
            self.resolve(inst, records)
        except Exception as e:  # noqa: BLE001 - reported, and the manager keeps running
            log.warning("cannot resolve %s: %s", inst.moniker, e)
            return
        for child in list(inst.children.values()):
            if not child.is_dynamic:
                self._resolve_quietly(child, records)

    def resolve(self, inst: Instance, records=None) -> None:
        resolve_action.resolve(self, inst, records)

    def add_static_children(self, inst: Instance, records=None) -> None:
        """Called by resolve: make an Instance for each static child the manifest declares."""
        for child_decl in inst.decl.children:
            key = child_decl.name
            if key in inst.children:
                continue
            moniker = inst.moniker.child(child_decl.name)
            record = (records or {}).get(str(moniker)) or persist.load(self.store, str(moniker))
            url = absolute_url(child_decl.url, inst.url)
            inst.children[key] = self._instantiate(moniker, inst, url, record)

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

    async def remove(self, inst: Instance) -> None:
        """Forget a destroyed instance: its records go, and its ``destroyed`` event is stored,
        in one durable commit (its descendants are already gone)."""
        if inst.parent is not None:
            inst.parent.children.pop(str(inst.moniker.leaf), None)
        self.index.pop(inst.moniker_text, None)
        batch = self.store.new_batch()
        batch.delete_subtree(inst.moniker_text)
        event = self.events.stage(batch, "destroyed", inst)
        await self.store.commit(batch)
        self.events.deliver(event)

    # ---- requests ------------------------------------------------------------------------

    async def start(self, inst: Instance, reason: str = START_REQUESTED) -> bool:
        """Start ``inst`` (and what it needs); True if it was already running."""
        return await start_action.start(self, inst, reason)

    async def stop(self, inst: Instance, reason: StopReason = StopReason.REQUESTED):
        return await stop_action.stop(self, inst, reason)

    async def destroy(self, inst: Instance) -> None:
        if not inst.is_dynamic:
            what = "the root" if inst.parent is None else "a static child"
            raise InvalidRequest(str(inst.moniker), f"is {what}; only dynamic children can be destroyed")
        await destroy_action.destroy(self, inst)

    async def create_child(self, parent_moniker: str, collection: str, name: str, url: str,
                           start: bool = False) -> Instance:
        """Create a dynamic child ``parent/collection:name`` from ``url``; durable on return."""
        parent = self.find(parent_moniker)
        check_name(collection, "collection name")
        check_name(name, "child name")
        self.resolve(parent)
        if parent.state in (State.SHUTDOWN, State.DESTROYED):
            raise InvalidRequest(str(parent.moniker), f"is {parent.state.value}; it cannot have new children")
        coll = parent.decl.collection(collection)
        if coll is None:
            raise CollectionNotFound(str(parent.moniker), collection)
        moniker = parent.moniker.child(name, collection)
        text = str(moniker)
        if text in self.index or text in self._creating:
            raise InstanceAlreadyExists(text)
        full_url = absolute_url(url, parent.url)
        self.resolver.resolve(full_url)  # a bad URL fails here, before anything exists
        batch = self.store.new_batch()  # one durable commit: incarnation, record, event
        incarnation = batch.next_incarnation(parent.moniker_text, collection)
        child = Instance(moniker, parent, full_url, new_instance_id(), incarnation, collection, text)
        persist.save(batch, child)
        event = self.events.stage(batch, "created", child, detail=full_url)
        self._creating.add(text)  # taken while its commit is in flight
        try:
            await self.store.commit(batch)
        finally:
            self._creating.discard(text)
        self.index[text] = child
        parent.children[str(moniker.leaf)] = child
        self.events.deliver(event)
        if coll.durability == "single_run":
            await self.start(child, START_SINGLE_RUN)
        elif start:
            await self.start(child, START_REQUESTED)
        return child

    async def start_root(self) -> None:
        await self.start(self.root, START_ROOT)

    async def shutdown(self) -> None:
        """Stop everything in dependency order (reason system_shutdown), then close the store."""
        if self.root is not None:
            await stop_action.shutdown(self, self.root, StopReason.SYSTEM_SHUTDOWN)
        await self.owner.close()
        self.store.close()

    # ---- helpers for actions -------------------------------------------------------------

    def socket_path(self, inst: Instance) -> Path:
        # sun_path holds 108 bytes: keep it short, and unique per instance.
        return self.run_dir / f"{inst.instance_id[:16]}.sock"

    def log_path(self, inst: Instance) -> Path:
        return self.log_dir / f"{inst.instance_id}.log"

    async def record_stop(self, inst: Instance, record: StopRecord) -> None:
        """Record how the program ended, and that it no longer runs, in one durable commit."""
        batch, event = self._stop_batch(inst, record)
        await self.store.commit(batch)
        self.events.deliver(event)

    def record_stop_now(self, inst: Instance, record: StopRecord) -> None:
        """``record_stop`` for code outside the event loop (recovery at boot)."""
        batch, event = self._stop_batch(inst, record)
        self.store.commit_now(batch)
        self.events.deliver(event)

    def _stop_batch(self, inst: Instance, record: StopRecord):
        inst.last_stop = record
        batch = self.store.new_batch()
        persist.save(batch, inst)
        persist.forget_process(batch, inst)
        event = self.events.stage(batch, "stopped", inst, reason=record.reason,
                                  stop=record.to_dict(), detail=record.detail)
        return batch, event

    async def record_start(self, inst: Instance, reason: str, pid: int, identity=None,
                           started_at: float = 0.0) -> None:
        """Record the start (and, given ``identity``, the running process) in one commit."""
        batch = self._start_batch(inst, reason, pid, identity, started_at)
        event = self.events.stage(batch, "started", inst, reason=reason)
        await self.store.commit(batch)
        self.events.deliver(event)

    def store_start(self, inst: Instance, reason: str, pid: int, identity, started_at: float) -> asyncio.Future:
        """Commit the start's records (not its event) while the program gets ready: a start
        that waits for ``ready: serving`` then answers without a commit after it serves.
        The caller publishes ``started`` once it serves."""
        return self.store.commit(self._start_batch(inst, reason, pid, identity, started_at))

    def _start_batch(self, inst: Instance, reason: str, pid: int, identity, started_at: float):
        inst.last_start = {"reason": reason, "at": time.time(), "pid": pid}
        batch = self.store.new_batch()
        persist.save(batch, inst)
        if identity is not None:
            persist.save_process(batch, inst, identity, started_at)
        return batch

    def failed_start_record(self, status, run_time: float, detail: str) -> StopRecord:
        disposition = Disposition.KILLED if status and status.signal else Disposition.STOPPED
        return StopRecord(StopReason.START_FAILED.value, disposition.value,
                          status.exit_code if status else None, status.signal if status else None,
                          run_time, time.time(), detail)
