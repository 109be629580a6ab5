"""Why programs start and stop, the record of how a stop went, and the status a person sees.

Every stop has a reason (``StopReason``) and a disposition: ``stopped`` (it ended when
asked, or ended by itself with an exit code), ``killed`` (ended by a signal: SIGKILL from us
without a grace period, or a crash), ``killed_after_timeout`` (it did not end within its
``stop_timeout`` and was signalled). Start reasons are free text with fixed shapes, e.g.
``'/core/client' requested capability 'echo.Echo'``.

``status_of`` is the one place that turns a state and a last stop into what `cm list`,
`cm tree` and `cm show` print. Example: a program killed by SIGSEGV is stopped with
``StopRecord(StopReason.CRASHED, Disposition.KILLED, signal=11)``; while it is not running,
``status_of(State.RESOLVED, ExecutionState.STOPPED, record)`` is ``Status.FAILED``.
"""

from __future__ import annotations

import enum
import signal
import time
from dataclasses import dataclass

from .states import ExecutionState, State

__all__ = ["Disposition", "Status", "StopReason", "StopRecord", "capability_start_reason",
           "restart_start_reason", "status_of"]


class StopReason(enum.StrEnum):
    REQUESTED = "requested"
    IDLE = "idle"
    PARENT_STOPPING = "parent_stopping"
    PACKAGE_UPDATED = "package_updated"
    RESOURCE_LIMIT = "resource_limit"
    EVICTED = "evicted"
    DESTROYING = "destroying"
    SYSTEM_SHUTDOWN = "system_shutdown"
    EXITED = "exited"
    CRASHED = "crashed"
    HEALTH_CHECK_FAILED = "health_check_failed"
    START_FAILED = "start_failed"
    RUN_TIME_EXCEEDED = "run_time_exceeded"
    NODE_LOST = "node_lost"  # the Ray node it ran on was lost (ray runner)

    def for_children(self) -> StopReason:
        """The reason a parent's stop gives its children: shutdown and destroy pass through."""
        if self in (StopReason.SYSTEM_SHUTDOWN, StopReason.DESTROYING):
            return self
        return StopReason.PARENT_STOPPING


class Disposition(enum.StrEnum):
    STOPPED = "stopped"
    KILLED = "killed"
    KILLED_AFTER_TIMEOUT = "killed_after_timeout"


# Reasons that mean the program failed, whatever its exit; an exit is a failure when non-zero.
FAILURES = frozenset({StopReason.CRASHED, StopReason.START_FAILED, StopReason.HEALTH_CHECK_FAILED,
                      StopReason.RESOURCE_LIMIT, StopReason.RUN_TIME_EXCEEDED, StopReason.NODE_LOST})


@dataclass(frozen=True, slots=True)
class StopRecord:
    reason: StopReason
    disposition: Disposition
    exit_code: int | None = None
    signal: int | None = None
    run_time_s: float = 0.0
    stopped_at: float = 0.0
    detail: str = ""
    hook_failures: tuple[str, ...] = ()  # post_stop hooks that failed, each "hook: why"

    @property
    def failed(self) -> bool:
        """The program failed: it crashed, exited non-zero, or could not start or keep going."""
        return self.reason in FAILURES or (self.reason is StopReason.EXITED and self.exit_code != 0)

    @classmethod
    def start_failed(cls, status, run_time: float, detail: str) -> StopRecord:
        """A failed start: ``status`` is how the launched program ended (None when nothing was
        launched, or how it ended is not known)."""
        signal = status.signal if status else None
        return cls(StopReason.START_FAILED, Disposition.KILLED if signal else Disposition.STOPPED,
                   status.exit_code if status else None, signal, run_time, time.time(), detail)

    def to_dict(self) -> dict:
        return {"reason": self.reason.value, "disposition": self.disposition.value,
                "exit_code": self.exit_code, "signal": self.signal, "run_time_s": self.run_time_s,
                "stopped_at": self.stopped_at, "detail": self.detail,
                "hook_failures": list(self.hook_failures)}

    @classmethod
    def from_dict(cls, raw: dict | None) -> StopRecord | None:
        if not raw:
            return None
        return cls(**{**raw, "reason": StopReason(raw["reason"]),
                      "disposition": Disposition(raw["disposition"]),
                      "hook_failures": tuple(raw.get("hook_failures", ()))})

    def describe(self) -> str:
        """``crashed SIGSEGV``, ``exited 3``, ``health_check_failed``: the short form."""
        if self.signal:
            return f"{self.reason.value} {_signal_name(self.signal)}"
        if self.reason is StopReason.EXITED:
            return f"exited {self.exit_code}"
        return self.reason.value


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Status(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FAILED = "failed"
    BACKING_OFF = "backing off"
    UNRESOLVED = "unresolved"
    SHUTDOWN = "shutdown"
    DESTROYED = "destroyed"


_STATE_SHOWN = {State.UNRESOLVED: Status.UNRESOLVED, State.SHUTDOWN: Status.SHUTDOWN,
                State.DESTROYED: Status.DESTROYED}


def status_of(state: State, execution: ExecutionState, last_stop: StopRecord | None,
              restart=None) -> Status:
    """What a person sees: running, paused, backing off (a restart is scheduled), failed (its
    last run failed, or its restart policy gave up), stopped; or the lifecycle state of an
    instance that never got as far as stopped. ``restart`` is its ``RestartState``, if any
    (its ``describe()`` gives the detail: attempt, next try, last failure)."""
    if execution is ExecutionState.RUNNING:
        return Status.RUNNING
    if execution is ExecutionState.PAUSED:
        return Status.PAUSED
    if state in _STATE_SHOWN:
        return _STATE_SHOWN[state]
    if restart is not None and restart.backing_off:
        return Status.BACKING_OFF
    if restart is not None and restart.gave_up:
        return Status.FAILED
    return Status.FAILED if last_stop is not None and last_stop.failed else Status.STOPPED


START_REQUESTED = "requested via the API (cm start)"
START_EAGER = "eager child of a started parent"
START_ROOT = "the root starts with the manager"
START_SINGLE_RUN = "created in a single_run collection"
START_RESTARTED = "restarted by request"
START_PACKAGE_UPDATED = "restarted on the updated package"


def restart_start_reason(reason: str, attempt: int) -> str:
    return f"restart after {reason} (attempt {attempt})"


def capability_start_reason(client: str, capability: str) -> str:
    return f"'{client}' requested capability '{capability}'"
