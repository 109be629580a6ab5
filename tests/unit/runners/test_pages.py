"""runners/pages.py on real memory: which pages were written, and copying shared ones ahead."""

import ctypes
import mmap
import os

from component_manager.runners import pages
from component_manager.runners.pages import PAGE, Touched, copy_ahead


KERNEL_COPIES = tuple(int(x) for x in os.uname().release.split(".")[:2]) >= (5, 14)  # MADV_POPULATE_WRITE


def address_of(buffer: mmap.mmap, page: int) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(buffer, page * PAGE))


def entry_of(address: int) -> int:
    return next(pages._pagemap([(address, address + PAGE)]))[1]


def in_runs(address: int, runs) -> bool:
    return any(start <= address < end for start, end in runs)


def test_touched_names_the_pages_written_meanwhile_and_no_other():
    memory = mmap.mmap(-1, 4 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for page in range(3):
        memory[page * PAGE] = 1  # present before; page 3 is never touched before
    touched = Touched.begin()
    memory[1 * PAGE] = 2
    memory[3 * PAGE] = 2  # new memory: nobody else's to copy
    runs = touched.end()
    assert in_runs(address_of(memory, 1), runs)
    assert not in_runs(address_of(memory, 0), runs)
    assert not in_runs(address_of(memory, 2), runs)
    assert not in_runs(address_of(memory, 3), runs)


def test_copy_ahead_makes_shared_pages_our_own_and_leaves_their_content():
    memory = mmap.mmap(-1, 2 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    memory[0], memory[PAGE] = 7, 8
    first, second = address_of(memory, 0), address_of(memory, 1)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # shares both pages with us until it writes them
        os.close(read_end)
        try:
            before = [entry_of(a) & pages._EXCLUSIVE for a in (first, second)]
            nothing = copy_ahead([(first, first + PAGE)], lambda: True)  # stopped at once
            copied = copy_ahead([(first, first + PAGE)], lambda: False)
            after = [entry_of(a) & pages._EXCLUSIVE for a in (first, second)]
            ok = (before == [0, 0] and nothing == 0 and after[1] == 0 and memory[0] == 7
                  and (copied, bool(after[0])) == ((1, True) if KERNEL_COPIES else (0, False)))
            os.write(write_end, b"y" if ok else repr((before, nothing, copied, after)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 200)
    os.waitpid(pid, 0)
    assert answer == b"y", answer
