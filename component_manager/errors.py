"""Every error component_manager raises, in one tree.

    CmError                      base; ``str(e)`` is the one line a user sees
    ├── ManifestError            a manifest is invalid: ``problems`` lists every one found
    ├── CompiledManifestError    a ``.cm`` is truncated, tampered with or of another version
    ├── MonikerError             a moniker or child name does not parse
    ├── UrlError                 a component URL is malformed or names nothing
    ├── InstanceNotFound         no instance at that moniker
    ├── CollectionNotFound       the parent has no collection of that name
    ├── InstanceAlreadyExists    a child of that name already exists
    ├── InvalidTransition        a state change the transition table forbids
    ├── InvalidArgument          a request argument names nothing valid (an unknown event type)
    │   └── UsageError           (client side) a command's arguments are wrong: exit 2
    ├── InvalidRequest           a well-formed request that makes no sense here
    │                            (destroy a static child, start a destroyed instance)
    ├── StartError               a program could not be started (runner, timeout, config)
    │   ├── StartAborted         a stop came first: nothing failed, try again
    │   └── LimitNotEnforceable  one of its limits cannot be enforced on this host
    ├── ResourceExhausted        a start would exceed the manager's budget, and nothing
    │                            of lower priority can be evicted to make room
    ├── RouteError               a capability route is broken: carries the hops and where
    ├── DependencyCycle          strong dependencies form a cycle: no stop order exists
    ├── ConfigError              a config value is missing or of the wrong type
    ├── StorageError             an instance storage area cannot be created or opened
    ├── AccessDenied             a caller lacks the grant or the routed capability
    ├── ManagerAlreadyRunning    (daemon side) another manager holds the state directory's lock
    ├── RootMismatch             (daemon side) the state directory was made with another root
    ├── RayUnavailable           (daemon side) --ray names no Ray cluster it can use
    └── ManagerNotRunning        (client side) nothing answers at the state directory

Every error carries its context (moniker, url, file, key) as attributes so that callers can
act on it without parsing the message. ``api/status.py`` maps the tree to gRPC status codes
in one table (every class has a code: tests/unit/test_core.py walks the tree); the CLI maps
errors and gRPC codes to exit codes in one table, ``cli/exitcodes.py``.

Example::

    try:
        model.find("/core/missing")
    except InstanceNotFound as e:
        e.moniker   # "/core/missing"
        str(e)      # "instance '/core/missing' not found"
"""

from __future__ import annotations

from collections import namedtuple
from os import PathLike

__all__ = [
    "AccessDenied",
    "CmError",
    "CollectionNotFound",
    "CompiledManifestError",
    "ConfigError",
    "DependencyCycle",
    "InstanceAlreadyExists",
    "InstanceNotFound",
    "InvalidArgument",
    "InvalidRequest",
    "InvalidTransition",
    "LimitNotEnforceable",
    "ManagerAlreadyRunning",
    "ManagerNotRunning",
    "ManifestError",
    "MonikerError",
    "Problem",
    "ResourceExhausted",
    "RayUnavailable",
    "RootMismatch",
    "RouteError",
    "StartAborted",
    "StartError",
    "StorageError",
    "UrlError",
    "UsageError",
]


class CmError(Exception):
    """Base of every component_manager error. ``str(e)`` is one line for the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class Problem(namedtuple("Problem", "file line key_path message column", defaults=(0,))):
    """One thing wrong with a manifest, at a place: ``file:line: key.path: message``.

    ``line`` and ``column`` are 1-based; 0 means the whole file (for example an include
    that cannot be found is reported at the ``include`` key's line, a missing file at 0).
    Immutable, ordered by its fields (a named tuple, not a dataclass: every `cm` imports
    this module, and ``dataclasses`` costs it ~6 ms of imports).
    """

    __slots__ = ()

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.column and not self.key_path:
            where += f":{self.column}"
        return f"{where}: {self.key_path}: {self.message}" if self.key_path else f"{where}: {self.message}"


class ManifestError(CmError):
    """A manifest is invalid. ``problems`` holds every problem found, in file order."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class CompiledManifestError(CmError):
    """A compiled ``.cm`` cannot be trusted: truncated, tampered with, or not a manifest."""

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class MonikerError(CmError):
    """A moniker or child name does not parse."""

    def __init__(self, text: str, reason: str):
        self.text = text
        self.reason = reason
        super().__init__(f"invalid moniker {text!r}: {reason}")


class UrlError(CmError):
    """A component URL is malformed, or resolves to nothing."""

    def __init__(self, url: str, reason: str, moniker: str | None = None):
        self.url = url
        self.reason = reason
        self.moniker = moniker
        where = f" (for {moniker})" if moniker else ""
        super().__init__(f"cannot resolve {url!r}{where}: {reason}")


class InstanceNotFound(CmError):
    def __init__(self, moniker: str):
        self.moniker = moniker
        super().__init__(f"instance '{moniker}' not found")


class CollectionNotFound(CmError):
    def __init__(self, moniker: str, collection: str):
        self.moniker = moniker
        self.collection = collection
        super().__init__(f"instance '{moniker}' has no collection '{collection}'")


class InstanceAlreadyExists(CmError):
    def __init__(self, moniker: str):
        self.moniker = moniker
        super().__init__(f"instance '{moniker}' already exists")


class InvalidTransition(CmError):
    """The transition table forbids moving ``moniker`` from ``current`` to ``target``."""

    def __init__(self, moniker: str, current: str, target: str):
        self.moniker = moniker
        self.current = current
        self.target = target
        super().__init__(f"instance '{moniker}' cannot go from {current} to {target}")


class InvalidArgument(CmError):
    """An argument of a request that names nothing valid; the message lists the valid ones."""


class UsageError(InvalidArgument):
    """A command's arguments are wrong (the CLI's exit code 2)."""


class InvalidRequest(CmError):
    def __init__(self, moniker: str, reason: str):
        self.moniker = moniker
        self.reason = reason
        super().__init__(f"instance '{moniker}': {reason}")


class StartError(CmError):
    def __init__(self, moniker: str, reason: str):
        self.moniker = moniker
        self.reason = reason
        super().__init__(f"cannot start '{moniker}': {reason}")


class StartAborted(StartError):
    """A start was aborted by a stop (or shutdown) before the program was running: nothing
    failed, and a caller that still needs the program may start it again."""

    def __init__(self, moniker: str):
        super().__init__(moniker, "aborted by a stop")


class LimitNotEnforceable(StartError):
    """A declared limit this host cannot enforce: the program is not started without it."""

    def __init__(self, moniker: str, limit: str, why: str):
        self.limit = limit
        super().__init__(moniker, f"its {limit} limit cannot be enforced: {why}")


class ResourceExhausted(CmError):
    """A start would exceed the budget (``budget``: "max_running 4" or "memory_budget 1GiB")
    and no running instance of lower priority is left to evict."""

    def __init__(self, moniker: str, budget: str, detail: str):
        self.moniker = moniker
        self.budget = budget
        self.detail = detail
        super().__init__(f"cannot start '{moniker}': the manager's budget {budget} is used up ({detail})")


class RouteError(CmError):
    """A route is broken. ``hops`` are the steps walked, ``reason`` says what broke where.

    Example message: "'echo.Echo' used by '/app/client': offered by '/app' from '#server',
    but '/app/server' does not expose it".
    """

    def __init__(self, moniker: str, capability: str, hops: list[str], reason: str):
        self.moniker = moniker
        self.capability = capability
        self.hops = hops
        self.reason = reason
        super().__init__(f"'{capability}' used by '{moniker}': {reason}")


class DependencyCycle(CmError):
    """``cycle`` lists the nodes, the first repeated at the end: ``["a", "b", "a"]``."""

    def __init__(self, cycle: list[str]):
        self.cycle = cycle
        super().__init__(f"strong dependency cycle: {' -> '.join(cycle)}")


class ConfigError(CmError):
    def __init__(self, moniker: str, key: str, reason: str):
        self.moniker = moniker
        self.key = key
        self.reason = reason
        super().__init__(f"config of '{moniker}': {key}: {reason}")


class StorageError(CmError):
    def __init__(self, moniker: str, storage: str, reason: str):
        self.moniker = moniker
        self.storage = storage
        self.reason = reason
        super().__init__(f"storage '{storage}' of '{moniker}': {reason}")


class AccessDenied(CmError):
    def __init__(self, reason: str, moniker: str | None = None):
        self.moniker = moniker
        self.reason = reason
        super().__init__(f"access denied: {reason}" + (f" (for '{moniker}')" if moniker else ""))


class ManagerAlreadyRunning(CmError):
    """Another manager holds the lock of ``state_dir`` (one manager per state directory)."""

    def __init__(self, state_dir: str | PathLike[str]):
        self.state_dir = state_dir
        super().__init__(f"a manager is already running at {state_dir}")


class RootMismatch(CmError):
    """``state_dir`` holds the tree of root ``stored``; the manager was asked for ``wanted``."""

    def __init__(self, state_dir: str | PathLike[str], stored: str, wanted: str):
        self.state_dir = state_dir
        self.stored = stored
        self.wanted = wanted
        super().__init__(f"{state_dir} holds the instances of root {stored}, not {wanted}: run with that "
                         f"--root, another --state-dir, or --switch-root (the stored tree is then matched "
                         f"against the new root, as after an edit of the root manifest)")


class RayUnavailable(CmError):
    """``cm manager run --ray SPEC`` cannot be served: Ray is missing, or the cluster is not
    reachable or did not start."""

    def __init__(self, spec: str, why: str):
        self.spec = spec
        self.why = why
        super().__init__(f"--ray {spec}: {why}")


class ManagerNotRunning(CmError):
    def __init__(self, state_dir: str):
        self.state_dir = state_dir
        super().__init__(f"no manager is running at {state_dir} (start one with `cm manager run`)")
