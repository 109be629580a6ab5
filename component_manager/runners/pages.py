"""Which of the zygote's pages a program writes first, and copying them ahead in a spare.

A forked child shares the zygote's memory copy-on-write: the first write to each shared page
costs a page fault and a copy (5-14 us each on these VMs), and a gRPC server's start and
first call write ~1,000 of them (reference counts, allocator pools, gRPC's globals): several
ms of a cold start. The zygote learns which pages those are once (``Touched``, around its
gRPC warm-up), and every spare copies them ahead while it waits for a launch
(``copy_ahead``), so the program finds them already its own. Pages nobody would write stay
shared.

How a written page is found: ``/proc/self/pagemap`` says of each page whether it is present
(bit 63) and whether only this process maps it (bit 56). A sentinel child forked before the
warm-up shares every page with the zygote; a page the zygote then writes is copied, so it is
the zygote's alone afterwards.

Example::

    touched = Touched.begin()     # single-threaded: forks the sentinel
    ...the warm-up...
    runs = touched.end()          # [(start, end), ...] of pages written meanwhile
    # later, in a spare:
    copy_ahead(runs, lambda: launch_is_waiting())
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Callable

__all__ = ["Touched", "copy_ahead"]

PAGE = os.sysconf("SC_PAGE_SIZE")
_PRESENT, _EXCLUSIVE = 1 << 63, 1 << 56
_MADV_POPULATE_WRITE = 23  # Linux 5.14: fault the range in writable (copies shared pages)
_CHUNK = 32  # runs copied between two looks for a waiting launch
_SKIPPED = ("[vvar]", "[vvar_vclock]", "[vsyscall]", "[vdso]")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


class Touched:
    """The pages the process writes between ``begin`` and ``end`` (only pages present at
    ``begin``: new memory is nobody's to copy)."""

    def __init__(self, present: set[int], sentinel: int, release: int):
        self._present = present  # the address of each page present at begin
        self._sentinel = sentinel
        self._release = release

    @classmethod
    def begin(cls) -> Touched:
        """Call while single-threaded (the sentinel is forked). Raises OSError."""
        present = {address for address, entry in _pagemap(_writable_private()) if entry & _PRESENT}
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the sentinel: holds the pages as they are until ``end``
            os.closerange(3, read_end)  # nothing of ours kept open (a socket's peer waits for EOF)
            os.closerange(read_end + 1, 1 << 20)
            os.read(read_end, 1)
            os._exit(0)
        os.close(read_end)
        return cls(present, pid, write_end)

    def end(self) -> list[tuple[int, int]]:
        """The runs ``[(start, end), ...]`` of pages written since ``begin``; ends the sentinel."""
        try:
            written = [address for address, entry in _pagemap(_writable_private())
                       if entry & _EXCLUSIVE and entry & _PRESENT and address in self._present]
        finally:
            os.close(self._release)
            try:
                os.waitpid(self._sentinel, 0)
            except ChildProcessError:  # already reaped by whoever reaps our children
                pass
        return _runs(written)


def copy_ahead(runs: list[tuple[int, int]], stop: Callable[[], bool]) -> int:
    """Fault ``runs`` in writable (each shared page becomes our own copy, same content);
    returns how many pages. Stops early when ``stop()`` says so (checked every few runs)
    or where the kernel cannot (before 5.14: nothing is copied); skips runs no longer mapped."""
    done = 0
    for at in range(0, len(runs), _CHUNK):
        if stop():
            break
        for start, end in runs[at:at + _CHUNK]:
            if _libc.madvise(start, end - start, _MADV_POPULATE_WRITE) == 0:
                done += (end - start) // PAGE
            elif ctypes.get_errno() not in (errno.ENOMEM, errno.EFAULT):  # not just unmapped since
                return done
    return done


def _writable_private() -> list[tuple[int, int]]:
    """[(start, end)] of this process's private writable mappings (heap, anonymous memory,
    the data of loaded libraries); not the stack, nor the kernel's special pages."""
    found = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            name = fields[5] if len(fields) > 5 else ""
            if fields[1].startswith("rw") and fields[1][3] == "p" and name not in _SKIPPED \
                    and not name.startswith("[stack"):
                start, end = (int(x, 16) for x in fields[0].split("-"))
                found.append((start, end))
    return found


def _pagemap(ranges: list[tuple[int, int]]):
    """(address, pagemap entry) of every page in ``ranges``."""
    fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    try:
        for start, end in ranges:
            data = os.pread(fd, (end - start) // PAGE * 8, start // PAGE * 8)
            for i, (entry,) in enumerate(struct.iter_unpack("Q", data)):
                yield start + i * PAGE, entry
    finally:
        os.close(fd)


def _runs(addresses: list[int]) -> list[tuple[int, int]]:
    runs: list[list[int]] = []
    for address in sorted(addresses):
        if runs and runs[-1][1] == address:
            runs[-1][1] = address + PAGE
        else:
            runs.append([address, address + PAGE])
    return [(start, end) for start, end in runs]
