"""Lifecycle events: stored in the manager's LMDB (the last N survive restarts) and fanned
out to live subscribers (``cm events --follow``, the test harness).

An event is a plain dict: seq, timestamp, type (resolved, started, stopped, destroyed,
capability_requested, ...), moniker, instance_id, reason, stop (a StopRecord dict), detail.

Durability: a lifecycle event is committed durably (an fsync) with its record, before it is
delivered. A ``capability_requested`` event (one per Connect: frequent, and not a lifecycle
record) is grouped instead: it waits, at most ``GROUP_COMMIT_DELAY_S``, for the next commit
(the next lifecycle event's, or one commit for all that waited), so a warm Connect does not
pay an fsync. Sequence numbers still follow the order of publication, and events are
delivered in that order once committed. A manager crash in that window loses the waiting
events (never an instance record); ``history()`` writes them first, so a reader of the API
sees every event published before it asked.

Example: three Connects within 50 ms, then the provider stops: the three
``capability_requested`` events and the ``stopped`` event are written in one commit, with
seq 41, 42, 43, 44.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..errors import StorageError

__all__ = ["EventBus", "GROUPED_TYPES", "GROUP_COMMIT_DELAY_S", "Subscription"]

log = logging.getLogger("component_manager.events")

GROUPED_TYPES = frozenset({"capability_requested"})
GROUP_COMMIT_DELAY_S = 0.05


class Subscription:
    def __init__(self, bus: EventBus, prefix: str, types: frozenset[str]):
        self._bus = bus
        self.prefix = prefix
        self.types = types
        self.queue: asyncio.Queue[dict] = asyncio.Queue()

    def matches(self, event: dict) -> bool:
        if self.types and event["type"] not in self.types:
            return False
        return _under(event["moniker"], self.prefix)

    def close(self) -> None:
        self._bus._subscriptions.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _under(moniker: str, prefix: str) -> bool:
    if not prefix or prefix == "/":
        return True
    return moniker == prefix or moniker.startswith(prefix.rstrip("/") + "/")


class EventBus:
    def __init__(self, store) -> None:
        self._store = store
        self._subscriptions: set[Subscription] = set()
        self._waiting: list[dict] = []  # grouped events not written yet, oldest first
        self._riders: list[dict] = []  # written in the open commit, delivered with its event
        self._carrier = None  # the writer the riders were written through
        self._flush_timer: asyncio.TimerHandle | None = None

    def publish(self, type: str, instance, reason: str = "", stop: dict | None = None,
                detail: str = "") -> dict:
        """Store an event in its own commit (a grouped type: in the next one) and deliver it
        to live subscribers once stored."""
        event = _event(type, instance, reason, stop, detail)
        if type in GROUPED_TYPES and self._flush_later():
            self._waiting.append(event)
            return event
        with self._store.batch() as batch:
            self._write(batch, event)
        self.deliver(event)
        return event

    def stage(self, writer, type: str, instance, reason: str = "", stop: dict | None = None,
              detail: str = "") -> dict:
        """Store an event through ``writer`` (a batch with other writes, so one durable
        commit covers them all); ``deliver`` it once that has committed."""
        event = _event(type, instance, reason, stop, detail)
        self._write(writer, event)
        return event

    def _write(self, writer, event: dict | None) -> None:
        """Write the waiting grouped events, then ``event``, through ``writer``."""
        if writer is not self._carrier:  # a new commit: riders of one that failed go again
            self._waiting[:0] = self._riders
            self._riders = []
            self._carrier = writer
        for waiting in self._waiting:
            waiting["seq"] = writer.append_event(waiting)
        self._riders += self._waiting
        self._waiting = []
        if event is not None:
            event["seq"] = writer.append_event(event)

    def deliver(self, event: dict | None) -> None:
        """Hand committed events to the live subscribers: the grouped events that were
        written in the same commit first, then ``event``."""
        riders, self._riders, self._carrier = self._riders, [], None
        for committed in (*riders, event) if event is not None else riders:
            for sub in list(self._subscriptions):
                if sub.matches(committed):
                    sub.queue.put_nowait(committed)

    def flush(self) -> None:
        """Write the waiting grouped events now, in one commit, and deliver them."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not self._waiting and not self._riders:
            return
        try:
            with self._store.batch() as batch:
                self._write(batch, None)
        except StorageError as e:  # they wait for the next commit
            log.warning("could not write %d grouped events: %s", len(self._riders), e)
            return
        self.deliver(None)

    def _flush_later(self) -> bool:
        """Make sure a flush is due within GROUP_COMMIT_DELAY_S; False without an event
        loop (then the caller writes at once)."""
        if self._flush_timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return False
            self._flush_timer = loop.call_later(GROUP_COMMIT_DELAY_S, self.flush)
        return True

    def subscribe(self, prefix: str = "", types=()) -> Subscription:
        sub = Subscription(self, prefix, frozenset(types))
        self._subscriptions.add(sub)
        return sub

    def history(self, prefix: str = "", types=()) -> list[dict]:
        self.flush()  # every event published so far, in order
        probe = Subscription(self, prefix, frozenset(types))
        return [e for e in self._store.events() if probe.matches(e)]


def _event(type: str, instance, reason: str, stop: dict | None, detail: str) -> dict:
    return {"timestamp": time.time(), "type": type, "moniker": str(instance.moniker),
            "instance_id": instance.instance_id, "reason": reason, "stop": stop, "detail": detail}
