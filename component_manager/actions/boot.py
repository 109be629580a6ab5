"""Boot: rebuild the tree from the root URL and the stored records, recover the programs a
dead manager left running, and forget transient children. Run once, before serving.

Recovery (``recover.py``): destroys a dead manager committed but did not finish are
finished first; once the tree is built, every program it left running is adopted (same
pid, still serving) or, if it cannot be, stopped and its stop recorded.
"""

from __future__ import annotations

import gc
import logging

from ..model import persist
from ..moniker import ROOT
from .context import ActionContext
from .recover import finish_destroys, recover_processes
from .resolve import resolve

log = logging.getLogger("component_manager.actions")

__all__ = ["boot"]


def boot(ctx: ActionContext) -> None:
    """Build the tree; a broken manifest leaves its instance unresolved, the manager up.

    The cyclic garbage collector is paused meanwhile: building 100,000 instances would
    otherwise run it over and over on a growing heap that holds no garbage (0.5 s)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        finish_destroys(ctx)
        records = persist.load_all(ctx.store)
        ctx.root = ctx.instantiate(ROOT, None, ctx.root_url, records.get("/"))
        _resolve_quietly(ctx, ctx.root, records)
        _restore_dynamic(ctx, records)
        recover_processes(ctx, records)
    finally:
        if collecting:
            gc.enable()


def _restore_dynamic(ctx: ActionContext, records: dict) -> None:
    """Every stored dynamic child whose parent is in the tree and whose collection is
    persistent, with its id, incarnation and last stop; the others' records go.

    In the store's (moniker) order, a parent comes before its descendants: "/a" sorts
    before "/a/..." as a prefix does. Monikers are the store's own, canonical texts.
    Siblings in one collection are neighbours there, so their parent and its collection
    are looked up once for all of them (100,000 children of one collection: one lookup)."""
    index, siblings, where = ctx.index, None, None
    for moniker_text, record in records.items():
        if not record.collection or moniker_text in index:
            continue
        parent_text, _, leaf = moniker_text.rpartition("/")
        if siblings != (parent_text, record.collection):
            siblings = (parent_text, record.collection)
            where = _placement(ctx, parent_text or "/", record.collection, records)
        if where is None:  # its parent is gone, or its collection ends with a manager
            ctx.forget_subtree(moniker_text, records)
        elif where is False:
            log.warning("%s: collection %r no longer declared; keeping record", moniker_text, record.collection)
        else:
            where.add_child(leaf, ctx.instantiate(None, where, record.url, record, moniker_text))


def _placement(ctx: ActionContext, parent_text: str, collection: str, records: dict):
    """Where the stored children of ``parent_text``'s ``collection`` go: the parent (a
    persistent collection), None (they end: no parent, or not persistent), or False (the
    collection is no longer declared: their records are kept)."""
    parent = ctx.index.get(parent_text)
    if parent is None:
        return None
    if parent.decl is None:  # resolve each parent once, not once per child
        _resolve_quietly(ctx, parent, records)
    coll = parent.decl.collection(collection) if parent.decl else None
    if coll is None:
        return False
    return parent if coll.durability == "persistent" else None


def _resolve_quietly(ctx: ActionContext, inst, records: dict) -> None:
    try:
        resolve(ctx, inst, records)
    except Exception as e:  # noqa: BLE001 - reported, and the manager keeps running
        log.warning("cannot resolve %s: %s", inst.moniker, e)
        return
    for child in list(inst.children.values()):
        if not child.is_dynamic:
            _resolve_quietly(ctx, child, records)
