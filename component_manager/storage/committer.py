"""GroupCommitter: the one thread that makes every write transaction of an LMDB environment.

Why a thread: a durable LMDB commit waits for fsync (0.2-0.3 ms here, much more on a busy
disk). Made in the event loop, it stalls every request for that long; made here, the loop
goes on, and every job submitted while one commit is in flight goes into the next one, so
concurrent starts, stops and creates share an fsync instead of queueing for one each.

Jobs are committed in the order they were submitted. LMDB requires a write transaction to
begin and end in the same thread: this one, always.

Example::

    committer = GroupCommitter(run_in_one_transaction, "lmdb-commit manager.lmdb")
    committer.submit([op1, op2], settle)   # settle(results, None) once durable, from this thread
    committer.close()                      # commits what is queued, then ends the thread
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["GroupCommitter", "Settle"]

Settle = Callable[[list | None, BaseException | None], None]


class GroupCommitter:
    """``transaction(ops)`` runs every op in one durable write transaction and returns their
    results, or raises; it is only ever called from the committer's thread."""

    def __init__(self, transaction: Callable[[list], list], name: str) -> None:
        self._transaction = transaction
        self._jobs: list[tuple[list, Settle]] = []
        self._wake = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, ops: list, settle: Settle) -> None:
        """Queue ``ops`` for the next commit; ``settle(results, error)`` is called from the
        committer's thread once they are durable or have failed."""
        with self._wake:
            if self._closing:
                raise RuntimeError("the store is closed")
            self._jobs.append((ops, settle))
            self._wake.notify()

    def close(self) -> None:
        """Commit everything queued, then end the thread. Safe to call twice."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._jobs and not self._closing:
                    self._wake.wait()
                jobs, self._jobs = self._jobs, []
            if not jobs:
                return  # closing, and nothing is left
            self._commit(jobs)

    def _commit(self, jobs: list[tuple[list, Settle]]) -> None:
        """All jobs in one transaction; if that fails, each alone, so that one bad write
        fails only its own caller."""
        try:
            results = self._transaction([op for ops, _ in jobs for op in ops])
        except Exception as error:  # noqa: BLE001 - handed to the callers, never lost
            if len(jobs) == 1:
                jobs[0][1](None, error)
                return
            for ops, settle in jobs:
                try:
                    alone = self._transaction(ops)
                except Exception as own_error:  # noqa: BLE001
                    settle(None, own_error)
                else:
                    settle(alone, None)
            return
        at = 0
        for ops, settle in jobs:
            settle(results[at:at + len(ops)], None)
            at += len(ops)
