"""Resolve: fetch and verify an instance's manifest, and create its static children.

Resolution needs no action set entry: it is idempotent and runs inside start, create and
routing. The requests (start, create, resolve, route) fetch the manifest with
``resolve_async``: read and compiled in a worker thread, so the event loop never waits on a
file; the cache answers on the loop. ``RoutingView`` is the tree as the pure route walk
sees it: manifests resolved on demand (on the loop: a read the resolver bounds to a regular
file of at most 1 MiB under a package root), so a route may pass through instances nobody
has started yet.
"""

from __future__ import annotations

import asyncio

from ..errors import InstanceNotFound, InvalidRequest
from ..model import persist
from ..model.resolver import absolute_url
from ..model.states import State, transition
from ..moniker import Moniker
from .context import ActionContext

__all__ = ["RoutingView", "fetch", "resolve", "resolve_async"]


async def fetch(ctx: ActionContext, url: str):
    """The ResolvedComponent of an absolute ``url``, read off the event loop. Raises UrlError."""
    hit = ctx.resolver.cached(url)
    return hit if hit is not None else await asyncio.to_thread(ctx.resolver.resolve, url)


async def resolve_async(ctx: ActionContext, inst) -> None:
    """``resolve``, with the manifest fetched off the event loop first."""
    if inst.decl is None:
        await fetch(ctx, inst.url)
    resolve(ctx, inst)


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
