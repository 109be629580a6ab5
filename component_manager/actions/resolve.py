"""Resolve: fetch and verify an instance's manifest, and create its static children.

Synchronous: resolution reads a local file (cached by the resolver), so it needs no action
set entry; it is idempotent and runs inside start, create and routing. ``RoutingView`` is
the tree as the pure route walk sees it: manifests resolved on demand, so a route may pass
through instances nobody has started yet.
"""

from __future__ import annotations

from ..errors import InstanceNotFound, InvalidRequest
from ..model import persist
from ..model.resolver import absolute_url
from ..model.states import State, transition
from ..moniker import Moniker
from .context import ActionContext

__all__ = ["RoutingView", "resolve", "take_manifest"]


def resolve(ctx: ActionContext, inst, records: dict | None = None) -> None:
    """Resolve ``inst`` if it is not yet; ``records`` (at boot) are the stored records by
    moniker. Raises UrlError for a URL or manifest that fails, InvalidRequest when shut down."""
    if inst.decl is not None:
        return
    if inst.state in (State.SHUTDOWN, State.DESTROYED):
        raise InvalidRequest(str(inst.moniker), f"is {inst.state.value}")
    resolved = ctx.resolver.resolve(inst.url)
    inst.decl = resolved.decl
    inst.package_dir = resolved.package_dir
    transition(inst, State.RESOLVED)  # unresolved -> resolved
    _add_static_children(ctx, inst, records)
    ctx.events.publish("resolved", inst, detail=resolved.decl.fingerprint)


def take_manifest(ctx: ActionContext, inst, resolved) -> None:
    """Give a resolved ``inst`` the manifest of ``resolved`` (a reload found it changed)
    and add the static children it newly declares. The caller has stopped the program if
    it ran, and removed the children the new manifest no longer has."""
    inst.decl = resolved.decl
    inst.package_dir = resolved.package_dir
    _add_static_children(ctx, inst, None)
    ctx.events.publish("resolved", inst, detail=resolved.decl.fingerprint)


def _add_static_children(ctx: ActionContext, inst, records: dict | None) -> None:
    for child_decl in inst.decl.children:
        if child_decl.name in inst.children:
            continue
        moniker = inst.moniker.child(child_decl.name)
        record = (records or {}).get(str(moniker)) or persist.load(ctx.store, str(moniker))
        url = absolute_url(child_decl.url, inst.url)
        inst.children[child_decl.name] = ctx.instantiate(moniker, inst, url, record)


class RoutingView:
    """``routing.route.TopologyView`` over the live tree, resolving manifests on demand."""

    def __init__(self, ctx: ActionContext) -> None:
        self._ctx = ctx

    def decl(self, moniker: Moniker):
        inst = self._ctx.find(moniker)
        resolve(self._ctx, inst)
        return inst.decl

    def parent(self, moniker: Moniker) -> Moniker | None:
        return moniker.parent

    def child_moniker(self, moniker: Moniker, child_name: str) -> Moniker | None:
        inst = self._ctx.find(moniker)
        resolve(self._ctx, inst)
        child = inst.children.get(child_name)
        return child.moniker if child is not None else None

    def collection_children(self, moniker: Moniker, collection: str) -> list[Moniker]:
        try:
            inst = self._ctx.find(moniker)
        except InstanceNotFound:
            return []
        return [c.moniker for c in inst.children.values() if c.collection == collection]
