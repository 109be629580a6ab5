"""A component instance: one node of the topology tree, and the run of its program.

An Instance holds what the manager knows of a node: its stable identity (moniker,
instance id, incarnation), its resolved manifest, its state, its children, and, while its
program runs, a Run. Callers never set ``state`` themselves: actions do, through
``states.transition``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from ..manifest.decl import ComponentDecl
from ..moniker import ChildName, Moniker
from ..runners.base import Program
from .action_set import ActionSet, TaskOwner
from .backoff import RestartState
from .reasons import Status, StopRecord, status_of
from .states import ExecutionState, State

__all__ = ["Instance", "Run", "new_instance_id"]


def new_instance_id() -> str:
    """64 lowercase hex characters, random: never reused."""
    return secrets.token_hex(32)


@dataclass(eq=False)
class Run:
    """One run of an instance's program, from launch to exit."""

    token: str
    grant_key: bytes
    serve_address: str
    start_reason: str
    started_at: float = field(default_factory=time.time)
    started_monotonic: float = field(default_factory=time.monotonic)
    program: Program | None = None
    serving: asyncio.Future | None = None
    config: dict = field(default_factory=dict)
    last_connect: float = 0.0  # monotonic time of the last Connect answered to this provider
    stopping: bool = False
    paused: bool = False  # set only by states.set_execution
    frozen_by: str = ""  # how a pause froze it: "cgroup" (the freezer) or "signal" (SIGSTOP)
    resumed: asyncio.Event | None = None  # set when a pause ends; connects wait on it, in order
    files_stamp: tuple = ()  # its program files as launched (runners/files.py), for reload
    node: str = ""  # the Ray node it runs on (ray runner); "" on the manager's host

    @property
    def pid(self) -> int:
        return self.program.pid if self.program else 0


_NO_CHILDREN: Mapping = MappingProxyType({})  # every leaf's ``children`` until it has one


class Instance:
    """Memory matters here (a realm may hold 100,000 instances, most of them idle leaves):
    what most instances never need is made on first use. ``moniker`` is built from the
    parent's and the canonical ``moniker_text`` when first asked for; ``children`` is a
    shared empty mapping until the first child is added (``add_child``)."""

    __slots__ = (
        "_moniker", "moniker_text", "parent", "url", "instance_id", "incarnation", "collection", "state",
        "decl", "package_dir", "_children", "run", "last_start", "last_stop", "actions",
        "restart", "__weakref__",
    )

    def __init__(self, moniker: Moniker | None, parent: Instance | None, url: str, instance_id: str,
                 owner: TaskOwner, incarnation: int = 0, collection: str | None = None,
                 moniker_text: str = ""):
        """``moniker`` may be None when ``moniker_text`` is given (and ``parent``, unless it
        is the root): it is then built on first use."""
        self._moniker = moniker
        self.moniker_text = moniker_text or str(moniker)  # formatted once: lists, events, keys
        self.parent = parent
        self.url = url
        self.instance_id = instance_id
        self.incarnation = incarnation
        self.collection = collection
        self.state = State.UNRESOLVED
        self.decl: ComponentDecl | None = None
        self.package_dir: Path | None = None
        self._children: dict[str, Instance] | None = None
        self.run: Run | None = None
        self.last_start: dict | None = None
        self.last_stop: StopRecord | None = None
        self.actions = ActionSet(self, owner)
        self.restart: RestartState | None = None  # the restart policy's state (policy/restart.py)

    @property
    def moniker(self) -> Moniker:
        moniker = self._moniker
        if moniker is None:  # the text is canonical (made by Moniker or read from the store)
            collection, _, name = self.leaf_text.rpartition(":")
            moniker = self._moniker = Moniker((*self.parent.moniker, ChildName(name, collection or None)))
        return moniker

    @property
    def leaf_text(self) -> str:
        """The last step of the moniker, as the parent's ``children`` key it: ``workers:job-7``."""
        return self.moniker_text.rpartition("/")[2]

    @property
    def children(self) -> Mapping[str, Instance]:
        """Its children by leaf text (read only: ``add_child`` and ``remove_child`` change it)."""
        children = self._children
        return _NO_CHILDREN if children is None else children

    def add_child(self, key: str, child: Instance) -> None:
        if self._children is None:
            self._children = {}
        self._children[key] = child

    def remove_child(self, key: str) -> Instance | None:
        return self._children.pop(key, None) if self._children else None

    def __repr__(self) -> str:
        return f"<Instance {self.moniker} {self.state.value}>"

    @property
    def is_dynamic(self) -> bool:
        return self.collection is not None

    @property
    def execution_state(self) -> ExecutionState:
        if self.run is None:
            return ExecutionState.STOPPED
        return ExecutionState.PAUSED if self.run.paused else ExecutionState.RUNNING

    @property
    def status(self) -> Status:
        return status_of(self.state, self.execution_state, self.last_stop, self.restart)

    @property
    def status_detail(self) -> str:
        """The status with its why, for a person: ``backing off (attempt 3, next in 1.6s,
        last: crashed SIGSEGV)``, ``failed (gave up after 5 restarts)``; else the status."""
        status = self.status
        if self.restart is not None and status in (Status.BACKING_OFF, Status.FAILED):
            return self.restart.describe() or status.value
        return status.value

    @property
    def durability(self) -> str:
        if self.collection is None or self.parent is None or self.parent.decl is None:
            return ""
        coll = self.parent.decl.collection(self.collection)
        return coll.durability if coll else ""

    def transient_children(self) -> list[Instance]:
        """Its children in transient collections: they end with it (a stop destroys them)."""
        return [c for c in list(self.children.values()) if c.durability == "transient"]

    def walk(self):
        """This instance and every descendant, parents first (depth first, in child order).
        A stack, not nested generators: a realm of 100,000 would make 100,000 of them."""
        stack = [self]
        while stack:
            inst = stack.pop()
            yield inst
            if inst._children:
                stack.extend(reversed(inst._children.values()))
