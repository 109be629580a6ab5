"""What actions need of the model, as a typed Protocol: the one surface through which they
read and change the tree. ``model.Model`` provides it; a test may give any object that does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from ..model.action_set import TaskOwner
from ..model.events import EventBus
from ..model.instance import Instance
from ..model.reasons import StopRecord
from ..model.resolver import ResolvedComponent
from ..moniker import Moniker
from ..storage.areas import StorageAreas
from ..storage.snapshots import SnapshotStore
from ..storage.topology import TopologyStore

__all__ = ["ActionContext", "ResolverLike"]


class ResolverLike(Protocol):
    def resolve(self, url: str, fresh: bool = False) -> ResolvedComponent: ...

    def cached(self, url: str) -> ResolvedComponent | None: ...


class ActionContext(Protocol):
    root: Instance | None
    root_url: str
    index: dict[str, Instance]
    creating: set[str]  # dynamic children whose create is committing
    tokens: dict[str, tuple]  # run token -> (instance, run)
    store: TopologyStore
    areas: StorageAreas
    snapshots: SnapshotStore  # the last storage snapshot of each instance that has one
    resolver: ResolverLike
    events: EventBus
    owner: TaskOwner
    component_address: str  # where programs reach ComponentRuntime
    framework_address: str  # where routed framework protocols are served
    framework_key: bytes
    mark: str  # this manager's mark (its programs' environment carries it)
    cgroups: object | None  # runners.cgroups' Hierarchy, where the host allows cgroups
    cgroup_tag: str  # this manager's folder of cgroups in it
    placements: dict[str, str]  # moniker -> Ray node: run its python program there (--ray-place)
    pre_start_hooks: list  # async hook(inst, storage paths, config); StartError fails the start
    post_stop_hooks: list  # async hook(inst, stop record or None); failures are logged

    def find(self, moniker) -> Instance: ...

    def instantiate(self, moniker: Moniker, parent: Instance | None, url: str, record=None,
                    text: str = "") -> Instance: ...

    def adopt(self, child: Instance) -> None: ...

    def forget_subtree(self, moniker_text: str, records: dict) -> None: ...

    async def remove(self, inst: Instance) -> None: ...

    def socket_path(self, inst: Instance) -> Path: ...

    def log_path(self, inst: Instance) -> Path: ...

    async def record_start(self, inst: Instance, reason: str, pid: int, identity=None,
                           started_at: float = 0.0) -> None: ...

    def store_start(self, inst: Instance, reason: str, pid: int, identity,
                    started_at: float, run_info: dict | None = None, commit=None) -> asyncio.Future: ...

    async def bury(self, inst: Instance) -> None: ...

    def note_released(self, inst: Instance, identity, started_at: float, run_info: dict) -> None: ...

    async def record_stop(self, inst: Instance, record: StopRecord, commit=None) -> None: ...

    def record_stop_now(self, inst: Instance, record: StopRecord) -> None: ...
