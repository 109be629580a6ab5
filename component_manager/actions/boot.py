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
from ..moniker import ROOT, ChildName, Moniker
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
        # In the store's (moniker) order, a parent comes before its descendants: "/a" sorts
        # before "/a/..." as a prefix does. Monikers are the store's own, canonical texts.
        for moniker_text, record in records.items():
            if record.collection and moniker_text not in ctx.index:
                _restore_dynamic(ctx, moniker_text, record, records)
        recover_processes(ctx, records)
    finally:
        if collecting:
            gc.enable()


def _restore_dynamic(ctx: ActionContext, moniker_text: str, record, records: dict) -> None:
    parent_text, _, leaf_text = moniker_text.rpartition("/")
    parent = ctx.index.get(parent_text or "/")
    if parent is None:
        ctx.forget_subtree(moniker_text, records)  # its parent is gone: so is it
        return
    moniker = Moniker((*parent.moniker, ChildName.parse(leaf_text)))
    if parent.decl is None:  # resolve each parent once, not once per child
        _resolve_quietly(ctx, parent, records)
    coll = parent.decl.collection(record.collection) if parent.decl else None
    if coll is None:
        log.warning("%s: collection %r no longer declared; keeping record", moniker, record.collection)
        return
    if coll.durability != "persistent":
        ctx.forget_subtree(moniker_text, records)  # transient and single_run end with a manager
        return
    parent.children[leaf_text] = ctx.instantiate(moniker, parent, record.url, record, moniker_text)


def _resolve_quietly(ctx: ActionContext, inst, records: dict) -> None:
    try:
        resolve(ctx, inst, records)
    except Exception as e:  # noqa: BLE001 - reported, and the manager keeps running
        log.warning("cannot resolve %s: %s", inst.moniker, e)
        return
    for child in list(inst.children.values()):
        if not child.is_dynamic:
            _resolve_quietly(ctx, child, records)
