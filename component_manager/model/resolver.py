"""The resolver: a component URL becomes a compiled manifest and the package it came from.

URLs are ``file:///abs/path.cml`` (or ``.cm``), an absolute path, or a path relative to the
URL of the component that names it (``echo/echo_server.cml`` in ``/x/realm.cml`` is
``file:///x/echo/echo_server.cml``), as Fuchsia's relative URLs are. A ``.cml`` is compiled
in memory; a ``.cm`` has its fingerprint verified. Results are cached by file identity
(path, size, mtime), so 100,000 instances of one URL share one ComponentDecl.

The package directory is where a program's code is found: the first ancestor of the
manifest's folder that is not itself a Python package (has no ``__init__.py``), so that
``module: "components.echo.server"`` imports as it would from that folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import CmError, ManifestError, UrlError
from ..manifest.decl import ComponentDecl

__all__ = ["ResolvedComponent", "Resolver", "absolute_url"]


@dataclass(frozen=True, slots=True)
class ResolvedComponent:
    url: str
    decl: ComponentDecl
    package_dir: Path


def absolute_url(url: str, base_url: str | None = None) -> str:
    """Make ``url`` absolute (``file:///...``), relative to ``base_url``'s folder if given.

    Raises UrlError for an empty URL or a scheme other than file.
    """
    if not url:
        raise UrlError(url, "empty URL")
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return "file://" + os.path.normpath(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter would be a Windows drive
        raise UrlError(url, f"unsupported URL scheme '{parsed.scheme}' (only file URLs and paths)")
    if url.startswith("/"):
        return "file://" + os.path.normpath(url)
    base = Path(url_path(base_url)).parent if base_url else Path.cwd()
    return "file://" + os.path.normpath(base / url)


def url_path(url: str) -> str:
    return unquote(urlparse(url).path)


def package_dir_of(manifest: Path) -> Path:
    folder = manifest.parent
    while (folder / "__init__.py").exists() and folder.parent != folder:
        folder = folder.parent
    return folder


class Resolver:
    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[int, int], ResolvedComponent]] = {}

    def resolve(self, url: str, fresh: bool = False) -> ResolvedComponent:
        """Resolve an absolute URL; ``fresh`` reads the file even if its size and mtime are
        those cached (a file rewritten within one tick of the file system's clock keeps its
        mtime: a reload must not trust that). Raises UrlError (missing file, invalid manifest)."""
        path = Path(url_path(url))
        try:
            st = path.stat()
        except OSError as e:
            raise UrlError(url, e.strerror or "cannot read") from None
        key = (st.st_size, st.st_mtime_ns)
        cached = self._cache.get(url)
        if cached and cached[0] == key and not fresh:
            return cached[1]
        resolved = ResolvedComponent(url, self._load(url, path), package_dir_of(path))
        if cached and cached[1].decl.fingerprint == resolved.decl.fingerprint and cached[1].package_dir == resolved.package_dir:
            resolved = cached[1]  # unchanged: instances keep sharing one ComponentDecl
        self._cache[url] = (key, resolved)
        return resolved

    def _load(self, url: str, path: Path) -> ComponentDecl:
        try:
            if path.suffix == ".cm":
                from ..manifest.codec import load
                return load(path)
            from ..manifest.compile import compile_file
            return compile_file(path)
        except ManifestError as e:
            more = f" (and {len(e.problems) - 1} more)" if len(e.problems) > 1 else ""
            error = UrlError(url, f"invalid manifest: {e.problems[0]}{more}")
            error.problems = e.problems  # every one, for a reload's report
            raise error from None
        except CmError as e:
            raise UrlError(url, str(e)) from None
