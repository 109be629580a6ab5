"""Read a ``.cml`` with its ``include`` shards merged in, remembering where each piece came from.

Merging is Fuchsia's: the lists (``use``, ``offer``, ...) are concatenated with exact
duplicates dropped, and the objects (``program``, ``config``) are merged key by key; a key
set to two different values is an error. Include paths are resolved relative to the
including file first, then in each ``include_path`` directory, in order. A shard included
twice (or in a cycle) is read once.

Example: ``main.cml`` has ``include: ["shard.cml"]`` and ``use: [A]``; ``shard.cml`` has
``use: [B, A]``. The merged document has ``use: [A, B]``, and ``use[1]`` is located at
``shard.cml``'s line of ``use[0]`` -- errors about it point into the shard.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ManifestError, Problem
from . import json5
from .json5 import key_path
from .limits import SourceError, read_source

_MAX_MESSAGE = 300

__all__ = ["SourceMap", "key_path", "read", "read_text", "within"]


class SourceMap:
    """Where each part of a merged document was written: file, line, and its own key path."""

    def __init__(self, filename: str):
        self.positions: dict[str, dict] = {}  # file -> json5 positions
        self.origins: dict[tuple, tuple[str, tuple]] = {(): (filename, ())}
        # Problems found while merging includes; validation reports them with its own, so a
        # missing include does not hide the errors in the rest of the file.
        self.pending: list[Problem] = []

    def origin(self, path: tuple) -> tuple[str, tuple]:
        """The file and the path within it of merged ``path`` (longest registered prefix)."""
        for n in range(min(len(path), 2), -1, -1):
            hit = self.origins.get(path[:n])
            if hit:
                return hit[0], hit[1] + path[n:]
        raise LookupError(path)  # unreachable: () is always registered

    def problem(self, path: tuple, message: str) -> Problem:
        """A Problem at merged ``path``, pointing at the nearest written key or element."""
        filename, own = self.origin(path)
        positions = self.positions.get(filename, {})
        if len(message) > _MAX_MESSAGE:  # a problem quotes a value, never all of a huge one
            message = message[:_MAX_MESSAGE] + "..."
        for n in range(len(own), 0, -1):
            if own[:n] in positions:
                line, column = positions[own[:n]]
                return Problem(filename, line, key_path(own), message, column)
        return Problem(filename, 1, key_path(own), message, 0)  # the document itself: line 1


def read(path: str | Path, include_paths=(), roots=None) -> tuple[object, SourceMap]:
    """Read the file at ``path`` and merge its includes. Raises ManifestError."""
    path = Path(path)
    try:
        text = _read(path)
    except (SourceError, UnicodeDecodeError) as e:
        raise ManifestError([Problem(str(path), 0, "", f"cannot read: {e}")]) from None
    return read_text(text, str(path), include_paths, roots)


def read_text(text: str, filename: str, include_paths=(), roots=None, _seen=None) -> tuple[object, SourceMap]:
    """Parse ``text`` and merge its includes; return the merged value and its SourceMap.

    ``roots``, if given, are the only folders includes may be read from (real paths).
    Raises ManifestError for a syntax error in ``text``; problems with includes (missing,
    malformed, conflicting, outside the roots) are left in ``SourceMap.pending`` for
    validation to report."""
    doc = json5.parse(text, filename)
    smap = SourceMap(filename)
    smap.positions[filename] = doc.positions
    value = doc.value
    if not isinstance(value, dict) or "include" not in value:
        return value, smap
    seen = _seen if _seen is not None else {str(Path(filename).resolve())}
    problems = smap.pending
    for index, include in enumerate(_include_list(value, smap, problems)):
        if "\0" in include:
            problems.append(smap.problem(("include", index), "a NUL byte is not allowed here"))
            continue
        found = _find(include, Path(filename).parent, include_paths)
        if found is None:
            where = ", ".join([str(Path(filename).parent)] + [str(p) for p in include_paths])
            problems.append(smap.problem(("include", index), f"cannot find include {include!r} (looked in {where})"))
            continue
        if roots is not None and not within(found, roots):
            problems.append(smap.problem(("include", index), f"include {include!r} is outside the package roots"))
            continue
        if str(found) in seen:
            continue
        seen.add(str(found))
        try:
            shard, shard_map = read_text(_read(found), str(found), include_paths, roots, seen)
        except ManifestError as e:
            problems.extend(e.problems)
            continue
        except (SourceError, UnicodeDecodeError) as e:
            problems.append(smap.problem(("include", index), f"cannot read include {include!r}: {e}"))
            continue
        problems.extend(shard_map.pending)
        _merge(value, smap, shard, shard_map, include, index, problems)
    del value["include"]
    return value, smap


def _include_list(value: dict, smap: SourceMap, problems: list) -> list[str]:
    includes = value["include"]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        problems.append(smap.problem(("include",), "expected a list of file paths"))
        return []
    return includes


def _find(include: str, base: Path, include_paths) -> Path | None:
    """The real path of the first existing ``include``; what it is, ``_read`` checks."""
    for folder in (base, *map(Path, include_paths)):
        candidate = folder / include
        try:
            candidate.stat()
        except (OSError, ValueError):  # missing, a name over NAME_MAX, ...
            continue
        return candidate.resolve()
    return None


def within(path: Path, roots) -> bool:
    """True if the real ``path`` is one of ``roots`` (real paths) or below one."""
    return any(path == root or root in path.parents for root in roots)


def _read(path: Path) -> str:
    return read_source(path).decode("utf-8")


def _merge(value: dict, smap: SourceMap, shard, shard_map: SourceMap, name: str, index: int, problems) -> None:
    """Merge the shard's top-level keys into ``value``, recording where each piece came from."""
    if not isinstance(shard, dict):
        problems.append(smap.problem(("include", index), f"include {name!r} is not an object"))
        return
    smap.positions.update(shard_map.positions)
    for key, theirs in shard.items():
        if key not in value:
            value[key] = type(theirs)() if isinstance(theirs, (list, dict)) else theirs
            smap.origins[(key,)] = shard_map.origin((key,))
        ours = value[key]
        if isinstance(ours, list) and isinstance(theirs, list):
            for i, item in enumerate(theirs):
                if item not in ours:
                    smap.origins[(key, len(ours))] = shard_map.origin((key, i))
                    ours.append(item)
        elif isinstance(ours, dict) and isinstance(theirs, dict):
            for sub, item in theirs.items():
                if sub not in ours:
                    ours[sub] = item
                    smap.origins[(key, sub)] = shard_map.origin((key, sub))
                elif ours[sub] != item:
                    problems.append(smap.problem((key, sub), f"conflicts with the value in include {name!r}"))
        elif ours != theirs:
            problems.append(smap.problem((key,), f"conflicts with the value in include {name!r}"))

