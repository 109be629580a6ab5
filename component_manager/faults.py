"""Fault injection for crash-consistency tests: die by SIGKILL at a named step.

Between each durable write and its effect, the manager calls ``crash_point("step")``. When
``CM_TEST_CRASH_AT`` names that step, the manager kills itself there with SIGKILL, exactly as
``kill -9`` would, so a test can check that a restarted manager finds one copy or none of
every program, and storage only with its record. Unset (always, outside tests), it costs a
dictionary lookup.

Steps (in the order they happen):

    start.launched   the program exists, held, before its record is committed
    start.recorded   its record is durable; it has not been told to run
    start.released   it has been told to run; its start is not acknowledged yet
    destroy.tombstone  the destroy is durable; storage and log not yet deleted
    destroy.deleted  storage and log deleted; the records not yet removed
    snapshot.written a new storage snapshot's file is durable; its record not yet committed

Example: ``CM_TEST_CRASH_AT=start.recorded cm manager run`` dies at the first start.
"""

from __future__ import annotations

import os
import signal

__all__ = ["ENV_CRASH_AT", "STEPS", "crash_point"]

ENV_CRASH_AT = "CM_TEST_CRASH_AT"
STEPS = ("start.launched", "start.recorded", "start.released", "destroy.tombstone", "destroy.deleted",
         "snapshot.written")


def crash_point(step: str) -> None:
    """Die here (SIGKILL, no cleanup) if the environment names ``step``."""
    if os.environ.get(ENV_CRASH_AT) == step:
        os.kill(os.getpid(), signal.SIGKILL)
