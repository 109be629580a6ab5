"""An instance's restart state: how many restarts in a row, when the next one is due, and
whether the restart policy gave up. Data only; ``policy/restart.py`` decides and changes it,
and the manager's store keeps it (``restarts`` records), so a manager killed with -9 during a
back-off resumes it rather than starting over.

Example: a program with ``restart: { policy: "on_failure" }`` crashes with SIGSEGV a third
time in a row; the policy makes ``RestartState(attempt=3, next_at=now + 1.6, last="crashed
SIGSEGV", history=[t1, t2, t3])``, and ``describe()`` says ``backing off (attempt 3, next in
1.6s, last: crashed SIGSEGV)`` until the start it scheduled happens.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from ..errors import StartError

__all__ = ["RestartState"]


@dataclass(eq=False)
class RestartState:
    instance_id: str
    attempt: int = 0  # restarts in a row (forgotten after reset_after of running)
    next_at: float = 0.0  # unix time of the scheduled start; 0: none scheduled
    last: str = ""  # why the last run ended, e.g. "crashed SIGSEGV"
    gave_up: bool = False  # past the storm limit: stays stopped until cm start / cm reset
    history: list[float] = field(default_factory=list)  # unix times of restarts within `within`
    timer: asyncio.TimerHandle | None = None  # the scheduled start (not stored)
    started: asyncio.Future | None = None  # set once the scheduled start is done (not stored)

    @property
    def backing_off(self) -> bool:
        return self.next_at > 0 and not self.gave_up

    def describe(self, now: float | None = None) -> str:
        """``backing off (attempt 3, next in 1.6s, last: crashed SIGSEGV)`` or ``failed (gave
        up after 5 restarts)``; "" when neither."""
        if self.gave_up:
            return f"failed (gave up after {len(self.history)} restarts{self._last()})"
        if self.next_at:
            wait = max(0.0, self.next_at - (now or time.time()))
            return f"backing off (attempt {self.attempt}, next in {wait:.1f}s{self._last()})"
        return ""

    def _last(self) -> str:
        return f", last: {self.last}" if self.last else ""

    async def wait_scheduled(self, moniker: str, timeout: float | None) -> None:
        """Wait until the scheduled start is done (or called off), at most ``timeout``
        seconds. Raises StartError saying it is backing off when the wait runs out."""
        if not self.backing_off or self.started is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self.started), timeout)
        except TimeoutError:
            raise StartError(moniker, f"it is {self.describe()}; try again later") from None

    def to_dict(self) -> dict:
        return {"instance_id": self.instance_id, "attempt": self.attempt, "next_at": self.next_at,
                "last": self.last, "gave_up": self.gave_up, "history": self.history}

    @classmethod
    def from_dict(cls, raw: dict) -> RestartState:
        return cls(raw["instance_id"], int(raw["attempt"]), float(raw["next_at"]), str(raw["last"]),
                   bool(raw["gave_up"]), [float(t) for t in raw["history"]])
