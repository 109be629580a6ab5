"""The resolver: a component URL becomes a compiled manifest and the package it came from.

URLs are ``file:///abs/path.cml`` (or ``.cm``), an absolute path, or a path relative to the
URL of the component that names it (``echo/echo_server.cml`` in ``/x/realm.cml`` is
``file:///x/echo/echo_server.cml``), as Fuchsia's relative URLs are. A ``.cml`` is compiled
in memory; a ``.cm`` has its fingerprint verified. Results are cached by file identity
(path, size, mtime), so 100,000 instances of one URL share one ComponentDecl.

Only manifests under the *package roots* the manager is given resolve (``cm manager run
--package-root DIR``; by default the folder of the root manifest and everything below it).
A URL must end in ``.cml`` or ``.cm`` and name, after symlinks are followed, a regular file
under a root and under the size limit (manifest/limits.py); includes are held to the same
roots. Everything else is refused before a byte of it is read, so a URL can neither freeze
the manager (a FIFO, ``/dev/zero``) nor make an error message quote a file (``/etc/shadow``).

The package directory is where a program's code is found: the first ancestor of the
manifest's folder that is not itself a Python package (has no ``__init__.py``), so that
``module: "components.echo.server"`` imports as it would from that folder.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import CmError, ManifestError, UrlError
from ..manifest.decl import ComponentDecl
from ..manifest.limits import SourceError, read_source
from ..manifest.merge import within

__all__ = ["ResolvedComponent", "Resolver", "absolute_url"]


MANIFEST_SUFFIXES = (".cml", ".cm")
MAX_URL_CHARS = 4096  # PATH_MAX


@dataclass(frozen=True, slots=True)
class ResolvedComponent:
    url: str
    decl: ComponentDecl
    package_dir: Path


def absolute_url(url: str, base_url: str | None = None) -> str:
    """Make ``url`` absolute (``file:///...``), relative to ``base_url``'s folder if given.

    Raises UrlError for an empty or over-long URL, a NUL byte, or a scheme other than file.
    """
    if not url:
        raise UrlError(url, "empty URL")
    if len(url) > MAX_URL_CHARS:
        raise UrlError(_short(url), f"longer than {MAX_URL_CHARS} characters")
    if "\0" in url:
        raise UrlError(_short(url), "the URL contains a NUL byte")
    if url[:1] == "/" and url[1:2] != "/":  # a path, as urlparse would find, in a tenth of the time
        return "file://" + os.path.normpath(url)
    try:
        parsed = urlparse(url)
    except ValueError as e:  # "file://[" : an invalid IPv6 host
        raise UrlError(_short(url), str(e)) from None
    if parsed.scheme == "file":
        return "file://" + os.path.normpath(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter would be a Windows drive
        raise UrlError(url, f"unsupported URL scheme '{parsed.scheme}' (only file URLs and paths)")
    if url.startswith("/"):
        return "file://" + os.path.normpath(url)
    base = Path(url_path(base_url)).parent if base_url else Path.cwd()
    return "file://" + os.path.normpath(base / url)


@functools.lru_cache(maxsize=1024)
def url_path(url: str) -> str:
    """The file path of a ``file://`` URL (cached: every create and cache check asks)."""
    return unquote(urlparse(url).path)


def package_dir_of(manifest: Path) -> Path:
    folder = manifest.parent
    while (folder / "__init__.py").exists() and folder.parent != folder:
        folder = folder.parent
    return folder


class Resolver:
    """``roots``: the package roots (None: any folder, for tools that compile what they are
    given); nothing under ``excluded`` (the manager's state directory) resolves. ``resolve`` may run in a worker thread; the cache is a dict, safe under the GIL."""

    def __init__(self, roots=None, excluded=()) -> None:
        self.roots = None if roots is None else tuple(Path(os.path.realpath(r)) for r in roots)
        self.excluded = tuple(Path(os.path.realpath(r)) for r in excluded)
        self._cache: dict[str, tuple[tuple[int, int], ResolvedComponent]] = {}

    def cached(self, url: str) -> ResolvedComponent | None:
        """The resolution of ``url`` if it is cached and its file unchanged; no reading."""
        hit = self._cache.get(url)
        if hit is None:
            return None
        try:
            key = _identity(os.stat(url_path(url)))
        except (OSError, ValueError):
            return None
        return hit[1] if hit[0] == key else None

    def resolve(self, url: str, fresh: bool = False) -> ResolvedComponent:
        """Resolve an absolute URL. Raises UrlError (refused, missing file, invalid manifest).

        A cached URL whose file is the same (device, inode, size, mtime) is answered after
        one stat; anything else is checked in full (a symlink turned elsewhere is another
        inode), as 100,000 instances of one URL at boot would otherwise cost a realpath each.
        ``fresh`` reads the file all the same: one rewritten within a tick of the file
        system's clock keeps its size and mtime, and a reload must not trust that."""
        hit = None if fresh else self.cached(url)
        if hit is not None:
            return hit
        previous = self._cache.get(url)
        path = self._checked_path(url)
        try:
            key = _identity(path.stat())
        except OSError as e:
            raise UrlError(_short(url), e.strerror or "cannot read") from None
        resolved = ResolvedComponent(url, self._load(url, path), package_dir_of(path))
        if previous is not None and _same(previous[1], resolved):
            resolved = previous[1]  # unchanged: its instances keep sharing one ComponentDecl
        self._cache[url] = (key, resolved)
        return resolved

    def _checked_path(self, url: str) -> Path:
        """The real path ``url`` names, if it may be read: a manifest under a root."""
        text = url_path(url)
        if "\0" in text:
            raise UrlError(_short(url), "the URL contains a NUL byte")
        if not text.endswith(MANIFEST_SUFFIXES):
            raise UrlError(_short(url), "not a component manifest (a URL names a .cml or .cm file)")
        try:
            real = Path(os.path.realpath(text))
        except (OSError, ValueError) as e:
            raise UrlError(_short(url), str(e)) from None
        if self.roots is not None and not within(real, self.roots) or within(real, self.excluded):
            raise UrlError(_short(url), "outside the package roots (see cm manager run --package-root)")
        if not real.name.endswith(MANIFEST_SUFFIXES):
            raise UrlError(_short(url), "not a component manifest (a URL names a .cml or .cm file)")
        return real

    def _load(self, url: str, path: Path) -> ComponentDecl:
        try:
            data = read_source(path, follow_symlinks=False)
            if path.suffix == ".cm":
                from ..manifest.codec import decode
                return decode(data, str(path))
            from ..manifest.compile import compile_text
            return compile_text(data.decode("utf-8"), str(path), roots=self.roots)
        except SourceError as e:
            raise UrlError(_short(url), str(e)) from None
        except UnicodeDecodeError:
            raise UrlError(_short(url), "invalid manifest: not UTF-8 text") from None
        except ManifestError as e:
            more = f" (and {len(e.problems) - 1} more)" if len(e.problems) > 1 else ""
            error = UrlError(_short(url), f"invalid manifest: {e.problems[0]}{more}")
            error.problems = e.problems  # every one, for a reload's report
            raise error from None
        except CmError as e:
            raise UrlError(_short(url), str(e)) from None


def _same(a: ResolvedComponent, b: ResolvedComponent) -> bool:
    return a.decl.fingerprint == b.decl.fingerprint and a.package_dir == b.package_dir


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _short(url: str) -> str:
    """A URL as an error quotes it: a 4 KiB path is not worth repeating in full."""
    return url if len(url) <= 300 else url[:300] + "..."
