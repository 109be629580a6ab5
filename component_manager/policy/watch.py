"""``cm manager run --watch``: reload when a manifest or a program file of the realm changes.

The files watched are exactly those a reload compares: every instance's manifest, and the
program files (``runners/files.py``) of every resolved instance. Their folders are watched,
not recursively, with ``watchfiles`` (inotify underneath: no polling), and only events on
those files count, so logs, state and editors' swap files never trigger a reload. Changes
are debounced (``DEBOUNCE_MS``), so saving several files reloads once. A reload that finds
a broken manifest changes nothing and logs every problem; the watch goes on. After each
reload the set of files is taken again (children may have come or gone).
"""

from __future__ import annotations

import logging
from pathlib import Path

from watchfiles import awatch

from .. import actions
from ..errors import CmError
from ..model.resolver import url_path
from ..runners.files import program_files

__all__ = ["DEBOUNCE_MS", "PackageWatch", "watched_files"]

log = logging.getLogger("component_manager.watch")

DEBOUNCE_MS = 200


def watched_files(model) -> frozenset[str]:
    files = set()
    for inst in model.index.values():
        if inst.url.startswith("file://"):
            files.add(url_path(inst.url))
        if inst.decl is not None and inst.decl.program is not None:
            files.update(str(p) for p in program_files(inst.decl.program, inst.package_dir))
    return frozenset(files)


class PackageWatch:
    def __init__(self, model):
        self.model = model
        self.reloads = 0

    async def run(self) -> None:
        while True:
            files = watched_files(self.model)
            folders = sorted({str(Path(f).parent) for f in files if Path(f).parent.is_dir()})
            if not folders:
                return
            async for _changes in awatch(*folders, watch_filter=lambda _c, path: path in files,
                                         recursive=False, debounce=DEBOUNCE_MS, step=20):
                await self.reload()
                if watched_files(self.model) != files:
                    break  # watch the new set of files

    async def reload(self) -> None:
        try:
            report = await actions.reload(self.model, self.model.root)
        except CmError as e:
            log.warning("reload after a change found problems; nothing changed:\n%s", e)
            return
        self.reloads += 1
        log.info("reloaded: restarted %s, updated %s, created %s, destroyed %s", report.restarted or "-",
                 report.updated or "-", report.created or "-", report.destroyed or "-")
