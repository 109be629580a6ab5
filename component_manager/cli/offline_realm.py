"""A realm read from its manifests alone, no manager: `cm graph --manifest realm.cml`.

Compiles the root manifest and, recursively, each static child's (a child URL is relative to
the manifest that names it, as the manager's resolver has it), then answers the route walk's
``TopologyView`` over that tree. Collections are empty offline: their children exist only in
a running manager. Example::

    realm = OfflineRealm.load("components/realm.cml")
    [str(m) for m in realm.monikers]   # ['/', '/echo_server', '/echo_client', '/counter']
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlparse

from ..errors import CmError, ManifestError
from ..manifest import compile_file, load
from ..moniker import Moniker, parse

__all__ = ["OfflineRealm"]

MAX_INSTANCES = 10_000  # a manifest that includes itself as a child must not recurse forever


class OfflineRealm:
    def __init__(self) -> None:
        self.decls: dict[Moniker, object] = {}
        self.urls: dict[Moniker, str] = {}
        self.monikers: list[Moniker] = []

    @classmethod
    def load(cls, path: str) -> OfflineRealm:
        """Raises CmError (one line per manifest problem) for a manifest that does not compile."""
        realm = cls()
        realm._add(parse("/"), _file_path(path, None))
        return realm

    def _add(self, moniker: Moniker, path: str) -> None:
        if len(self.monikers) >= MAX_INSTANCES:
            raise CmError(f"more than {MAX_INSTANCES} static instances under {path}: a child includes itself?")
        try:
            decl = load(path) if path.endswith(".cm") else compile_file(path)
        except ManifestError:
            raise
        except (CmError, OSError) as e:
            raise CmError(f"cannot read the manifest of {moniker}: {path}: {getattr(e, 'strerror', None) or e}") from None
        self.decls[moniker], self.urls[moniker] = decl, "file://" + path
        self.monikers.append(moniker)
        for child in decl.children:
            self._add(moniker.child(child.name), _file_path(child.url, path))

    def rows(self) -> list[dict]:
        """The instances as `cm list --json` rows have them, without a status."""
        return [{"moniker": str(m), "url": self.urls[m], "status": ""} for m in self.monikers]

    # ---- routing.route.TopologyView -------------------------------------------------------

    def decl(self, moniker: Moniker):
        return self.decls[moniker]

    def parent(self, moniker: Moniker) -> Moniker | None:
        return moniker.parent

    def child_moniker(self, moniker: Moniker, child_name: str) -> Moniker | None:
        child = moniker.child(child_name)
        return child if child in self.decls else None

    def collection_children(self, moniker: Moniker, collection: str) -> list[Moniker]:
        return []


def _file_path(url: str, base: str | None) -> str:
    """A child's URL as a file path: file:// and absolute paths as they are, anything else
    relative to the folder of ``base`` (the manifest that names it), or to the working folder."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return os.path.normpath(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:
        raise CmError(f"cannot read {url!r} offline: only file URLs and paths")
    folder = os.path.dirname(base) if base else os.getcwd()
    return os.path.normpath(os.path.join(folder, url))
