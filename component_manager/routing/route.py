"""The pure route walk: from a ``use`` to the instance that provides the capability.

Like Fuchsia's routing crate, this reads manifests only, through a ``TopologyView``; it starts
nothing and touches no state, so it is tested with plain data. The walk:

    use from parent   -> the parent's offer to this child (or to its collection)
    offer from parent -> keep walking up: the grandparent's offer to the parent
    offer from #child -> walk down: that child's expose, then the expose's source
    expose from #child-> further down, recursively
    ... from self     -> the instance declares the capability: the route ends here
    ... from void     -> nobody provides it: "unavailable" (an error if it is required)
    ... from framework-> the manager itself provides it

Names may change at every hop (``as``): each step looks for the name the previous step used
as its source name. Kinds must match at every hop.

Example: ``/app/client`` uses protocol ``echo.Echo``; ``/app`` offers it from ``#server``;
``/app/server`` exposes it from self and declares it. ``route_use(view, client, use)`` is
``RouteResult("ok", source_moniker=/app/server, ...)`` with the hops::

    use      /app/client   protocol 'echo.Echo' from parent
    offer    /app          'echo.Echo' from #server to client
    expose   /app/server   'echo.Echo' from self
    declare  /app/server   protocol 'echo.Echo'

Had ``/app/server`` not exposed it, RouteError says: "'echo.Echo' used by '/app/client':
offered by '/app' from '#server', but '/app/server' does not expose it".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from ..errors import RouteError
from ..manifest.decl import CapabilityDecl, ComponentDecl, ExposeDecl, OfferDecl, UseDecl
from ..moniker import Moniker

__all__ = ["Hop", "RouteResult", "TopologyView", "route_expose", "route_use"]

HopAction = Literal["use", "offer", "expose", "declare", "framework", "void"]


class TopologyView(Protocol):
    """What the walk needs to know about the tree. ``decl`` may raise (for example when a
    manifest cannot be resolved); the walk lets that propagate."""

    def decl(self, moniker: Moniker) -> ComponentDecl: ...

    def parent(self, moniker: Moniker) -> Moniker | None: ...

    def child_moniker(self, moniker: Moniker, child_name: str) -> Moniker | None: ...

    def collection_children(self, moniker: Moniker, collection: str) -> list[Moniker]: ...


@dataclass(frozen=True, slots=True)
class Hop:
    """One step of a route: ``moniker`` did ``action`` with capability ``name``."""

    moniker: str
    action: HopAction
    name: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.action:<8} {self.moniker:<14} {self.name}" + (f" {self.detail}" if self.detail else "")


@dataclass(frozen=True, slots=True)
class RouteResult:
    """Where a route ends. ``status`` "ok": ``source_moniker`` provides ``source_name`` (its
    ``capability`` decl; None when ``source`` is "framework"). "unavailable": an optional
    capability that nobody provides (``source`` "void", ``source_moniker`` None)."""

    status: Literal["ok", "unavailable"]
    source_moniker: Moniker | None
    capability: CapabilityDecl | None
    source_name: str
    source: Literal["component", "framework", "void"] = "component"
    hops: tuple[Hop, ...] = field(default=())


@dataclass(slots=True)
class _Walk:
    """State of one walk: who asked, for what, and the hops so far."""

    view: TopologyView
    user: Moniker
    kind: str
    capability: str
    optional: bool
    hops: list[Hop] = field(default_factory=list)

    def hop(self, moniker: Moniker, action: HopAction, name: str, detail: str = "") -> None:
        self.hops.append(Hop(str(moniker), action, name, detail))

    def fail(self, reason: str) -> RouteError:
        error = RouteError(str(self.user), self.capability, [str(h) for h in self.hops], reason)
        error.trace = tuple(self.hops)  # the structured hops, for `cm route`
        return error

    def decl(self, moniker: Moniker) -> ComponentDecl:
        decl = self.view.decl(moniker)
        if decl is None:
            raise self.fail(f"'{moniker}' has no manifest")
        return decl

    def result(self, moniker: Moniker | None, name: str, cap: CapabilityDecl | None,
               source: str = "component") -> RouteResult:
        status = "unavailable" if source == "void" else "ok"
        return RouteResult(status, moniker, cap, name, source, tuple(self.hops))


def route_use(view: TopologyView, moniker: Moniker, use: UseDecl) -> RouteResult:
    """Walk the route of ``use`` (declared by ``moniker``) to its provider.

    Returns RouteResult ("ok", or "unavailable" for an optional use that ends in void or
    that nobody offers). Raises RouteError (with every hop walked and the broken one named)
    for a broken required route; lets errors of ``view.decl`` propagate.
    """
    walk = _Walk(view, moniker, use.kind, use.target_name or use.source_name,
                 use.availability == "optional")
    walk.hop(moniker, "use", use.source_name, f"{use.kind} from {_src(use.source, use.source_child)}"
             + (f" as '{use.target_name}'" if use.target_name and use.target_name != use.source_name else ""))
    name = use.source_name
    if use.source == "parent":
        return _from_parent(walk, moniker, name)
    if use.source == "self":
        return _declared(walk, moniker, name, f"'{moniker}' uses it from self but does not declare it")
    if use.source == "child":
        return _down_child(walk, moniker, use.source_child, name, f"used from '#{use.source_child}'")
    if use.source == "collection":
        return _down_collection(walk, moniker, use.source_child, name, f"used from '#{use.source_child}'")
    return _end(walk, moniker, use.source, name, f"'{moniker}' uses it from void")


def route_expose(view: TopologyView, moniker: Moniker, kind: str, name: str) -> RouteResult:
    """Walk what ``moniker`` exposes as ``name`` down to its provider (for ``cm route`` and
    for checking a realm's exposes). Raises RouteError as ``route_use`` does."""
    walk = _Walk(view, moniker, kind, name, optional=False)
    return _expose(walk, moniker, name, f"'{moniker}' does not expose it")


def _src(source: str, child: str) -> str:
    return f"#{child}" if source in ("child", "collection") else source


def _from_parent(walk: _Walk, moniker: Moniker, name: str) -> RouteResult:
    """``moniker`` gets ``name`` from its parent: find the parent's offer and follow it."""
    parent = walk.view.parent(moniker)
    if parent is None:
        return _missing(walk, moniker, name, f"'{moniker}' is the root: no parent offers it")
    target = moniker.leaf.collection or moniker.leaf.name
    target_type = "collection" if moniker.leaf.collection else "child"
    pdecl = walk.decl(parent)
    offer = _find_offer(pdecl, target_type, target, walk.kind, name)
    if offer is None:
        others = [o for o in pdecl.offers if o.target == target_type and o.target_child == target
                  and (o.target_name or o.source_name) == name]
        return _missing(walk, parent, name, f"'{parent}' does not offer it to '{target}'" + _kind_hint(others))
    walk.hop(parent, "offer", offer.source_name,
             f"from {_src(offer.source, offer.source_child)} to {target}"
             + (f" as '{name}'" if name != offer.source_name else ""))
    return _follow_offer(walk, parent, offer)


def _find_offer(decl: ComponentDecl, target: str, target_child: str, kind: str, name: str) -> OfferDecl | None:
    return next((o for o in decl.offers if o.target == target and o.target_child == target_child
                 and o.kind == kind and (o.target_name or o.source_name) == name), None)


def _follow_offer(walk: _Walk, parent: Moniker, offer: OfferDecl) -> RouteResult:
    name, child = offer.source_name, offer.source_child
    if offer.source == "parent":
        return _from_parent(walk, parent, name)
    if offer.source == "self":
        return _declared(walk, parent, name, f"'{parent}' offers it from self but does not declare it")
    if offer.source == "child":
        return _down_child(walk, parent, child, name, f"offered by '{parent}' from '#{child}'")
    if offer.source == "collection":
        return _down_collection(walk, parent, child, name, f"offered by '{parent}' from '#{child}'")
    return _end(walk, parent, offer.source, name, f"'{parent}' offers it from void")


def _down_child(walk: _Walk, moniker: Moniker, child: str, name: str, how: str) -> RouteResult:
    """Go down into static child ``child`` of ``moniker``, which must expose ``name``."""
    target = walk.view.child_moniker(moniker, child)
    if target is None:
        raise walk.fail(f"{how}, but '{moniker}' has no child '{child}'")
    return _expose(walk, target, name, f"{how}, but '{target}' does not expose it")


def _down_collection(walk: _Walk, moniker: Moniker, collection: str, name: str, how: str) -> RouteResult:
    """Go down into the one child of ``collection`` that exposes ``name``."""
    children = walk.view.collection_children(moniker, collection)
    providers = [c for c in children if _find_expose(walk.decl(c), walk.kind, name) is not None]
    if len(providers) != 1:
        found = "no child" if not providers else f"{len(providers)} children"
        raise walk.fail(f"{how}, but {found} in collection '{collection}' of '{moniker}' expose it")
    return _expose(walk, providers[0], name, "")


def _expose(walk: _Walk, moniker: Moniker, name: str, if_missing: str) -> RouteResult:
    """``moniker`` must expose ``name`` (of the walk's kind); follow that expose's source."""
    decl = walk.decl(moniker)
    expose = _find_expose(decl, walk.kind, name)
    if expose is None:
        others = [e for e in decl.exposes if (e.target_name or e.source_name) == name]
        raise walk.fail(if_missing + _kind_hint(others))
    src, child = expose.source_name, expose.source_child
    walk.hop(moniker, "expose", src, f"from {_src(expose.source, child)}"
             + (f" as '{name}'" if name != src else ""))
    if expose.source == "self":
        return _declared(walk, moniker, src, f"'{moniker}' exposes it from self but does not declare it")
    if expose.source == "child":
        return _down_child(walk, moniker, child, src, f"exposed by '{moniker}' from '#{child}'")
    if expose.source == "collection":
        return _down_collection(walk, moniker, child, src, f"exposed by '{moniker}' from '#{child}'")
    if expose.source == "parent":
        raise walk.fail(f"'{moniker}' exposes it from parent, which an expose cannot do")
    return _end(walk, moniker, expose.source, src, f"'{moniker}' exposes it from void")


def _kind_hint(same_name: list) -> str:
    """" (only as directory)" when a step has the capability's name, but of another kind."""
    kinds = sorted({item.kind for item in same_name})
    return f" (only as {' and '.join(kinds)})" if kinds else ""


def _find_expose(decl: ComponentDecl, kind: str, name: str) -> ExposeDecl | None:
    return next((e for e in decl.exposes if e.kind == kind and (e.target_name or e.source_name) == name), None)


def _declared(walk: _Walk, moniker: Moniker, name: str, if_missing: str) -> RouteResult:
    """The route ends at ``moniker``, which must declare ``name`` of the walk's kind."""
    decl = walk.decl(moniker)
    cap = decl.capability(walk.kind, name)
    if cap is None:
        raise walk.fail(if_missing + _kind_hint([c for c in decl.capabilities if c.name == name]))
    walk.hop(moniker, "declare", name, walk.kind)
    return walk.result(moniker, name, cap)


def _end(walk: _Walk, moniker: Moniker, source: str, name: str, void_reason: str) -> RouteResult:
    """A route ending in the framework (ok) or in void (unavailable, or an error if required)."""
    if source == "framework":
        walk.hop(moniker, "framework", name, "provided by the component manager")
        return walk.result(moniker, name, None, "framework")
    if source != "void":
        raise walk.fail(f"'{moniker}' names an unknown source '{source}'")
    walk.hop(moniker, "void", name, "nobody provides it")
    if not walk.optional:
        raise walk.fail(f"{void_reason}, but '{walk.user}' requires it")
    return walk.result(None, name, None, "void")


def _missing(walk: _Walk, moniker: Moniker, name: str, reason: str) -> RouteResult:
    """Nobody offers it: unavailable for an optional use, else a RouteError."""
    if not walk.optional:
        raise walk.fail(reason)
    walk.hop(moniker, "void", name, f"not offered ({reason})")
    return walk.result(None, name, None, "void")
