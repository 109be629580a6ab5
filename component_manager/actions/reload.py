"""Reload: read the manifests and program files again, and restart only what changed.

For each instance of the realm (``cm reload [MONIKER]``, the ``Reload`` RPC, or the
manager's ``--watch``), in order:

1. Resolve every manifest again (read in a worker thread, whatever their size and mtime
   say). Any that is broken, or gone, makes the reload change
   nothing: it raises ManifestError with every problem found (``file:line: key: message``).
2. An instance is *changed* when its manifest's fingerprint changed, or, while its program
   runs, its program files (``runners/files.py``) or its config values did. A changed
   running program is stopped with ``package_updated`` and started again on the new version
   (start reason ``restarted on the updated package``); a changed stopped one just takes the
   new manifest. A running instance without a program (a realm) takes it in place.
3. Children the new manifest no longer declares (or declares with another URL), and the
   dynamic children of collections it dropped, are destroyed; children it adds are created.
4. Everything else keeps running, with the same pid. Children stopped because their parent
   was restarted are started again after it.

Scenario: ``components/counter/counter.cml`` gets another ``idle_timeout`` while
``/counter`` and ``/echo_server`` run. The reload stops ``/counter`` (``package_updated``),
starts it again with the new manifest, and reports ``/echo_server`` unchanged: its pid is
the one it had.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from ..errors import CmError, ManifestError, Problem, UrlError
from ..model.config import config_values
from ..model.reasons import START_PACKAGE_UPDATED, StopReason
from ..model.resolver import absolute_url, url_path
from ..model.states import State, transition
from ..runners.files import files_stamp
from .context import ActionContext
from .remove import remove
from .resolve import RoutingView, resolve, take_manifest
from .shutdown import shutdown
from .start import start
from .stop import stop

log = logging.getLogger("component_manager.actions")

__all__ = ["ReloadReport", "reload"]

START_WITH_PARENT = "restarted with its parent, whose package was updated"


@dataclass
class ReloadReport:
    restarted: list[str] = field(default_factory=list)  # were running, changed, running again
    updated: list[str] = field(default_factory=list)  # changed, not running: new manifest taken
    created: list[str] = field(default_factory=list)
    destroyed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # monikers whose start again failed
    errors: list[str] = field(default_factory=list)  # "moniker: why", one per failed


async def reload(ctx: ActionContext, top) -> ReloadReport:
    """Reload the realm of ``top``. Raises ManifestError (every problem; nothing changed)."""
    scope = [i for i in top.walk() if i.state not in (State.SHUTDOWN, State.DESTROYED)]
    fresh = await asyncio.to_thread(_resolve_all, ctx, scope)  # file reads: off the event loop
    was_running = {i.moniker_text for i in scope if i.run is not None}
    changed = [i for i in scope if _changed(i, fresh[i.url])]
    report = ReloadReport()
    for inst in changed:
        if inst.state not in (State.SHUTDOWN, State.DESTROYED):  # not dropped by its parent
            await _take_new_version(ctx, inst, fresh[inst.url], report, was_running)
    for inst in scope:  # config comes from parents' manifests too: compare once all are new
        if inst not in changed and inst.run is not None and _config_changed(ctx, inst):
            changed.append(inst)
            await stop(ctx, inst, StopReason.PACKAGE_UPDATED, detail="its config changed")
    await _start_again(ctx, scope, changed, was_running, report)
    touched = {*report.restarted, *report.updated, *report.destroyed, *report.created, *report.failed}
    report.unchanged = [i.moniker_text for i in scope
                        if i.moniker_text not in touched and i.state is not State.DESTROYED]
    return report


def _resolve_all(ctx: ActionContext, scope) -> dict:
    """URL -> its ResolvedComponent, or ManifestError with every problem of every URL."""
    fresh, problems = {}, []
    for inst in scope:
        if inst.url in fresh:
            continue
        try:
            fresh[inst.url] = ctx.resolver.resolve(inst.url, fresh=True)
        except UrlError as e:
            fresh[inst.url] = None
            problems.extend(getattr(e, "problems", None) or [Problem(url_path(inst.url), 0, "", e.reason)])
    if problems:
        raise ManifestError(problems)
    return fresh


def _changed(inst, resolved) -> bool:
    if inst.decl is None:
        return True  # unresolved (it was broken at boot, say): resolve it now
    if resolved.decl.fingerprint != inst.decl.fingerprint or resolved.package_dir != inst.package_dir:
        return True
    run = inst.run
    return (run is not None and run.program is not None and inst.decl.program is not None
            and files_stamp(inst.decl.program, inst.package_dir) != run.files_stamp)


async def _take_new_version(ctx: ActionContext, inst, resolved, report: ReloadReport,
                            was_running: set) -> None:
    """Stop it if its program runs, drop children the new manifest lost, take the manifest."""
    in_place = inst.run is not None and inst.decl.program is None and resolved.decl.program is None
    if inst.run is not None and not in_place:
        await stop(ctx, inst, StopReason.PACKAGE_UPDATED)
    if in_place or inst.moniker_text not in was_running:
        report.updated.append(inst.moniker_text)  # (the others are started again, later)
    before = set(inst.children)
    await _remove_lost_children(ctx, inst, resolved, report)
    if in_place:
        take_manifest(ctx, inst, resolved)
    elif inst.decl is None:
        resolve(ctx, inst)
    else:
        transition(inst, State.UNRESOLVED)  # resolved -> unresolved (package updated)
        inst.decl = None
        resolve(ctx, inst)  # unresolved -> resolved, with the new manifest and children
    report.created.extend(inst.children[n].moniker_text for n in inst.children if n not in before)


async def _remove_lost_children(ctx: ActionContext, inst, resolved, report: ReloadReport) -> None:
    if inst.decl is None:
        return
    decl = resolved.decl
    for name, child in list(inst.children.items()):
        if child.is_dynamic:
            keep = decl.collection(child.collection) is not None
        else:
            declared = decl.child(name)
            keep = declared is not None and absolute_url(declared.url, inst.url) == child.url
        if not keep:
            await shutdown(ctx, child, StopReason.DESTROYING)
            await remove(ctx, child)
            report.destroyed.append(child.moniker_text)


def _config_changed(ctx: ActionContext, inst) -> bool:
    if inst.decl is None or inst.decl.program is None:
        return False
    try:
        values = config_values(RoutingView(ctx), inst)
    except CmError:
        return True  # its new config is invalid: the restart will say why
    return {k: v for k, (v, _source) in values.items()} != inst.run.config


async def _start_again(ctx: ActionContext, scope, changed, was_running: set, report: ReloadReport) -> None:
    """Start again, parents first, every program that ran before the reload and was stopped."""
    changed_names = {i.moniker_text for i in changed}
    for inst in scope:
        name = inst.moniker_text
        if name not in was_running or inst.state is not State.RESOLVED or inst.run is not None:
            continue
        try:
            await start(ctx, inst, START_PACKAGE_UPDATED if name in changed_names else START_WITH_PARENT)
            report.restarted.append(name)
        except CmError as e:
            report.failed.append(name)
            report.errors.append(f"{name}: {e}")
            log.warning("reload: starting %s again: %s", name, e)
