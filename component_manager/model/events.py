"""Lifecycle events: stored in the manager's LMDB (the last N survive restarts) and fanned
out to live subscribers (``cm events --follow``, the test harness).

An event is a plain dict: seq, timestamp, type (resolved, started, stopped, destroyed,
capability_requested, ...), moniker, instance_id, reason, stop (a StopRecord dict), detail.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["EventBus", "Subscription"]


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

    def publish(self, type: str, instance, reason: str = "", stop: dict | None = None,
                detail: str = "") -> dict:
        """Store an event in its own commit and deliver it to live subscribers."""
        event = self.stage(self._store, type, instance, reason, stop, detail)
        self.deliver(event)
        return event

    def stage(self, writer, type: str, instance, reason: str = "", stop: dict | None = None,
              detail: str = "") -> dict:
        """Store an event through ``writer`` (the store, or a batch with other writes, so one
        durable commit covers them all); ``deliver`` it once that has committed."""
        event = {
            "timestamp": time.time(), "type": type, "moniker": str(instance.moniker),
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
