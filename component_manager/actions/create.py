"""Create: add a dynamic child ``parent/collection:name`` from a URL; durable on return.

The URL is resolved first, so a bad one fails before anything exists. The child's record,
its incarnation (one more than the last child of that name in that collection) and its
``created`` event share one durable commit. A child of a ``single_run`` collection starts at
once; any other starts when asked to (``start=True``) or on its first capability request.
"""

from __future__ import annotations

import sys

from ..errors import CollectionNotFound, InstanceAlreadyExists, InvalidRequest
from ..model import persist
from ..model.instance import Instance, new_instance_id
from ..model.reasons import START_REQUESTED, START_SINGLE_RUN
from ..model.resolver import absolute_url
from ..model.states import State
from ..moniker import check_name
from .context import ActionContext
from .resolve import fetch, resolve_async
from .start import start as start_instance

__all__ = ["create_child"]


async def create_child(ctx: ActionContext, parent_moniker: str, collection: str, name: str, url: str,
                       start: bool = False) -> Instance:
    """Raises InstanceNotFound, CollectionNotFound, InstanceAlreadyExists, MonikerError,
    UrlError (the URL or its manifest), InvalidRequest (the parent is shut down), and what a
    start raises."""
    parent = ctx.find(parent_moniker)
    check_name(collection, "collection name")
    check_name(name, "child name")
    await resolve_async(ctx, parent)
    _check_open(parent)
    coll = parent.decl.collection(collection)
    if coll is None:
        raise CollectionNotFound(str(parent.moniker), collection)
    text = _child_text(parent.moniker_text, collection, name)
    _check_free(ctx, text)
    full_url = sys.intern(absolute_url(url, parent.url))  # one string for all children of one URL
    await fetch(ctx, full_url)  # a bad URL fails here, before anything exists
    _check_free(ctx, text)  # again, after the wait: another create may have taken the name,
    _check_open(parent)  # or a shutdown the parent
    batch = ctx.store.new_batch()  # one durable commit: incarnation, record, event
    incarnation = batch.next_incarnation(parent.moniker_text, collection)
    child = Instance(None, parent, full_url, new_instance_id(), ctx.owner, incarnation, coll.name, text)
    persist.save(batch, child)
    event = ctx.events.stage(batch, "created", child, detail=full_url)
    ctx.creating.add(text)  # taken while its commit is in flight
    try:
        await ctx.store.commit(batch)
    finally:
        ctx.creating.discard(text)
    ctx.adopt(child)
    ctx.events.deliver(event)
    if coll.durability == "single_run":
        await start_instance(ctx, child, START_SINGLE_RUN)
    elif start:
        await start_instance(ctx, child, START_REQUESTED)
    return child


def _child_text(parent_text: str, collection: str, name: str) -> str:
    """The canonical moniker text of ``parent_text``'s child ``collection:name``: what
    ``str(parent.moniker.child(name, collection))`` gives, without the Moniker."""
    return f"{'' if parent_text == '/' else parent_text}/{collection}:{name}"


def _check_free(ctx: ActionContext, text: str) -> None:
    if text in ctx.index or text in ctx.creating:
        raise InstanceAlreadyExists(text)


def _check_open(parent: Instance) -> None:
    if parent.state in (State.SHUTDOWN, State.DESTROYED):
        raise InvalidRequest(str(parent.moniker), f"is {parent.state.value}; it cannot have new children")
