"""What keeps one program away from another, from the manager's files and from secrets.

Three layers, each applied in the program's process before any of its own code runs
(``enter``; docs/security.md has the whole threat model):

1. **Its own uid**, when the manager runs as root: every instance gets a uid (and a gid of
   the same number) from a range the manager owns, like systemd's ``DynamicUser``. The
   choice is written to ``manager.lmdb`` before the program first runs, so it stays the same
   across restarts; a uid is handed to another instance only once the first one's records
   are gone and no process runs under it. Its storage areas, its log and its socket folder
   are then owned by it (0700/0600), everything of the manager's by root.
2. **Landlock**, where the kernel has it: it may read (and execute) its package, the
   interpreter and system folders; write only its storage areas and its own folder
   ``run/<id>/`` (its sockets, and ``TMPDIR``: emptied at each start). It cannot ptrace,
   signal or reach the abstract sockets of a process outside its own Landlock domain. Root
   that keeps uid 0 (no uids) keeps no capability either.
3. **Non-dumpable** (``PR_SET_DUMPABLE`` 0): no ``/proc/PID/mem``, ``environ``, ``fd`` or
   ptrace from other processes of its uid. ``execve`` sets it back, so a program the
   ``process`` runner execs keeps this only through 1 and 2 (and the SDK sets it again
   before it reads its startup info).

The manager sets this up once (``configure``, at boot); each launch asks ``prepare(spec)``
for the program's :class:`Confinement`, which the zygote's child enters before "go"
(``enter``) and a spawn through ``popen`` (from a thread that takes it first). Hooks that
run a command for an instance can do the same::

    confinement = await isolation.prepare(spec)
    process = isolation.popen(confinement, argv, cwd=..., stdout=...)   # in a worker thread

``CM_UIDS`` chooses the uids: ``auto`` (default: as root, from 61184-65519, if the
interpreter and the state folder are reachable by other users), ``off``, or ``FIRST-LAST``
(as root, that range; refuse to boot if they are not reachable). ``CM_LANDLOCK=0`` switches
Landlock off.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import logging
import grp
import os
import platform
import pwd
import shutil
import stat
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import CmError, StartError
from . import landlock
from .startup import make_non_dumpable

__all__ = ["Confinement", "Isolation", "UidPool", "configure", "confinement_of", "enter",
           "make_non_dumpable", "popen", "prepare", "uid_of"]

log = logging.getLogger("component_manager.runners.isolation")

DEFAULT_UID_RANGE = (61184, 65519)  # systemd's range for dynamic users
_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin", "/etc", "/opt",
                "/proc", "/sys")
_libc = ctypes.CDLL(None, use_errno=True)
_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _drop_capabilities() -> None:
    """Root without its powers, for this thread and what it starts: every capability out of
    the bounding set (so an ``execve`` as uid 0 gets none back) and out of this thread's
    sets. The uid stays 0, so files root owns stay reachable: Landlock keeps them out."""
    for cap in range(_last_capability() + 1):
        _prctl(_PR_CAPBSET_DROP, cap)
    _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    header, data = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    if _libc.capset(ctypes.byref(header), data) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"capset: {os.strerror(code)}")


@functools.cache
def _last_capability() -> int:
    """The kernel's highest capability number (read once: each spawn drops them all)."""
    return int(Path("/proc/sys/kernel/cap_last_cap").read_text())


def _prctl(option: int, value: int, arg: int = 0) -> bool:
    if _libc.prctl(option, value, arg, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"prctl({option}): {os.strerror(code)}")
    return True


# ---- what a program gets -------------------------------------------------------------------

@dataclass(frozen=True)
class Confinement:
    """Everything ``enter`` applies to one program: its uid/gid (None: the manager's), what
    Landlock lets it read, write and bind (``landlock`` False: no Landlock)."""

    uid: int | None = None
    gid: int | None = None
    drop_capabilities: bool = False  # root that keeps uid 0: no capability survives
    landlock: bool = False
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    scratch: str = ""  # its own folder: its sockets, its TMPDIR
    listable: tuple[str, ...] = ()  # folders it may list, not read files in
    devices: tuple[str, ...] = _DEVICES

    @property
    def writable(self) -> tuple[str, ...]:
        return (*self.write, self.scratch) if self.scratch else self.write

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> Confinement:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def enter(confinement: Confinement) -> None:
    """In the program's own (single-threaded) process, before its code: build the Landlock
    ruleset (while we may still open everything), take its uid and gid, forbid gaining
    privileges, restrict, become non-dumpable. Raises OSError; then do not run the program."""
    ruleset = None
    if confinement.landlock:
        ruleset = landlock.ruleset(confinement.read, confinement.writable, confinement.devices,
                                   confinement.listable)
    if confinement.uid is not None:
        os.setgroups([])
        os.setresgid(confinement.gid, confinement.gid, confinement.gid)
        os.setresuid(confinement.uid, confinement.uid, confinement.uid)
    if confinement.drop_capabilities:
        _drop_capabilities()
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    if ruleset is not None:
        landlock.restrict_self(ruleset)
    _prctl(_PR_SET_DUMPABLE, 0)


def popen(confinement: Confinement | None, argv, **kwargs) -> subprocess.Popen:
    """``subprocess.Popen(argv, **kwargs)``, the program in ``confinement``.

    The manager must not ``fork``: a forked copy of it runs gRPC's fork handlers, whose
    threads crashed the child (SIGSEGV) before its ``execve`` now and then; ``Popen`` forks
    instead of ``vfork`` when given a ``preexec_fn`` or a ``user``. So a fresh thread of ours
    becomes the program's credentials (its uid and gid by raw system calls, which change
    this thread alone, unlike libc's), drops its capabilities, forbids itself new privileges
    and enters the Landlock domain (all per thread), then spawns with ``vfork``: the child
    inherits all of it. The thread then ends. Raises what Popen raises, and OSError.
    """
    if confinement is None or confinement.uid is None and not (
            confinement.landlock or confinement.drop_capabilities):
        return subprocess.Popen(argv, **kwargs)  # nothing that outlives execve
    outcome: list = []

    def spawn() -> None:
        try:
            _become(confinement)
            outcome.append(subprocess.Popen(argv, **kwargs))
        except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
            outcome.append(e)

    thread = threading.Thread(target=spawn, name="cm-confined-spawn")
    thread.start()
    thread.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _become(confinement: Confinement) -> None:
    """This thread (only) takes ``confinement``; it can never leave it."""
    ruleset = None
    if confinement.landlock:  # built first: root may still open every path
        ruleset = landlock.ruleset(confinement.read, confinement.writable, confinement.devices,
                                   confinement.listable)
    try:
        if confinement.uid is not None:
            _thread_syscall("setgroups", 0, None)
            _thread_syscall("setresgid", confinement.gid, confinement.gid, confinement.gid)
            _thread_syscall("setresuid", confinement.uid, confinement.uid, confinement.uid)
        if confinement.drop_capabilities:
            _drop_capabilities()
        _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    except BaseException:
        if ruleset is not None:
            os.close(ruleset)
        raise
    if ruleset is not None:
        landlock.restrict_self(ruleset)


_THREAD_SYSCALLS = {"x86_64": {"setgroups": 116, "setresuid": 117, "setresgid": 119},
                    "aarch64": {"setgroups": 159, "setresuid": 147, "setresgid": 149}}


def _thread_syscall(name: str, *args) -> None:
    number = _THREAD_SYSCALLS.get(platform.machine(), {}).get(name)
    if number is None:
        raise OSError(errno.ENOSYS, f"{name} for one thread: unknown on {platform.machine()}")
    if _libc.syscall(number, *args) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{name}: {os.strerror(code)}")


# ---- the manager's side --------------------------------------------------------------------

class Isolation:
    """The manager's isolation settings: the uid pool (None: programs keep the manager's
    uid) and whether Landlock is used; see the module docstring."""

    def __init__(self, state_dir: Path, uids: UidPool | None, use_landlock: bool):
        self.state_dir = Path(state_dir)
        self.uids = uids
        self.landlock = use_landlock
        self.runtime, self.listable = _runtime_paths()

    async def prepare(self, spec) -> Confinement:
        """Raises StartError: no free uid, a package out of its uid's reach, its files."""
        uid = None
        try:
            scratch = _fresh_folder(own_folder(self.state_dir / "run", spec.instance_id))
            if self.uids is not None:
                problem = unreachable([spec.package_dir])
                if problem:
                    raise StartError(spec.moniker, f"its package is not reachable by its uid: {problem}")
                uid = await self.uids.uid_for(spec.instance_id, spec.moniker)
                _hand_over(spec, uid, scratch)
        except OSError as e:
            raise StartError(spec.moniker, f"cannot prepare its files: {e}") from None
        return Confinement(
            uid=uid, gid=uid, drop_capabilities=uid is None and os.geteuid() == 0,
            landlock=self.landlock, read=(*self.runtime, str(spec.package_dir)),
            listable=self.listable, write=tuple(spec.startup.storage.values()), scratch=str(scratch))


_ACTIVE: Isolation | None = None


def configure(store, state_dir: Path, environ=os.environ) -> Isolation:
    """Decide the isolation of this manager's programs (at boot, once the store is open)
    and make its state folder its own. Raises CmError for a ``CM_UIDS`` it cannot honour."""
    global _ACTIVE
    uids = _uid_pool(store, state_dir, environ.get("CM_UIDS", "auto").strip().lower())
    use_landlock = environ.get("CM_LANDLOCK", "1").strip().lower() not in ("0", "off", "false", "no")
    abi = landlock.abi_version() if use_landlock else 0
    if use_landlock and not abi:
        log.warning("this kernel has no Landlock: programs are not confined to their own files")
    secure_state_dir(state_dir, shared=uids is not None)
    _ACTIVE = Isolation(state_dir, uids, bool(abi))
    _warn_if_readable(_ACTIVE)
    log.info("isolation: %s, Landlock %s", f"uids {uids.first}-{uids.last}" if uids else
             f"programs run as uid {os.geteuid()}" + (" without capabilities" if os.geteuid() == 0 else ""),
             f"ABI {abi}" if abi else "off")
    return _ACTIVE


def deconfigure() -> None:
    global _ACTIVE
    _ACTIVE = None


async def prepare(spec) -> Confinement | None:
    """The confinement of ``spec``'s program; None outside a manager (nothing configured).
    Raises StartError (no free uid, package out of its reach)."""
    return None if _ACTIVE is None else await _ACTIVE.prepare(spec)


def confinement_of(instance_id: str, package_dir, storage: dict[str, str]) -> Confinement | None:
    """The confinement of a command run for an instance whose program was prepared (a
    post_stop hook, a trigger, a health probe): its program's uid and Landlock domain, with
    nothing allocated, handed over or emptied. None outside a manager."""
    if _ACTIVE is None:
        return None
    uid = uid_of(instance_id)
    return Confinement(
        uid=uid, gid=uid, drop_capabilities=uid is None and os.geteuid() == 0,
        landlock=_ACTIVE.landlock, read=(*_ACTIVE.runtime, str(package_dir)), listable=_ACTIVE.listable,
        write=tuple(storage.values()), scratch=str(own_folder(_ACTIVE.state_dir / "run", instance_id)))


def uid_of(instance_id: str) -> int | None:
    """The uid an instance's programs run under; None when they run under the manager's."""
    if _ACTIVE is None or _ACTIVE.uids is None:
        return None
    return _ACTIVE.uids.by_instance.get(instance_id)


def _uid_pool(store, state_dir: Path, setting: str) -> UidPool | None:
    if setting == "off" or os.geteuid() != 0:
        if setting not in ("off", "auto"):
            log.warning("CM_UIDS=%s ignored: the manager does not run as root", setting)
        return None
    first, last = DEFAULT_UID_RANGE if setting == "auto" else _parse_range(setting)
    import site

    problem = unreachable([Path(sys.executable).resolve(), Path(os.__file__).parent,
                           Path(__file__).parents[1], *filter(os.path.isdir, site.getsitepackages()),
                           Path(state_dir).parent])
    if problem and setting == "auto":
        log.warning("programs run as root without capabilities: per-instance uids need %s "
                    "(set CM_UIDS=off to say so)", problem)
        return None
    if problem:
        raise CmError(f"CM_UIDS={setting}: per-instance uids need {problem}")
    return UidPool(store, first, last)


def _parse_range(text: str) -> tuple[int, int]:
    first, sep, last = text.partition("-")
    try:
        low, high = int(first), int(last)
    except ValueError:
        low = high = -1
    if not sep or not 0 < low <= high < 1 << 31:
        raise CmError(f"CM_UIDS={text!r}: expected auto, off or FIRST-LAST (e.g. 61184-65519)")
    return low, high


def unreachable(paths) -> str:
    """Why another uid (not the owner, in no group) could not reach ``paths``; "" if it can."""
    for path in paths:
        path = Path(path).resolve()
        for folder in [*reversed(path.parents), path]:
            try:
                mode = folder.stat().st_mode
            except OSError as e:
                return f"{folder}: {e.strerror}"
            if not mode & stat.S_IXOTH and (stat.S_ISDIR(mode) or folder == path):
                return f"{folder} searchable by other users (it is mode {stat.S_IMODE(mode):04o})"
    return ""


def _runtime_paths() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What every program may read: system folders, the interpreter, this package and the
    libraries it came with (never the manager's working directory); and what it may only
    list: the folder this package is in (a checkout, for an editable install: the importer
    lists it, and the state folder may be in it)."""
    import site

    package = Path(__file__).resolve().parents[1]
    runtime = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
               str(Path(sys.executable).resolve().parent), str(package)}
    runtime.update(site.getsitepackages())
    runtime.update(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)
    return (*_SYSTEM_READ, *sorted(runtime)), (str(package.parent),)


def _warn_if_readable(isolation: Isolation) -> None:
    state = isolation.state_dir.resolve()
    for path in isolation.runtime:
        if state == Path(path) or Path(path) in state.parents:
            log.warning("the state folder %s is inside %s, which programs may read: only file "
                        "modes keep them out of it", state, path)


def own_folder(run_root: Path, instance_id: str) -> Path:
    """``run/<first 16 of the id>/``: an instance's sockets and scratch files. Short, for
    socket paths (108 bytes at most)."""
    return Path(run_root) / instance_id[:16]


def _fresh_folder(folder: Path) -> Path:
    """The folder, emptied of what an earlier run left (a private /tmp per start). Links a
    program left there are removed, never followed."""
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink(missing_ok=True)
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def _hand_over(spec, uid: int, scratch: Path) -> None:
    """Make the program's own files its own: storage areas (and their folder), its log, its
    own folder (0711: clients reach its socket, nobody lists the folder). We are root in
    folders it owns: nothing here follows a link it may have planted (an error instead)."""
    for area in spec.startup.storage.values():
        _own(Path(area).parent, uid, 0o700)
        _own(Path(area), uid, 0o700, with_files=True)
    fd = os.open(spec.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchown(fd, uid, uid)
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    _own(scratch, uid, 0o711)


def _own(folder: Path, uid: int, mode: int, with_files: bool = False) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchown(fd, uid, uid)
        os.fchmod(fd, mode)
        for entry in os.scandir(fd) if with_files else ():
            os.chown(entry.name, uid, uid, dir_fd=fd, follow_symlinks=False)
    finally:
        os.close(fd)


def secure_state_dir(state_dir: Path, shared: bool) -> None:
    """The manager's files are its own: folders 0700, files 0600. With per-instance uids the
    state folder, ``run/`` and ``storage/`` are 0711 (programs pass through to their own
    socket folder and storage, and list nothing)."""
    state_dir = Path(state_dir)
    passable = 0o711 if shared else 0o700
    for folder, mode in ((state_dir, passable), (state_dir / "run", passable),
                         (state_dir / "storage", passable), (state_dir / "logs", 0o700),
                         (state_dir / "manager.lmdb", 0o700)):
        folder.mkdir(mode=mode, exist_ok=True)
        os.chmod(folder, mode)
    for path in [*(state_dir / "manager.lmdb").iterdir(), *state_dir.glob("*.log"),
                 *state_dir.glob("manager.*")]:
        if path.is_file():
            os.chmod(path, 0o600)


def share_sockets(paths) -> None:
    """The manager's sockets for programs (ComponentRuntime, framework): writable by every
    uid when programs have their own (the token and grants guard them, not the mode)."""
    mode = 0o666 if _ACTIVE is not None and _ACTIVE.uids is not None else 0o600
    for path in paths:
        os.chmod(path, mode)


# ---- uids ----------------------------------------------------------------------------------

class UidPool:
    """Instance id -> uid, from ``first``-``last``, durable in the manager's store.

    Example: ``await pool.uid_for(iid)`` -> 61184 (the same after a restart); the next new
    instance gets 61185. A uid is free when no instance holds it, no user or group of the
    host has it, and no process runs under it. Once none is free, uids of instances whose
    records are gone (destroyed) are taken back."""

    def __init__(self, store, first: int, last: int):
        self.store = store
        self.first, self.last = first, last
        self.by_instance: dict[str, int] = store.all_uids()

    async def uid_for(self, instance_id: str, moniker: str = "") -> int:
        uid = self.by_instance.get(instance_id)
        if uid is not None:
            return uid
        uid = self._pick() or (self._reclaim() and self._pick())
        if not uid:
            raise StartError(moniker, f"no free uid in {self.first}-{self.last} (CM_UIDS)")
        self.by_instance[instance_id] = uid  # reserved before the await: no two get it
        batch = self.store.new_batch()
        batch.put_uid(instance_id, uid)
        try:
            await self.store.commit(batch)  # durable before anything runs or is owned by it
        except BaseException:
            self.by_instance.pop(instance_id, None)
            raise
        return uid

    def _pick(self) -> int:
        taken = set(self.by_instance.values()) | _uids_running()
        for uid in range(self.first, self.last + 1):
            if uid not in taken and not _known_to_host(uid):
                return uid
        return 0

    def _reclaim(self) -> bool:
        alive = {record.instance_id for record in self.store.all_instances()}
        gone = [iid for iid in self.by_instance if iid not in alive]
        batch = self.store.new_batch()
        for iid in gone:
            del self.by_instance[iid]
            batch.delete_uid(iid)
        self.store.commit_now(batch)
        return bool(gone)


def _known_to_host(uid: int) -> bool:
    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(uid)
            return True
        except KeyError:
            pass
    return False


def _uids_running() -> set[int]:
    """The real uids of every process (``/proc/PID`` itself belongs to root when the process
    is not dumpable, so its status says)."""
    uids = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/status", "rb") as f:
                    line = next(l for l in f if l.startswith(b"Uid:"))
                uids.add(int(line.split()[1]))
            except (OSError, StopIteration, ValueError):
                pass
    return uids
