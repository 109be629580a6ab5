"""The shape of a ``.cml``, as pydantic models (extra keys forbidden, no type coercion).

These models say what each key may hold; ``validate`` runs them one section entry at a time
(so one bad entry does not hide the others) and then cross-checks what shape cannot see
(unknown children, undeclared capabilities, cycles). Example of an entry they accept::

    { protocol: "echo.Echo", from: "#echo_server", to: ["#client"], dependency: "weak" }

This project's lifecycle settings live under ``program`` next to Fuchsia's keys:
``start_timeout``, ``stop_timeout``, ``idle_timeout`` (durations: "250ms", "5s", "1m", "2h",
or a sum such as "1m30s"), ``ready`` ("serving" or "spawned"), ``limits`` (``memory``:
a size such as "256MiB", "1GiB" or "4096"; ``cpu``: cores, e.g. 0.5; ``pids``; ``open_files``),
``memory_limit`` (the older spelling of ``limits.memory``) and ``priority`` (an integer;
higher is more urgent, eviction takes the lowest first; a ``children`` or ``collections``
entry may override it). The governing policies live there too: ``restart``, ``health``,
``hooks``, ``on`` (triggers) and ``max_run_time`` (see docs/cli.md, "Keeping things running").
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

__all__ = [
    "Capability", "Child", "Collection", "ConfigElement", "ConfigField", "Expose", "Health",
    "Hooks", "Lifecycle", "Limits", "Offer", "Program", "Restart", "Triggers", "Use", "KINDS",
    "TOP_LEVEL_KEYS", "UNSUPPORTED_KEYS",
    "parse_duration", "parse_size",
]

KINDS = ("protocol", "storage", "config", "directory")
TOP_LEVEL_KEYS = ("include", "program", "children", "collections", "capabilities", "use",
                  "offer", "expose", "config")

# Real Fuchsia CML keys this manager does not implement. A manifest that uses one is refused
# with an error naming the key ("'facets' is not supported ..."), not "unknown key".
UNSUPPORTED_KEYS = frozenset({
    "facets", "environments", "environment", "dictionary", "resolver", "resolvers", "runner",
    "runners", "event_stream", "event_streams", "service", "services", "on_terminate",
    "backing_dir", "storage_id", "subdir", "rights", "filter", "scope", "source_name",
    "from_dictionary", "allowed_offers", "allow_long_names", "persistent_storage",
    "source_availability", "delivery", "forward_stdout_to", "forward_stderr_to",
    "main_process_critical", "job_policy_ambient_mark_vmo_exec", "job_policy_create_raw_processes",
    "use_next_vdso", "is_shared_process", "lifecycle_stop_event", "environ", "stdout", "stderr",
    "reboot_on_terminate", "event", "events",
})

UINT32_MAX = 2**32 - 1  # max_size and max_count are UInt32 in the compiled form
_DURATION = re.compile(r"(?:(\d+)(ms|s|m|h))+")
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h)")
_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_SIZE = re.compile(r"(\d+)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB|K|M|G)?")
_BYTES = {None: 1, "B": 1, "K": 1024, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4,
          "M": 1024**2, "G": 1024**3, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4}


MAX_DURATION_MS = 10 * 365 * 86_400_000  # ten years: beyond it, a number is a mistake
MAX_SIZE_BYTES = 1 << 60  # 1 EiB
_MAX_TEXT = 64  # a duration or size written longer is refused before any int() of it


def parse_duration(text: str) -> int:
    """``"1m30s"`` -> 90000 (milliseconds). Raises ValueError naming the accepted forms."""
    if not isinstance(text, str) or len(text) > _MAX_TEXT or not _DURATION.fullmatch(text):
        raise ValueError(f"invalid duration {_short(text)}: write a number and a unit (ms, s, m, h), "
                         'like "250ms", "5s" or "1m30s"')
    ms = sum(int(n) * _MS[unit] for n, unit in _DURATION_PART.findall(text))
    if ms > MAX_DURATION_MS:
        raise ValueError(f"duration {text!r} is too long (at most ten years)")
    return ms


def parse_size(text: str) -> int:
    """``"256MiB"`` -> 268435456 (bytes). Raises ValueError naming the accepted forms."""
    m = _SIZE.fullmatch(text) if isinstance(text, str) and len(text) <= _MAX_TEXT else None
    if not m:
        raise ValueError(f"invalid size {_short(text)}: write a number and a unit, like \"256MiB\" or \"1GiB\"")
    size = int(m.group(1)) * _BYTES[m.group(2)]
    if size > MAX_SIZE_BYTES:
        raise ValueError(f"size {text!r} is too large (at most 1 EiB)")
    return size


def _short(value) -> str:
    shown = repr(value)
    return shown if len(shown) <= _MAX_TEXT else shown[:_MAX_TEXT] + "..."


def _names(value: Any) -> Any:
    """A capability key holds one name or a list of names; normalize to a list."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return value
    raise ValueError("expected a name or a list of names")


Names = Annotated[list[str], BeforeValidator(_names)]
Availability = Literal["required", "optional"]
Dependency = Literal["strong", "weak"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Lifecycle(_Model):
    stop_event: Literal["notify", "none"] = "none"


class Limits(_Model):
    """``program.limits``: enforced by the kernel while the program runs."""

    memory: str | None = None
    cpu: float | None = Field(None, gt=0, le=4096)
    pids: int | None = Field(None, ge=1, le=4_194_304)
    open_files: int | None = Field(None, ge=16, le=1 << 20)

    @field_validator("memory")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None and parse_size(value) < 1 << 20:
            raise ValueError(f"memory limit {value!r} is below 1MiB: no program runs in that")
        return value


Priority = Annotated[int, Field(ge=-1000, le=1000)]


Command = Annotated[list[str], Field(min_length=1)]


def _check_duration(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)
    return value


Duration = Annotated[str, AfterValidator(_check_duration)]


class Restart(_Model):
    """``program.restart`` (or a ``children[]``/``collections[]`` entry's override)."""

    policy: Literal["never", "on_failure", "always"] = "never"
    initial_delay: Duration | None = None
    max_delay: Duration | None = None
    reset_after: Duration | None = None
    max_restarts: int = Field(5, ge=0, le=1_000_000)
    within: Duration | None = None
    escalate: bool = False


class Health(_Model):
    """``program.health``: a liveness probe, ``grpc: true`` or ``exec: [command...]``."""

    grpc: bool = False
    exec: Command | None = None
    period: Duration | None = None
    timeout: Duration | None = None
    failures: int = Field(3, ge=1, le=1000)
    initial_delay: Duration | None = None


class Hooks(_Model):
    """``program.hooks``: commands run as part of the lifecycle (in the package folder)."""

    pre_start: list[Command] = []
    post_stop: list[Command] = []
    timeout: Duration | None = None


class Triggers(_Model):
    """``program.on``: commands fired after an event, without blocking the lifecycle."""

    start: list[Command] = []
    failure: list[Command] = []
    exit: list[Command] = []


class Program(_Model):
    """``program``: how to run it. ``runner`` decides which of module/binary/entry is needed."""

    runner: str
    module: str | None = None
    binary: str | None = None
    entry: str | None = None
    args: list[str] = []
    env: dict[str, str] = {}
    lifecycle: Lifecycle | None = None
    start_timeout: str | None = None
    stop_timeout: str | None = None
    idle_timeout: str | None = None
    ready: Literal["serving", "spawned"] | None = None
    memory_limit: str | None = None
    limits: Limits | None = None
    priority: Priority = 0
    restart: Restart | None = None
    health: Health | None = None
    hooks: Hooks | None = None
    on: Triggers | None = None
    max_run_time: Duration | None = None
    node: str | None = None  # ray runner: run on the Ray node with this cm-node label
    resources: dict[str, float] | None = None  # ray runner: Ray resources, e.g. {"CPU": 1}

    @field_validator("start_timeout", "stop_timeout", "idle_timeout")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None:
            parse_size(value)
        return value


class _Named(_Model):
    """Entries that name capabilities by kind: exactly one of the four keys (checked later)."""

    protocol: Names | None = None
    storage: Names | None = None
    config: Names | None = None
    directory: Names | None = None


class ConfigElement(_Model):
    type: str
    max_size: int | None = Field(None, ge=1, le=UINT32_MAX)


class Capability(_Named):
    """``capabilities``: what this component provides. config: ``type`` + ``value``;
    directory: ``path``."""

    path: str | None = None
    type: str | None = None
    value: Any = None
    max_size: int | None = Field(None, ge=1, le=UINT32_MAX)
    max_count: int | None = Field(None, ge=1, le=UINT32_MAX)
    element: ConfigElement | None = None


class Use(_Named):
    from_: str = Field("parent", alias="from")
    path: str | None = None
    as_: str | None = Field(None, alias="as")
    key: str | None = None
    availability: Availability = "required"
    dependency: Dependency = "strong"


class Offer(_Named):
    from_: str = Field(alias="from")
    to: Names
    as_: str | None = Field(None, alias="as")
    availability: Availability = "required"
    dependency: Dependency = "strong"


class Expose(_Named):
    from_: str = Field(alias="from")
    as_: str | None = Field(None, alias="as")
    availability: Availability = "required"


class Child(_Model):
    name: str
    url: str = Field(min_length=1)
    startup: Literal["lazy", "eager"] = "lazy"
    config: dict[str, Any] = {}
    priority: Priority | None = None
    restart: Restart | None = None


class Collection(_Model):
    name: str
    durability: Literal["transient", "persistent", "single_run"] = "transient"
    priority: Priority | None = None
    restart: Restart | None = None


class ConfigField(_Model):
    type: str
    max_size: int | None = Field(None, ge=1, le=UINT32_MAX)
    max_count: int | None = Field(None, ge=1, le=UINT32_MAX)
    element: ConfigElement | None = None
    default: Any = None
    mutability: list[Literal["parent"]] = []
