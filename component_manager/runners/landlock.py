"""Landlock, through its three system calls: confine a process (and everything it starts
later) to the files it is allowed, whatever its uid.

A ruleset names which kinds of access it *handles* (all those this kernel knows); every
handled access is then refused except beneath the folders (or on the files) a rule allows.
``restrict_self`` applies it to the calling thread, for good: it survives ``fork`` and
``execve`` and cannot be lifted. Since ABI 6 a domain also *scopes* signals and abstract Unix
sockets: the program can no longer signal, or connect to an abstract socket of, a process
outside its own domain. Ptrace (hence ``/proc/PID/mem``, ``environ``, ``fd``) of a process
outside its domain is refused at every ABI.

No PyPI package was used: the one named ``landlock`` is a pre-release (1.0.0.dev5), and the
interface is three system calls and two structs.

Example::

    if abi_version():
        fd = ruleset(read=["/usr", pkg], write=[storage], devices=["/dev/null"])
        restrict_self(fd)          # after prctl(PR_SET_NO_NEW_PRIVS, 1) unless privileged
"""

from __future__ import annotations

import ctypes
import os
import platform
import stat
from collections.abc import Iterable

__all__ = ["abi_version", "restrict_self", "ruleset"]

# The same numbers on x86-64 and on every architecture using the generic table (arm64, riscv).
_SYS = {"create_ruleset": 444, "add_rule": 445, "restrict_self": 446}
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}
_FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # what a rule on a file may allow
READ = EXECUTE | READ_FILE | READ_DIR
DEVICE = READ_FILE | WRITE_FILE | IOCTL_DEV | TRUNCATE
ALL = (1 << 16) - 1
WRITE = ALL & ~(MAKE_CHAR | MAKE_BLOCK)  # its own files, never device nodes (a root program's disk)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(name: str, *args) -> int:
    result = _libc.syscall(_SYS[name], *args)
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"landlock_{name}: {os.strerror(errno)}")
    return result


def abi_version() -> int:
    """The Landlock ABI this kernel offers; 0 without Landlock (old kernel, not enabled at
    boot, another architecture)."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "aarch64", "riscv64"):
        return 0
    try:
        return _syscall("create_ruleset", None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except OSError:
        return 0


def handled_fs(abi: int) -> int:
    return _FS_BY_ABI.get(abi, ALL)


def ruleset(read: Iterable[str] = (), write: Iterable[str] = (), devices: Iterable[str] = (),
            listable: Iterable[str] = (), abi: int | None = None) -> int:
    """A ruleset descriptor: ``read`` (and execute) beneath those paths, everything but
    device nodes beneath ``write``, read and write ``devices``, list folders beneath
    ``listable`` (but read no file there); the rest
    refused, and (ABI 6+) signals and abstract sockets scoped. Paths that do not exist are
    left out. Raises OSError if Landlock is missing."""
    abi = abi_version() if abi is None else abi
    handled = handled_fs(abi)
    attr = _RulesetAttr(handled, 0, SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0)
    size = ctypes.sizeof(attr) if abi >= 6 else ctypes.sizeof(ctypes.c_uint64)
    fd = _syscall("create_ruleset", ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    try:
        for paths, access in ((read, READ), (write, WRITE), (devices, DEVICE), (listable, READ_DIR)):
            for path in paths:
                _allow(fd, path, access & handled)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _allow(ruleset_fd: int, path: str, access: int) -> None:
    try:
        target = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # nothing there to allow
    try:
        if not stat.S_ISDIR(os.fstat(target).st_mode):
            access &= _FILE_ONLY
        rule = _PathBeneathAttr(access, target)
        _syscall("add_rule", ctypes.c_int(ruleset_fd), ctypes.c_int(_RULE_PATH_BENEATH),
                 ctypes.byref(rule), ctypes.c_uint32(0))
    finally:
        os.close(target)


def restrict_self(ruleset_fd: int) -> None:
    """Enforce the ruleset on this thread and everything it starts from now on; closes it."""
    try:
        _syscall("restrict_self", ctypes.c_int(ruleset_fd), ctypes.c_uint32(0))
    finally:
        os.close(ruleset_fd)
