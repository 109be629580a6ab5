"""The runtime form of a component manifest: plain, frozen, normalized data.

This is what the rest of the manager reads (like Fuchsia's ``cm_rust::ComponentDecl``).
The authored ``.cml`` is parsed and validated by ``schema``/``validate``, normalized here by
``compile``, and stored in a ``.cm`` by ``codec``; loading a ``.cm`` gives back an equal
``ComponentDecl``. Everything optional in CML has its default filled in, so readers never
guess: durations are integer milliseconds, sequences are tuples, mappings are tuples of pairs
sorted by key.

Example: ``use: [{ protocol: "echo.Echo" }]`` becomes
``UseDecl(kind="protocol", source_name="echo.Echo", source="parent", target_name="echo.Echo",
path="/svc/echo.Echo")``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "CapabilityDecl",
    "ChildDecl",
    "CollectionDecl",
    "ComponentDecl",
    "ConfigFieldDecl",
    "ExposeDecl",
    "HealthDecl",
    "HooksDecl",
    "OfferDecl",
    "ProgramDecl",
    "RestartDecl",
    "TriggersDecl",
    "UseDecl",
    "CAPABILITY_KINDS",
    "RUNNERS",
]

CapabilityKind = Literal["protocol", "storage", "config", "directory"]
CAPABILITY_KINDS: tuple[str, ...] = ("protocol", "storage", "config", "directory")
RUNNERS: tuple[str, ...] = ("python", "process", "inproc", "local", "ray")

# Where a route step comes from. "child" and "collection" carry the child/collection name
# in ``source_child``; "void" offers an optional capability that nobody provides.
Source = Literal["parent", "self", "child", "collection", "framework", "void"]


Command = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RestartDecl:
    """When and how fast a stopped program is started again (``program.restart``).

    ``on_failure`` restarts after a failure (crashed, exited non-zero, health_check_failed,
    resource_limit, start_failed, run_time_exceeded); ``always`` also after a clean exit.
    The delay doubles from ``initial_delay_ms`` up to ``max_delay_ms`` (jittered); earlier
    failures are forgotten after ``reset_after_ms`` of running; more than ``max_restarts``
    within ``within_ms`` gives up (and, with ``escalate``, restarts the parent's realm)."""

    policy: Literal["never", "on_failure", "always"] = "never"
    initial_delay_ms: int = 100
    max_delay_ms: int = 30_000
    reset_after_ms: int = 600_000
    max_restarts: int = 5
    within_ms: int = 60_000
    escalate: bool = False


@dataclass(frozen=True, slots=True)
class HealthDecl:
    """A liveness probe: ``grpc`` (grpc.health.v1 Check on the serve address) or ``exec``
    (a command; exit 0 is healthy). ``failures`` failed probes in a row stop the program."""

    grpc: bool = False
    exec: Command = ()
    period_ms: int = 5_000
    timeout_ms: int = 1_000
    failures: int = 3
    initial_delay_ms: int = 1_000


@dataclass(frozen=True, slots=True)
class HooksDecl:
    """Lifecycle commands: ``pre_start`` (in order; one failing fails the start) and
    ``post_stop`` (all run, in order), each bounded by ``timeout_ms``."""

    pre_start: tuple[Command, ...] = ()
    post_stop: tuple[Command, ...] = ()
    timeout_ms: int = 30_000


@dataclass(frozen=True, slots=True)
class TriggersDecl:
    """Commands fired after an event (``program.on``), without blocking the lifecycle."""

    start: tuple[Command, ...] = ()
    failure: tuple[Command, ...] = ()
    exit: tuple[Command, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.start or self.failure or self.exit)


@dataclass(frozen=True, slots=True)
class ProgramDecl:
    """How to run the program, and this project's lifecycle settings.

    ``ready``: "serving" waits for the program to report serving through the SDK (the default
    when the component declares a protocol capability); "spawned" counts the program as
    started once its process exists (for programs that never talk to the manager).
    ``idle_timeout_ms`` 0 means never stop for idleness. Limits (0: none): memory in bytes
    (``limits.memory`` or ``memory_limit``), cpu in cores, pids, open files. ``priority``:
    higher is more urgent; eviction under a budget takes the lowest first.
    """

    runner: str
    module: str = ""  # python runner: the module run as ``python -m module``
    binary: str = ""  # process runner: executable, relative to the package dir or absolute
    entry: str = ""  # inproc runner: "package.module:coroutine_function"; local: "unix:/sock#name"
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    stop_event: Literal["notify", "none"] = "none"
    ready: Literal["serving", "spawned"] = "spawned"
    start_timeout_ms: int = 10_000
    stop_timeout_ms: int = 5_000
    idle_timeout_ms: int = 0
    memory_limit_bytes: int = 0  # 0: no limit
    cpu_limit: float = 0.0
    pids_limit: int = 0
    open_files_limit: int = 0
    priority: int = 0
    restart: RestartDecl = RestartDecl()
    health: HealthDecl | None = None
    hooks: HooksDecl = HooksDecl()
    on: TriggersDecl = TriggersDecl()
    max_run_time_ms: int = 0  # 0: no limit
    node: str = ""  # ray runner: the Ray node to run on, by its cm-node label ("": any)
    resources: tuple[tuple[str, float], ...] = ()  # ray runner: Ray resources, e.g. (("CPU", 1.0),)


@dataclass(frozen=True, slots=True)
class ConfigFieldDecl:
    """One field of the config schema. ``type`` is bool, uint8..uint64, int8..int64, string
    or vector; vectors have ``element_type`` (not vector) and ``max_count``; strings (and
    string elements) have ``max_size``. ``default`` is the value used when nobody sets it
    (``None``: the field must be set by the parent or by a routed config capability)."""

    key: str
    type: str
    element_type: str = ""
    max_size: int = 0
    max_count: int = 0
    default: object = None
    mutability: tuple[str, ...] = ()  # "parent": the parent may override it per child


@dataclass(frozen=True, slots=True)
class CapabilityDecl:
    """A capability this component declares (it is the provider, ``from: self``).

    protocol: a gRPC service the program serves. storage: an area of per-instance LMDB
    storage that this component can offer to its descendants. directory: a host directory
    (``path``, relative to the package dir or absolute). config: a value (``value``,
    typed by ``type``) that users receive as a config field.
    """

    kind: CapabilityKind
    name: str
    path: str = ""
    type: str = ""
    value: object = None


@dataclass(frozen=True, slots=True)
class UseDecl:
    """A capability this component uses. ``target_name`` is the name the program asks for
    (the ``as`` of the source name); ``key`` is the config key a used config fills in."""

    kind: CapabilityKind
    source_name: str
    source: Source = "parent"
    source_child: str = ""
    target_name: str = ""
    path: str = ""
    key: str = ""
    availability: Literal["required", "optional"] = "required"
    dependency: Literal["strong", "weak"] = "strong"


@dataclass(frozen=True, slots=True)
class OfferDecl:
    """The parent passes ``source_name`` from ``source`` to a child or collection as
    ``target_name``. One CML offer with several targets becomes several OfferDecls."""

    kind: CapabilityKind
    source_name: str
    source: Source
    target: Literal["child", "collection"]
    target_child: str
    source_child: str = ""
    target_name: str = ""
    availability: Literal["required", "optional"] = "required"
    dependency: Literal["strong", "weak"] = "strong"


@dataclass(frozen=True, slots=True)
class ExposeDecl:
    """The component passes ``source_name`` from ``source`` up to its parent as
    ``target_name``."""

    kind: CapabilityKind
    source_name: str
    source: Source
    source_child: str = ""
    target_name: str = ""
    availability: Literal["required", "optional"] = "required"


@dataclass(frozen=True, slots=True)
class ChildDecl:
    name: str
    url: str
    startup: Literal["lazy", "eager"] = "lazy"
    config_overrides: tuple[tuple[str, object], ...] = ()
    priority: int | None = None  # overrides the child's program.priority
    restart: RestartDecl | None = None  # replaces the child's own program.restart


@dataclass(frozen=True, slots=True)
class CollectionDecl:
    name: str
    durability: Literal["transient", "persistent", "single_run"] = "transient"
    priority: int | None = None  # overrides its children's program.priority
    restart: RestartDecl | None = None  # replaces its members' own program.restart


@dataclass(frozen=True, slots=True)
class ComponentDecl:
    """A whole compiled manifest. ``program`` is None for a component with no program (a
    pure realm). ``fingerprint`` is the sha256 hex of its canonical encoding, filled in by
    the compiler and checked by the loader; it is not part of what it fingerprints."""

    program: ProgramDecl | None = None
    capabilities: tuple[CapabilityDecl, ...] = ()
    uses: tuple[UseDecl, ...] = ()
    offers: tuple[OfferDecl, ...] = ()
    exposes: tuple[ExposeDecl, ...] = ()
    children: tuple[ChildDecl, ...] = ()
    collections: tuple[CollectionDecl, ...] = ()
    config: tuple[ConfigFieldDecl, ...] = ()
    fingerprint: str = field(default="", compare=False)

    def child(self, name: str) -> ChildDecl | None:
        for c in self.children:  # a loop, not next(genexpr): this runs per instance at boot
            if c.name == name:
                return c
        return None

    def collection(self, name: str) -> CollectionDecl | None:
        for c in self.collections:
            if c.name == name:
                return c
        return None

    def capability(self, kind: str, name: str) -> CapabilityDecl | None:
        return next((c for c in self.capabilities if c.kind == kind and c.name == name), None)

    def expose(self, kind: str, target_name: str) -> ExposeDecl | None:
        return next((e for e in self.exposes if e.kind == kind and e.target_name == target_name), None)

    def offer_to(self, target_child: str, kind: str, target_name: str) -> OfferDecl | None:
        return next(
            (o for o in self.offers
             if o.target_child == target_child and o.kind == kind and o.target_name == target_name),
            None,
        )

    def use(self, kind: str, target_name: str) -> UseDecl | None:
        return next((u for u in self.uses if u.kind == kind and u.target_name == target_name), None)
