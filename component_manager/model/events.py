"""Lifecycle events: stored in the manager's LMDB (the last N survive restarts) and fanned
out to live subscribers (``cm events --follow``, the test harness).

An event is a plain dict: seq, timestamp, type (resolved, started, stopped, destroyed,
capability_requested, ...), moniker, instance_id, reason, stop (a StopRecord dict), detail.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial

log = logging.getLogger("component_manager.model")

__all__ = ["EVENT_TYPES", "EventBus", "Subscription"]

# The types events are published with: a subscription naming another is refused
# (`cm events --type strated`). Publishing a new type adds it (``EventBus.types``), but list
# it here so that it can be subscribed to before its first event.
EVENT_TYPES = frozenset({"created", "resolved", "started", "stopped", "destroyed", "capability_requested",
                         "storage_deleted", "storage_snapshotted", "storage_restored", "paused", "resumed",
                         "restart_scheduled", "restart_gave_up", "restart_cancelled", "restart_reset",
                         "trigger_succeeded", "trigger_failed"})


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
        self.types = set(EVENT_TYPES)  # and any type published since (see EVENT_TYPES)

    def publish(self, type: str, instance, reason: str = "", stop: dict | None = None,
                detail: str = "") -> dict:
        """Store an event and deliver it to live subscribers once it is stored. The caller
        does not wait: in the event loop it is committed lazily (with the next commit, or
        within 50 ms: an event no request waits on need not cost anyone an fsync, nor wake
        the commit thread once each); outside a loop it commits now."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            event = self.stage(self._store, type, instance, reason, stop, detail)
            self.deliver(event)
            return event
        batch = self._store.new_batch()
        event = self.stage(batch, type, instance, reason, stop, detail)
        self._store.commit_lazily(batch).add_done_callback(partial(self._deliver_stored, event))
        return event

    async def record(self, type: str, instance, reason: str = "", stop: dict | None = None,
                     detail: str = "") -> dict:
        """Store an event, wait until it is durable, deliver it: for an event that is the
        outcome of a request (the request returns after its event)."""
        batch = self._store.new_batch()
        event = self.stage(batch, type, instance, reason, stop, detail)
        await self._store.commit(batch)
        self.deliver(event)
        return event

    def _deliver_stored(self, event: dict, commit: asyncio.Future) -> None:
        if commit.cancelled():
            return
        if commit.exception() is not None:
            log.warning("event %s of %s not stored: %s", event["type"], event["moniker"], commit.exception())
            return
        self.deliver(event)

    def stage(self, writer, type: str, instance, reason: str = "", stop: dict | None = None,
              detail: str = "") -> dict:
        """Store an event through ``writer`` (the store, or a batch with other writes, so one
        durable commit covers them all); ``deliver`` it once that has committed."""
        self.types.add(type)
        event = {
            "timestamp": time.time(), "type": type, "moniker": instance.moniker_text,
            "instance_id": instance.instance_id, "reason": reason, "stop": stop, "detail": detail,
        }
        event["seq"] = writer.append_event(event)
        return event

    def deliver(self, event: dict) -> None:
        for sub in list(self._subscriptions):
            if sub.matches(event):
                sub.queue.put_nowait(event)

    def subscribe(self, prefix: str = "", types=()) -> Subscription:
        sub = Subscription(self, prefix, frozenset(types))
        self._subscriptions.add(sub)
        return sub

    def history(self, prefix: str = "", types=()) -> list[dict]:
        probe = Subscription(self, prefix, frozenset(types))
        return [e for e in self._store.events() if probe.matches(e)]
