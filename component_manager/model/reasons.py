"""Why programs start and stop, and the record of how a stop went.

Every stop has a reason (DESIGN.md section 2) and a disposition: ``stopped`` (it ended when
asked, or ended by itself with an exit code), ``killed`` (ended by a signal: SIGKILL from us
without a grace period, or a crash), ``killed_after_timeout`` (it did not end within its
``stop_timeout`` and was signalled). Start reasons are free text with fixed shapes, e.g.
``'/core/client' requested capability 'echo.Echo'``.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass

__all__ = ["Disposition", "StopReason", "StopRecord", "capability_start_reason"]


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

    def for_children(self) -> StopReason:
        """The reason a parent's stop gives its children: shutdown and destroy pass through."""
        if self in (StopReason.SYSTEM_SHUTDOWN, StopReason.DESTROYING):
            return self
        return StopReason.PARENT_STOPPING


class Disposition(enum.StrEnum):
    STOPPED = "stopped"
    KILLED = "killed"
    KILLED_AFTER_TIMEOUT = "killed_after_timeout"


@dataclass(frozen=True, slots=True)
class StopRecord:
    reason: str
    disposition: str
    exit_code: int | None = None
    signal: int | None = None
    run_time_s: float = 0.0
    stopped_at: float = 0.0
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict | None) -> StopRecord | None:
        return cls(**raw) if raw else None


START_REQUESTED = "requested via the API (cm start)"
START_EAGER = "eager child of a started parent"
START_ROOT = "the root starts with the manager"
START_SINGLE_RUN = "created in a single_run collection"


def capability_start_reason(client: str, capability: str) -> str:
    return f"'{client}' requested capability '{capability}'"
