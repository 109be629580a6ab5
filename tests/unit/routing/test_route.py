"""The pure route walk over plain manifests: successes, and every way a route breaks."""

import pytest

from component_manager.errors import InstanceNotFound, RouteError
from component_manager.manifest.decl import (
    CapabilityDecl, ChildDecl, CollectionDecl, ComponentDecl, ExposeDecl, OfferDecl, UseDecl,
)
from component_manager.moniker import Moniker, parse
from component_manager.routing.route import Hop, route_expose, route_use

class DictView:
    """The real TopologyView protocol over a dict; dynamic children are monikers with a
    collection step (``/app/workers:job``)."""

    def __init__(self, decls: dict):
        self.decls = {parse(m): d for m, d in decls.items()}

    def decl(self, moniker: Moniker):
        if moniker not in self.decls:
            raise InstanceNotFound(str(moniker))
        return self.decls[moniker]

    def parent(self, moniker: Moniker):
        return moniker.parent

    def child_moniker(self, moniker: Moniker, child_name: str):
        child = moniker.child(child_name)
        return child if child in self.decls else None

    def collection_children(self, moniker: Moniker, collection: str):
        return sorted(m for m in self.decls
                      if m.parent == moniker and m.leaf.collection == collection)


ECHO = "echo.Echo"
PROTO = CapabilityDecl("protocol", ECHO)


def use(name=ECHO, **kw):
    return UseDecl("protocol", name, target_name=kw.pop("target_name", name), **kw)


def offer(to, source, name=ECHO, child="", as_=None, **kw):
    return OfferDecl(kw.pop("kind", "protocol"), name, source, kw.pop("target", "child"), to,
                     source_child=child, target_name=as_ or name, **kw)


def expose(source, name=ECHO, child="", as_=None, kind="protocol"):
    return ExposeDecl(kind, name, source, source_child=child, target_name=as_ or name)


def children(*names):
    return tuple(ChildDecl(n, f"#meta/{n}.cm") for n in names)


def realm(app_offers, server=None, client_use=None):
    """/app with children client and server; the default routes echo from server to client."""
    return DictView({
        "/": ComponentDecl(children=children("app")),
        "/app": ComponentDecl(children=children("client", "server"), offers=tuple(app_offers)),
        "/app/client": ComponentDecl(uses=(client_use or use(),)),
        "/app/server": server if server is not None else
        ComponentDecl(capabilities=(PROTO,), exposes=(expose("self"),)),
    })


def walk(view, moniker="/app/client", u=None):
    m = parse(moniker)
    return route_use(view, m, u or view.decl(m).uses[0])


def broken(view, moniker="/app/client", u=None) -> RouteError:
    with pytest.raises(RouteError) as info:
        walk(view, moniker, u)
    return info.value


# ---- routes that work ---------------------------------------------------------------------

def test_sibling_route_ends_at_the_declaring_server():
    result = walk(realm([offer("client", "child", child="server")]))
    assert result.status == "ok"
    assert result.source_moniker == parse("/app/server")
    assert result.capability == PROTO and result.source_name == ECHO
    assert [(h.moniker, h.action) for h in result.hops] == [
        ("/app/client", "use"), ("/app", "offer"), ("/app/server", "expose"), ("/app/server", "declare")]


def test_three_levels_up_one_branch_and_down_another():
    """/a/b/c/user uses 'x'; it comes from /a/p/q/provider, which declares it as 'real'."""
    view = DictView({
        "/": ComponentDecl(children=children("a")),
        "/a": ComponentDecl(children=children("b", "p"),
                            offers=(offer("b", "child", name="from-p", child="p", as_="mid"),)),
        "/a/b": ComponentDecl(children=children("c"), offers=(offer("c", "parent", name="mid"),)),
        "/a/b/c": ComponentDecl(children=children("user"),
                                offers=(offer("user", "parent", name="mid", as_="x"),)),
        "/a/b/c/user": ComponentDecl(uses=(use("x"),)),
        "/a/p": ComponentDecl(children=children("q"), exposes=(expose("child", "q-out", "q", as_="from-p"),)),
        "/a/p/q": ComponentDecl(children=children("provider"),
                                exposes=(expose("child", "real", "provider", as_="q-out"),)),
        "/a/p/q/provider": ComponentDecl(capabilities=(CapabilityDecl("protocol", "real"),),
                                         exposes=(expose("self", "real"),)),
    })
    result = walk(view, "/a/b/c/user")
    assert result.source_moniker == parse("/a/p/q/provider")
    assert result.source_name == "real"
    assert [(h.moniker, h.action, h.name) for h in result.hops] == [
        ("/a/b/c/user", "use", "x"),
        ("/a/b/c", "offer", "mid"),
        ("/a/b", "offer", "mid"),
        ("/a", "offer", "from-p"),
        ("/a/p", "expose", "q-out"),
        ("/a/p/q", "expose", "real"),
        ("/a/p/q/provider", "expose", "real"),
        ("/a/p/q/provider", "declare", "real"),
    ]
    assert all(str(h) for h in result.hops)


def test_offer_from_self_and_use_from_child_and_from_self():
    view = DictView({
        "/": ComponentDecl(capabilities=(CapabilityDecl("storage", "data"),), children=children("app"),
                           offers=(offer("app", "self", name="data", kind="storage"),)),
        "/app": ComponentDecl(uses=(UseDecl("storage", "data", target_name="data"),)),
    })
    result = walk(view, "/app")
    assert (result.source_moniker, result.capability.kind) == (parse("/"), "storage")

    server = ComponentDecl(capabilities=(PROTO,), exposes=(expose("self"),))
    view = DictView({"/": ComponentDecl(children=children("server"),
                                        uses=(use(source="child", source_child="server"),)),
                     "/server": server})
    assert walk(view, "/").source_moniker == parse("/server")
    view = DictView({"/": ComponentDecl(capabilities=(PROTO,), uses=(use(source="self"),))})
    assert walk(view, "/").source_moniker == parse("/")


def test_dynamic_child_gets_offers_made_to_its_collection():
    view = DictView({
        "/": ComponentDecl(children=children("server"), collections=(CollectionDecl("workers"),),
                           offers=(offer("workers", "child", child="server", target="collection"),)),
        "/server": ComponentDecl(capabilities=(PROTO,), exposes=(expose("self"),)),
        "/workers:job-1": ComponentDecl(uses=(use(),)),
    })
    assert walk(view, "/workers:job-1").source_moniker == parse("/server")
    # an offer to a static child of the same name is not an offer to the collection
    view.decls[parse("/")] = ComponentDecl(children=children("server", "workers"),
                                           offers=(offer("workers", "child", child="server"),))
    assert broken(view, "/workers:job-1").reason == "'/' does not offer it to 'workers'"


def test_offer_from_a_collection_finds_the_one_child_that_exposes_it():
    view = DictView({
        "/": ComponentDecl(children=children("client"), collections=(CollectionDecl("pool"),),
                           offers=(offer("client", "collection", child="pool"),)),
        "/client": ComponentDecl(uses=(use(),)),
        "/pool:a": ComponentDecl(),
        "/pool:b": ComponentDecl(capabilities=(PROTO,), exposes=(expose("self"),)),
    })
    assert walk(view, "/client").source_moniker == parse("/pool:b")
    del view.decls[parse("/pool:b")]
    assert broken(view, "/client").reason == (
        "offered by '/' from '#pool', but no child in collection 'pool' of '/' expose it")


def test_framework_source():
    result = walk(realm([offer("client", "framework")]))
    assert (result.status, result.source, result.capability) == ("ok", "framework", None)
    assert result.source_moniker == parse("/app")


def test_route_expose_walks_down_from_an_instance():
    view = realm([offer("client", "child", child="server")])
    result = route_expose(view, parse("/app/server"), "protocol", ECHO)
    assert result.source_moniker == parse("/app/server")
    with pytest.raises(RouteError) as info:
        route_expose(view, parse("/app/client"), "protocol", ECHO)
    assert info.value.reason == "'/app/client' does not expose it"


# ---- unavailable optional routes ----------------------------------------------------------

def test_optional_use_offered_from_void_is_unavailable():
    result = walk(realm([offer("client", "void", availability="optional")],
                        client_use=use(availability="optional")))
    assert (result.status, result.source_moniker, result.source) == ("unavailable", None, "void")
    assert result.hops[-1] == Hop("/app", "void", ECHO, "nobody provides it")


def test_optional_use_nobody_offers_is_unavailable():
    result = walk(realm([], client_use=use(availability="optional")))
    assert result.status == "unavailable"
    assert [h.action for h in result.hops] == ["use", "void"]


def test_required_use_offered_from_void_is_an_error():
    e = broken(realm([offer("client", "void", availability="optional")]))
    assert e.reason == "'/app' offers it from void, but '/app/client' requires it"


# ---- each way of breaking, with the exact reason -------------------------------------------

def test_missing_offer():
    e = broken(realm([]))
    assert e.reason == "'/app' does not offer it to 'client'"
    assert str(e) == "'echo.Echo' used by '/app/client': '/app' does not offer it to 'client'"
    assert e.moniker == "/app/client" and e.capability == ECHO
    assert len(e.hops) == 1 and e.trace[0].action == "use"


def test_offer_to_another_child_is_not_an_offer_to_this_one():
    e = broken(realm([offer("server", "void")]))
    assert e.reason == "'/app' does not offer it to 'client'"


def test_missing_expose():
    e = broken(realm([offer("client", "child", child="server")], server=ComponentDecl(capabilities=(PROTO,))))
    assert e.reason == "offered by '/app' from '#server', but '/app/server' does not expose it"
    assert [h.action for h in e.trace] == ["use", "offer"]


def test_expose_from_self_without_declaring():
    e = broken(realm([offer("client", "child", child="server")],
                     server=ComponentDecl(exposes=(expose("self"),))))
    assert e.reason == "'/app/server' exposes it from self but does not declare it"


def test_offer_from_self_without_declaring():
    e = broken(realm([offer("client", "self")]))
    assert e.reason == "'/app' offers it from self but does not declare it"


def test_offer_from_a_child_that_does_not_exist():
    e = broken(realm([offer("client", "child", child="nobody")]))
    assert e.reason == "offered by '/app' from '#nobody', but '/app' has no child 'nobody'"


def test_deeper_missing_expose_names_the_exposing_hop():
    view = realm([offer("client", "child", child="server")],
                 server=ComponentDecl(children=children("backend"), exposes=(expose("child", child="backend"),)))
    view.decls[parse("/app/server/backend")] = ComponentDecl(capabilities=(PROTO,))
    e = broken(view)
    assert e.reason == "exposed by '/app/server' from '#backend', but '/app/server/backend' does not expose it"


def test_wrong_name_at_the_offer():
    e = broken(realm([offer("client", "child", child="server", as_="echo.Other")]))
    assert e.reason == "'/app' does not offer it to 'client'"


def test_wrong_name_at_the_expose():
    e = broken(realm([offer("client", "child", child="server")],
                     server=ComponentDecl(capabilities=(PROTO,), exposes=(expose("self", as_="echo.Other"),))))
    assert e.reason == "offered by '/app' from '#server', but '/app/server' does not expose it"


def test_wrong_kind_never_matches_and_says_so():
    e = broken(realm([offer("client", "child", child="server", kind="directory")]))
    assert e.reason == "'/app' does not offer it to 'client' (only as directory)"
    server = ComponentDecl(capabilities=(CapabilityDecl("directory", ECHO),),
                           exposes=(expose("self", kind="directory"),))
    e = broken(realm([offer("client", "child", child="server")], server=server))
    assert e.reason == "offered by '/app' from '#server', but '/app/server' does not expose it (only as directory)"
    server = ComponentDecl(capabilities=(CapabilityDecl("directory", ECHO),), exposes=(expose("self"),))
    e = broken(realm([offer("client", "child", child="server")], server=server))
    assert e.reason == "'/app/server' exposes it from self but does not declare it (only as directory)"


def test_use_from_a_child_that_does_not_expose_it():
    view = DictView({"/": ComponentDecl(children=children("server"),
                                        uses=(use(source="child", source_child="server"),)),
                     "/server": ComponentDecl()})
    assert broken(view, "/").reason == "used from '#server', but '/server' does not expose it"


def test_use_from_self_without_declaring():
    view = DictView({"/": ComponentDecl(uses=(use(source="self"),))})
    assert broken(view, "/").reason == "'/' uses it from self but does not declare it"


def test_route_past_the_root():
    view = realm([offer("client", "parent")])
    assert broken(view).reason == "'/' does not offer it to 'app'"
    view = DictView({"/": ComponentDecl(uses=(use(),))})
    assert broken(view, "/").reason == "'/' is the root: no parent offers it"


def test_errors_of_the_view_propagate():
    view = realm([offer("client", "child", child="server")])
    view.child_moniker = lambda m, name: m.child(name)  # claims a child it cannot describe
    del view.decls[parse("/app/server")]
    with pytest.raises(InstanceNotFound):
        walk(view)
