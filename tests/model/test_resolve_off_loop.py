"""A manifest is read off the event loop: while one resolution waits on its file, other
requests are served."""

import asyncio
import threading

from component_manager import actions
from component_manager.errors import UrlError
from component_manager.manifest.decl import CollectionDecl, ComponentDecl


class SlowResolver:
    """The model's resolver, except that ``slow`` takes until ``gate`` opens (at most 5 s)."""

    def __init__(self, inner):
        self.inner = inner
        self.gate = threading.Event()
        self.slow = True

    def cached(self, url):
        return None if url.endswith("/slow") else self.inner.cached(url)

    def resolve(self, url):
        if url.endswith("/slow") and self.slow and not self.gate.wait(timeout=5):
            raise UrlError(url, "the event loop was blocked while this file was read")
        return self.inner.resolve(url)


async def test_other_requests_are_served_while_a_manifest_is_read(make_model):
    root = ComponentDecl(collections=(CollectionDecl("workers"),))
    model = make_model({"root": root, "slow": ComponentDecl(), "fast": ComponentDecl()})
    model.resolver = SlowResolver(model.resolver)
    slow = asyncio.create_task(actions.create_child(model, "/", "workers", "s", "slow"))
    await asyncio.sleep(0)  # the slow create is now waiting on its file
    fast = await asyncio.wait_for(actions.create_child(model, "/", "workers", "f", "fast"), 10)
    assert fast.moniker_text == "/workers:f" and not slow.done()
    model.resolver.gate.set()
    assert (await asyncio.wait_for(slow, 10)).moniker_text == "/workers:s"


async def test_a_route_walk_fetches_the_manifests_it_needs_off_the_loop(make_model):
    """A route into a collection reads the manifest of a child nobody has resolved yet."""
    import time

    from component_manager.manifest.decl import (CapabilityDecl, ChildDecl, ExposeDecl, OfferDecl,
                                                 UseDecl)
    from component_manager.routing.route import route_use

    root = ComponentDecl(children=(ChildDecl("a", "a"),), collections=(CollectionDecl("workers"),),
                         offers=(OfferDecl("protocol", "p", "collection", "child", "a",
                                           source_child="workers", target_name="p"),))
    a = ComponentDecl(uses=(UseDecl("protocol", "p", target_name="p"),))
    b = ComponentDecl(capabilities=(CapabilityDecl("protocol", "p"),),
                      exposes=(ExposeDecl("protocol", "p", "self", target_name="p"),))
    model = make_model({"root": root, "a": a, "slow": b})
    model.resolver = SlowResolver(model.resolver)
    model.resolver.slow = False
    await actions.create_child(model, "/", "workers", "b", "slow")
    model.resolver.slow = True
    assert model.find("/workers:b").decl is None
    client = model.find("/a")
    walk = asyncio.create_task(actions.walk_routes(model, lambda view: route_use(view, client.moniker, a.uses[0])))
    began = time.monotonic()
    await asyncio.sleep(0.01)  # the loop turns while /workers:b's manifest is being read
    assert time.monotonic() - began < 2 and not walk.done()
    model.resolver.gate.set()
    result = await asyncio.wait_for(walk, 10)
    assert result.status == "ok" and str(result.source_moniker) == "/workers:b"
