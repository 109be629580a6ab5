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

    def cached(self, url):
        return None if url.endswith("/slow") else self.inner.cached(url)

    def resolve(self, url):
        if url.endswith("/slow") and not self.gate.wait(timeout=5):
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
