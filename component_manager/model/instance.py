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
from dataclasses import dataclass, field
from pathlib import Path

from ..manifest.decl import ComponentDecl
from ..moniker import Moniker
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


class Instance:
    __slots__ = (
        "moniker", "moniker_text", "parent", "url", "instance_id", "incarnation", "collection", "state",
        "decl", "package_dir", "children", "run", "last_start", "last_stop", "actions",
        "restart", "__weakref__",
    )

    def __init__(self, moniker: Moniker, parent: Instance | None, url: str, instance_id: str,
                 owner: TaskOwner, incarnation: int = 0, collection: str | None = None,
                 moniker_text: str = ""):
        self.moniker = moniker
        self.moniker_text = moniker_text or str(moniker)  # formatted once: lists, events, keys
        self.parent = parent
        self.url = url
        self.instance_id = instance_id
        self.incarnation = incarnation
        self.collection = collection
        self.state = State.UNRESOLVED
        self.decl: ComponentDecl | None = None
        self.package_dir: Path | None = None
        self.children: dict[str, Instance] = {}
        self.run: Run | None = None
        self.last_start: dict | None = None
        self.last_stop: StopRecord | None = None
        self.actions = ActionSet(self, owner)
        self.restart: RestartState | None = None  # the restart policy's state (policy/restart.py)

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
            stack.extend(reversed(inst.children.values()))
