"""Event matchers: small predicates over the manager's lifecycle events.

An event is the dict ``EventWatch`` yields: ``seq``, ``timestamp``, ``type``, ``moniker``,
``instance_id``, ``reason``, ``stop`` (``reason``, ``disposition``, ``exit_code``, ``signal``,
``run_time_s``) and ``detail``. A matcher is any callable ``event -> bool``; these ones also
print themselves readably when a wait times out.

Example::

    await realm.wait_for(started("/server"))
    event = await realm.wait_for(stopped("/server", reason="idle", disposition="stopped"))
    await realm.wait_for(capability_requested("/server", capability="echo.Echo", client="/client"))
    await realm.wait_for(lambda e: e["type"] == "destroyed")      # any callable works
    await realm.wait_for(restarted("/server", attempt=2))          # the restart policy at work

Only the arguments given are checked: ``stopped("/x")`` matches every stop of ``/x``.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["EventMatcher", "Matcher", "capability_requested", "destroyed", "event", "restart_gave_up",
           "restart_scheduled", "restarted", "started", "stopped"]

Matcher = Callable[[dict], bool]

_STOP_FIELDS = ("disposition", "exit_code", "signal")


class EventMatcher:
    """Matches events of ``type`` whose fields equal ``fields`` (None: not checked).

    ``reason`` is the event's reason; ``disposition``, ``exit_code`` and ``signal`` are read
    from its stop record; ``predicate`` is one more check of your own.
    """

    def __init__(self, type: str | None, moniker: str | None = None, *,
                 predicate: Matcher | None = None, **fields):
        self.type = type
        self.moniker = moniker
        self.fields = {k: v for k, v in fields.items() if v is not None}
        self.predicate = predicate

    def __call__(self, event: dict) -> bool:
        if self.type is not None and event.get("type") != self.type:
            return False
        if self.moniker is not None and event.get("moniker") != self.moniker:
            return False
        stop = event.get("stop") or {}
        for key, want in self.fields.items():
            have = stop.get(key) if key in _STOP_FIELDS else event.get(key)
            if have != want:
                return False
        return self.predicate is None or bool(self.predicate(event))

    def __repr__(self) -> str:
        args = [repr(self.moniker)] if self.moniker is not None else []
        args += [f"{k}={v!r}" for k, v in self.fields.items()]
        if self.predicate is not None:
            args.append(f"predicate={self.predicate!r}")
        return f"{self.type or 'event'}({', '.join(args)})"


def event(type: str | None = None, moniker: str | None = None, **fields) -> EventMatcher:
    """Any event type: ``event("resolved", "/server")``, ``event(detail="...")``."""
    return EventMatcher(type, moniker, **fields)


def started(moniker: str | None = None, *, reason: str | None = None) -> EventMatcher:
    """``moniker`` started; ``reason`` is the start reason (e.g. ``"cm start"``)."""
    return EventMatcher("started", moniker, reason=reason)


def stopped(moniker: str | None = None, *, reason: str | None = None, disposition: str | None = None,
            exit_code: int | None = None, signal: int | None = None) -> EventMatcher:
    """``moniker``'s program stopped: ``reason`` ``idle``, ``crashed``, ``exited``, ...;
    ``disposition`` ``stopped`` / ``killed`` / ``killed_after_timeout``."""
    return EventMatcher("stopped", moniker, reason=reason, disposition=disposition,
                        exit_code=exit_code, signal=signal)


def restarted(moniker: str | None = None, *, attempt: int | None = None,
              after: str | None = None) -> EventMatcher:
    """The restart policy started ``moniker`` again (a ``started`` event whose reason is
    ``restart after <after> (attempt <attempt>)``)."""
    def check(e: dict) -> bool:
        reason = e.get("reason") or ""
        return (reason.startswith(f"restart after {after or ''}")
                and (attempt is None or reason.endswith(f"(attempt {attempt})")))

    shown = ", ".join(f"{k}={v!r}" for k, v in (("attempt", attempt), ("after", after)) if v is not None)
    return EventMatcher("started", moniker, predicate=_Named(check, shown or "restart"))


def restart_scheduled(moniker: str | None = None, *, attempt: int | None = None) -> EventMatcher:
    """A restart was scheduled (detail: ``attempt N in S s after <last stop>``)."""
    check = (lambda e: (e.get("detail") or "").startswith(f"attempt {attempt} ")) if attempt else None
    return EventMatcher("restart_scheduled", moniker,
                        predicate=_Named(check, f"attempt={attempt}") if check else None)


def restart_gave_up(moniker: str | None = None) -> EventMatcher:
    """The restart policy gave up (past ``max_restarts`` within ``within``)."""
    return EventMatcher("restart_gave_up", moniker)


def destroyed(moniker: str | None = None) -> EventMatcher:
    return EventMatcher("destroyed", moniker)


def capability_requested(provider: str | None = None, *, capability: str | None = None,
                         client: str | None = None) -> EventMatcher:
    """A client asked for a capability that ``provider`` provides (the event is the
    provider's; its reason reads ``'<client>' requested capability '<capability>'``)."""
    def check(e: dict) -> bool:
        reason = e.get("reason", "")
        return ((capability is None or reason.endswith(f" requested capability '{capability}'"))
                and (client is None or reason.startswith(f"'{client}' ")))

    matcher = EventMatcher("capability_requested", provider,
                           predicate=check if (capability or client) else None)
    shown = [f"{k}={v!r}" for k, v in (("capability", capability), ("client", client)) if v]
    if shown:
        matcher.predicate = _Named(check, ", ".join(shown))
    return matcher


class _Named:
    def __init__(self, func: Matcher, text: str):
        self._func, self._text = func, text

    def __call__(self, e: dict) -> bool:
        return self._func(e)

    def __repr__(self) -> str:
        return self._text
