"""Resolve: fetch and verify an instance's manifest, and create its static children.

Resolution needs no action set entry: it is idempotent and runs inside start, create and
routing. Requests fetch manifests with ``resolve_async``: read and compiled in a worker
thread, so the event loop never waits on a file; the cache answers on the loop.
``RoutingView`` is the tree as the pure route walk sees it, manifests resolved on demand, so
a route may pass through instances nobody has started yet; ``walk_routes`` (connect, ``cm
route``) fetches each of those off the loop too. Walks that stay inline (a start's config
and storage, which route through its resolved ancestors; ``cm show``) read on the loop,
bounded by the resolver to a regular file of at most 1 MiB under a package root.
"""

from __future__ import annotations

import asyncio

from ..errors import InstanceNotFound, InvalidRequest
from ..model import persist
from ..model.resolver import absolute_url
from ..model.states import State, transition
from ..moniker import Moniker
from .context import ActionContext

__all__ = ["RoutingView", "fetch", "resolve", "resolve_async", "take_manifest", "walk_routes"]


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
        inst.add_child(child_decl.name, ctx.instantiate(moniker, inst, url, record))


class Unresolved(Exception):
    """A walk reached ``inst``, whose manifest is not fetched yet (see ``walk_routes``)."""

    def __init__(self, inst) -> None:
        super().__init__(str(inst.moniker))
        self.inst = inst


async def walk_routes(ctx: ActionContext, walk):
    """``walk(view)``, a pure route walk, with every manifest it needs fetched off the event
    loop: when it reaches an unresolved instance, that one is resolved and the walk begins
    again (a walk is cheap; it restarts once per instance it resolves)."""
    while True:
        try:
            return walk(RoutingView(ctx, inline=False))
        except Unresolved as e:
            await resolve_async(ctx, e.inst)


class RoutingView:
    """``routing.route.TopologyView`` over the live tree, resolving manifests on demand:
    on the event loop (``inline``), or by raising Unresolved for ``walk_routes``."""

    def __init__(self, ctx: ActionContext, inline: bool = True) -> None:
        self._ctx = ctx
        self._inline = inline

    def _resolved(self, moniker: Moniker):
        inst = self._ctx.find(moniker)
        if inst.decl is None and not self._inline:
            raise Unresolved(inst)
        resolve(self._ctx, inst)
        return inst

    def decl(self, moniker: Moniker):
        return self._resolved(moniker).decl

    def parent(self, moniker: Moniker) -> Moniker | None:
        return moniker.parent

    def child_moniker(self, moniker: Moniker, child_name: str) -> Moniker | None:
        inst = self._resolved(moniker)
        child = inst.children.get(child_name)
        return child.moniker if child is not None else None

    def collection_children(self, moniker: Moniker, collection: str) -> list[Moniker]:
        try:
            inst = self._ctx.find(moniker)
        except InstanceNotFound:
            return []
        return [c.moniker for c in inst.children.values() if c.collection == collection]
