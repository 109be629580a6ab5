"""Resolve: fetch and verify an instance's manifest, and create its static children.

Synchronous: resolution reads a local file (cached by the resolver), so it needs no action
set entry; it is idempotent and runs inside start, create and routing.
"""

from __future__ import annotations

from ..errors import InvalidRequest
from ..model.states import State, transition


def resolve(model, inst, records=None) -> None:
    """Resolve ``inst`` if it is not yet. Raises UrlError for a URL or manifest that fails."""
    if inst.decl is not None:
        return
    if inst.state in (State.SHUTDOWN, State.DESTROYED):
        raise InvalidRequest(str(inst.moniker), f"is {inst.state.value}")
    resolved = model.resolver.resolve(inst.url)
    inst.decl = resolved.decl
    inst.package_dir = resolved.package_dir
    transition(inst, State.RESOLVED)  # unresolved -> resolved
    model.add_static_children(inst, records)
    model.events.publish("resolved", inst, detail=resolved.decl.fingerprint)
