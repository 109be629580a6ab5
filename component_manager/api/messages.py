"""Wire messages as plain dicts, for clients (``cm --json``, the test harness): one place
that knows which proto fields are optional, so every client shows the same shapes."""

from __future__ import annotations

__all__ = ["event_dict", "stop_dict"]


def stop_dict(stop) -> dict:
    """A StopRecord message as the stable ``last_stop`` shape of ``cm show --json``."""
    return {"reason": stop.reason, "disposition": stop.disposition,
            "exit_code": stop.exit_code if stop.HasField("exit_code") else None,
            "signal": stop.signal if stop.HasField("signal") else None,
            "run_time_s": stop.run_time_s, "stopped_at": stop.stopped_at, "detail": stop.detail}


def event_dict(event) -> dict:
    """An Event message; ``stop`` is None unless the event carries a stop record."""
    return {"seq": event.seq, "timestamp": event.timestamp, "type": event.type,
            "moniker": event.moniker, "instance_id": event.instance_id,
            "reason": event.reason or None, "detail": event.detail or None,
            "stop": stop_dict(event.stop) if event.HasField("stop") else None}
