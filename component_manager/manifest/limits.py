"""The compiler's limits, and the one bounded way it reads a file.

A manifest may come from anyone who can name a URL, so every dimension of it is bounded and
a breach is refused as a located problem, never as a RecursionError, an OverflowError or a
read that never ends:

    MAX_MANIFEST_BYTES  1 MiB     a .cml, a shard or a .cm (real ones are a few KiB)
    MAX_DEPTH           64        nested objects and lists (manifests use 5)
    MAX_ELEMENTS        100,000   members of one object or list
    MAX_NUMBER_CHARS    64        one number as written (uint64 takes 20 digits)

``read_source`` opens with O_NONBLOCK (opening a FIFO does not wait for a writer), checks
with fstat that the open file is a regular file under the size limit, and reads at most that
much: a FIFO, ``/dev/zero``, ``/dev/urandom`` or a directory is refused at once.
"""

from __future__ import annotations

import os
import stat

__all__ = ["MAX_DEPTH", "MAX_ELEMENTS", "MAX_MANIFEST_BYTES", "MAX_NUMBER_CHARS", "SourceError",
           "read_source"]

MAX_MANIFEST_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_ELEMENTS = 100_000
MAX_NUMBER_CHARS = 64


class SourceError(Exception):
    """A file that cannot be a manifest; ``str(e)`` says why in a few words."""


def read_source(path, follow_symlinks: bool = True, limit: int = MAX_MANIFEST_BYTES) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them. Raises
    SourceError (not a regular file, too large, cannot be opened) without blocking."""
    if "\0" in str(path):
        raise SourceError("the path contains a NUL byte")
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | (0 if follow_symlinks else os.O_NOFOLLOW))
    except OSError as e:
        raise SourceError(e.strerror or "cannot open") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SourceError("not a regular file")
        if info.st_size > limit:
            raise SourceError(f"larger than {limit} bytes")
        data = _read_at_most(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew while being read
        raise SourceError(f"larger than {limit} bytes")
    return data


def _read_at_most(fd: int, count: int) -> bytes:
    chunks, left = [], count
    while left > 0:
        try:
            chunk = os.read(fd, min(left, 1 << 16))
        except OSError as e:
            raise SourceError(e.strerror or "cannot read") from None
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
