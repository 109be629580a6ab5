"""The zygote: a pre-warmed interpreter that forks one child per ``python``-runner start.

A plain start (``sys.executable -m module``) spends ~100 ms starting an interpreter and
importing grpc, protobuf and the SDK before the program does anything. The zygote is one
interpreter that has imported all of that once and then forks a child per start (~1.5 ms,
measured on these machines); the child becomes the program exactly as ``python -m module``
would have made it. No gRPC channel, server or thread is alive when it forks (forking
those is unsafe): it starts and stops one server once, at startup, and waits until gRPC has
ended its threads (``_warm_grpc``: gRPC's once-per-process work is then inherited). It
configures nothing a program might set up itself (no logging handlers, no event loop).

Run as ``sys.executable -P -m component_manager.runners.zygote FD`` by the manager
(``zygote_client.py``), FD being its end of a ``SOCK_SEQPACKET`` socketpair. One JSON
object per message::

    zygote  -> manager  {"ready": PID}                                   once, after the imports
    manager -> zygote   {"launch": N, "module": "m", "args": [...], "cwd": DIR,
                         "env": {...}, "startup_fd": 7,
                         "confine": {...}, "held": true}     + SCM_RIGHTS [log fd, startup socket]
    manager -> zygote   {"go": P}        a held child may run now (its start is recorded)
    zygote  -> manager  {"launched": N, "pid": P, "start_ticks": T}      + SCM_RIGHTS [pidfd of P]
                     or {"refused": N, "error": "one line"}              (the manager then spawns)
    zygote  -> manager  {"exit": P, "status": S}          S as from waitpid, whenever a child ends

The zygote reaps its children (SIGCHLD wakes its poll loop) and reports each status. It exits
when the manager closes its end. Scenario: the manager asks to launch ``echo.server``. The
zygote checks it can run it faithfully (below), hands the request to its *spare* (a child it
forked ahead of time, while idle, that has already left the zygote: own session, signals,
descriptors) or, if it has none, forks one now; answers the manager with the pid and a
pidfd; then says "go" to the child, or, for a held launch, waits until the manager says
``{"go": P}`` (once it has recorded the start durably). Meanwhile the child takes the
program's log, startup pipe, cwd, environment, ``sys.path``, ``sys.argv`` and standard
streams, and enters its confinement (``isolation.enter``: its uid, Landlock,
non-dumpable); after "go" it runs
``runpy._run_module_as_main`` and ends as the interpreter would (``zygote_child.py``). A
child whose zygote dies before "go" exits without running the program, so the manager's
fallback spawn can never run it twice; and as the zygote exits when the manager's end of its
socket closes, a held child of a manager killed before it recorded the start never runs.

Choices, and why:

- The zygote, not the manager, is the parent and reaps (the manager learns statuses from
  ``exit`` messages). Making the manager a subreaper with double forks would hand it every
  orphan of every program, to be reaped by a ``waitpid(-1)`` that would also steal the
  statuses of the programs it spawns itself. The pidfd it gets per child covers the one gap:
  a program that outlives its zygote still has its end noticed (status unknown: a crash).
- It answers right after the fork and lets the child run only after "go": the manager is
  not kept waiting for the child's setup, and no program can run without the manager
  having its pid. A signal sent before the child's ``setsid`` reaches it by pidfd.
- A spare child forked while idle takes the fork (~1-2 ms) off the start's critical path.
  While it waits, it copies ahead the pages a served program writes first (learned from
  the warm-up, ``pages.py``; ~1,400 pages, each a fault of 5-14 us otherwise), stopping
  as soon as a launch is waiting: an SDK server then owns ~1 MB more (PSS 11.9 -> 12.9 MB
  here), pages it would mostly have copied anyway. Not all of the zygote's pages: that
  also saved ~3 ms, but made each program own ~19 MB instead of ~7 MB.
- It runs with ``-P`` (no script directory on ``sys.path``), so a child's ``sys.path`` is
  exactly ``[cwd] + PYTHONPATH + the zygote's own base path``, as ``python -m`` builds it.

What the zygote refuses (the manager then spawns as before, which is always faithful):

- a ``sys.path`` under which a module the zygote has already imported would come from
  another file (the package directory has its own ``grpc`` or ``json``, or ``PYTHONPATH``
  drops the entry a preloaded module came from); the manager itself refuses programs whose
  ``PYTHON*`` (other than ``PYTHONPATH``/``PYTHONUNBUFFERED``), locale, ``GRPC_*``,
  ``PROTOCOL_BUFFERS_*`` or ``LMDB_*`` variables differ from the zygote's, as those acted
  when the zygote started or imported its modules;
- a working directory that does not exist (the manager's spawn then reports it).

Known differences from a fresh interpreter, by design: the preloaded modules are already in
``sys.modules``; every child shares the zygote's string-hash seed (``PYTHONHASHSEED``
randomization is per zygote, not per program; ``random`` and ``tempfile`` reseed after fork);
the program's parent is the zygote, not the manager; objects the zygote created are frozen
out of the garbage collector (``gc.freeze``, which keeps copy-on-write pages shared).
"""

from __future__ import annotations

import array
import asyncio
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import time

from . import pages
from . import zygote_child as child

PRELOAD = ("asyncio", "json", "runpy", "threading", "atexit", "ctypes", "grpc", "grpc.aio",
           "google.protobuf", "lmdb", "component_manager.sdk", "component_manager.storage.areas",
           "component_manager.runners.isolation", "component_manager.runners.landlock")
# By name, as PRELOAD: what a program would run, not a layer the runners use (sdk imports runners)
WARM_UP = "component_manager.sdk._warm_up"
MAX_MESSAGE = 1 << 20
# Fork the next spare once no request came for this long: soon, because a program that was
# just started often connects at once to a provider that must start too.
SPARE_AFTER_IDLE_MS = 5
SPARE_RETRY_MS = 1000  # after a failed fork (EAGAIN, ENOMEM)
GRPC_THREADS_END_S = 2.0  # after the warm-up (_warm_grpc); they end within ~1 ms here
_GO = b"g"


# ---- the zygote ------------------------------------------------------------------------------

def main() -> int:
    control = socket.socket(fileno=int(sys.argv[1]))
    dispositions = _signal_dispositions()  # as inherited: what a fresh interpreter would have
    _preload()
    gc.collect()
    gc.freeze()  # before the warm-up: what it writes then is what a program would write
    hot_pages = _warm_grpc()
    if hot_pages is None:
        print("zygote: gRPC still runs threads after its warm-up; a fork now would be unsafe",
              file=sys.stderr, flush=True)
        return 1
    origins = _module_origins()
    gc.collect()
    gc.freeze()
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # the wakeup fd does the work
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on the manager's terminal is its own
    zygote = ForkServer(control, dispositions, origins, (wake_r, wake_w), hot_pages)
    try:
        _send(control, {"ready": os.getpid()})
        return zygote.serve()
    except (BrokenPipeError, ConnectionResetError):
        return 0  # the manager is gone


def _preload() -> None:
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError as e:  # an optional module: the children import it themselves
            print(f"zygote: not preloading {name}: {e}", file=sys.stderr, flush=True)


def _warm_grpc() -> list[tuple[int, int]] | None:
    """Serve one call through the SDK (a server and a channel to it, on an abstract socket),
    stop both, and wait until gRPC has ended every thread it made. Returns the runs of pages
    that it wrote (``pages.Touched``; [] where they cannot be told), or None if gRPC still
    runs threads after ``GRPC_THREADS_END_S`` (then the zygote must not fork).

    Why: what gRPC does once per process is then done once, here, and inherited by every
    child instead of done at the first call of each. Above all, abseil measures the cycle
    counter's rate the first time a thread waits on a contended lock, which every new
    server's first call does: it sleeps 1 + 2 ms or more for that (the kernel here exports
    no ``tsc_freq_khz``), ~3 ms of a cold lazy start. And the pages written here are the
    ones a served program writes first: each spare copies them ahead (``pages.copy_ahead``).
    Nothing of gRPC is left at a fork: no server, channel or thread (module docstring)."""
    try:
        warm_up = importlib.import_module(WARM_UP).warm_up
    except ImportError:  # no grpc: a child that needs it imports it (and pays for it) itself
        return []
    try:
        touched = pages.Touched.begin()
    except OSError:  # no pagemap: nothing is copied ahead
        touched = None
    try:
        asyncio.run(warm_up(f"unix-abstract:cm-zygote-{os.getpid()}-{os.urandom(6).hex()}"))
    except Exception as e:  # noqa: BLE001 - children then pay for it themselves; the log says why
        print(f"zygote: gRPC warm-up failed: {e!r}", file=sys.stderr, flush=True)
    finally:
        runs = touched.end() if touched is not None else []
    gc.collect()  # the server's last reference: gRPC shuts down and ends its threads
    deadline = time.monotonic() + GRPC_THREADS_END_S
    while len(os.listdir("/proc/self/task")) > 1:
        if time.monotonic() > deadline:
            return None
        time.sleep(0.001)  # native threads: nothing to join or wait on from Python
    return runs


def _signal_dispositions() -> dict[int, object]:
    found = {}
    for sig in signal.valid_signals():
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            handler = signal.getsignal(sig)
            if handler is not None:
                found[sig] = handler
    return found


def _module_origins() -> dict[str, frozenset[str]]:
    """Top-level module name -> the directories its files came from (several for a namespace
    package); built-in modules, which no path entry can shadow, are left out."""
    origins = {}
    for name, module in list(sys.modules.items()):
        if "." in name or module is None:
            continue
        locations = list(getattr(module, "__path__", None) or ())
        if not locations and getattr(module, "__file__", None):
            locations = [module.__file__]
        if locations:
            origins[name] = frozenset(os.path.dirname(os.path.abspath(p)) for p in locations)
    return origins


class ForkServer:
    """The zygote's loop. It keeps one *spare*: a child forked ahead of time (when the zygote
    has been idle for ``SPARE_AFTER_IDLE_MS``) that has already left the zygote (own session,
    signals, descriptors) and waits on its own socket for a launch, so that a start does not
    wait for a fork. Without a spare (a burst of starts), a launch forks a fresh child."""

    def __init__(self, control: socket.socket, dispositions, origins, wake_pipe, hot_pages=()):
        self.control = control
        self.hot_pages = hot_pages  # what a spare copies ahead (pages.copy_ahead)
        self.own_pages: list | None = None  # what the zygote copies ahead (learn_own_pages)
        self.learning: pages.Touched | None = None
        self.spare_launched = False  # since the last fork
        self.dispositions = dispositions
        self.origins = origins
        self.wake_pipe = wake_pipe
        self.own_pythonpath = _pythonpath_entries(os.environ.get("PYTHONPATH", ""), os.getcwd())
        self.base_path = [p for p in sys.path if p not in self.own_pythonpath]
        self.spare: tuple[int, socket.socket] | None = None  # (pid, our end of its socket)
        self.spare_delay_ms = SPARE_AFTER_IDLE_MS
        self.held: dict[int, tuple] = {}  # pid -> (say go, close): launched held, not released

    def serve(self) -> int:
        poller = select.poll()
        poller.register(self.control, select.POLLIN)
        poller.register(self.wake_pipe[0], select.POLLIN)
        while True:
            ready = poller.poll(None if self.spare else self.spare_delay_ms)
            if not ready:
                self.fork_spare()
            for fd, _events in ready:
                if fd == self.wake_pipe[0]:
                    _drain(fd)
                    self.reap()
                elif not self.handle_request():
                    return 0

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.spare is not None and pid == self.spare[0]:
                self.spare[1].close()  # killed by someone before it was used: fork another
                self.spare = None
            else:
                self.release(pid, False)  # died held: nothing to say "go" to
                _send(self.control, {"exit": pid, "status": status})

    def fork_spare(self) -> None:
        self.learn_own_pages(ending=True)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sys.stdout.flush()  # nothing of ours may be flushed later into a child's log
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            self.spare_delay_ms = SPARE_RETRY_MS  # launches fork (or are refused) meanwhile
            return
        self.spare_delay_ms = SPARE_AFTER_IDLE_MS
        if pid == 0:
            ours.close()
            _serve_as_spare(self, theirs)  # never returns
        theirs.close()
        self.spare = (pid, ours)
        self.spare_launched = False
        self.learn_own_pages(ending=False)
        pages.copy_ahead(self.own_pages or [], lambda: _readable(self.control))

    def learn_own_pages(self, ending: bool) -> None:
        """Right after a fork every page is shared again, and the zygote's own first writes to
        each (~300 while it hands a launch on and says "go": ~1 ms here) would be copies on
        the start's path. So after each spare's fork it copies them ahead, while idle. Which
        pages: those it writes in one whole cycle, from a spare's fork through that spare's
        launch to the next fork, learned once (``pages.Touched`` begun after the one fork,
        ended before the next: a fork shares the pages again)."""
        if self.own_pages is not None:
            return
        try:
            if ending and self.learning is not None and self.spare_launched:
                learning, self.learning = self.learning, None
                self.own_pages = learning.end()
            elif not ending and self.learning is None:
                self.learning = pages.Touched.begin()
        except OSError:
            self.own_pages = []

    def handle_request(self) -> bool:
        """Serve one message; False when the manager has closed its end."""
        data, fds, flags, _ = self.control.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(16 * 4))
        fds = received_fds(fds)
        try:
            if not data:
                return False
            number = None
            request = json.loads(data)
            number = request.get("launch")
            if "go" in request:
                self.release(int(request["go"]), True)
            elif flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) != 2:
                _send(self.control, {"refused": number, "error": "malformed launch request"})
            else:
                self.launch(number, request, fds)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            _send(self.control, {"refused": number, "error": f"bad request: {e!r}"})
        except OSError as e:  # no fork (EAGAIN, ENOMEM), no pidfd, ...: the manager spawns
            _send(self.control, {"refused": number, "error": f"cannot launch: {e}"})
        finally:
            for fd in fds:
                os.close(fd)
        return True

    def launch(self, number, request: dict, fds: list[int]) -> None:
        env = request["env"]
        cwd = os.path.realpath(request["cwd"])  # what os.getcwd() will say in the child
        if int(request["startup_fd"]) < 3:
            raise ValueError("startup_fd must be 3 or more")
        child_path = [cwd, *_unique(_pythonpath_entries(env.get("PYTHONPATH", ""), cwd), self.base_path)]
        problem = (None if os.path.isdir(cwd) else f"no directory {cwd}") or _shadowing(
            child_path, sys.path, self.origins)
        if problem:
            _send(self.control, {"refused": number, "error": problem})
            return
        request = {**request, "cwd": cwd, "sys_path": child_path}
        if not self.launch_spare(number, request, fds):
            self.launch_fresh(number, request, fds)

    def launch_spare(self, number, request: dict, fds: list[int]) -> bool:
        """Hand the launch to the spare; False if there is none (or it just died)."""
        if self.spare is None:
            return False
        pid, channel = self.spare
        self.spare = None
        try:
            _send(channel, request, fds)
        except OSError:
            channel.close()
            return False  # it died; reap() will collect it
        self.spare_launched = True
        self.answer_launch(number, pid)
        self.go_or_hold(request, pid, lambda: channel.send(_GO), channel.close)
        return True

    def launch_fresh(self, number, request: dict, fds: list[int]) -> None:
        sys.stdout.flush()  # nothing of ours may be flushed later into the child's log
        sys.stderr.flush()
        go_r, go_w = _go_pipe(int(request["startup_fd"]))
        pid = os.fork()
        if pid == 0:
            os.close(go_w)
            _become_program(self, request, fds, go_r)  # never returns
        os.close(go_r)
        try:  # the child sets itself up meanwhile; it runs the program only after "go"
            self.answer_launch(number, pid)
        except BaseException:
            os.close(go_w)
            raise
        self.go_or_hold(request, pid, lambda: os.write(go_w, _GO), lambda: os.close(go_w))

    def go_or_hold(self, request: dict, pid: int, say_go, close) -> None:
        """Say "go" now, or (a held launch) when the manager says so (``release``)."""
        if request.get("held"):
            self.held[pid] = (say_go, close)
            return
        try:
            _say_go(say_go)
        finally:
            close()

    def release(self, pid: int, go: bool) -> None:
        """The manager's word on a held child: "go", or drop it (it exits 127 unrun)."""
        held = self.held.pop(pid, None)
        if held is not None:
            say_go, close = held
            try:
                if go:
                    _say_go(say_go)
            finally:
                close()

    def answer_launch(self, number, pid: int) -> None:
        pidfd = os.pidfd_open(pid)  # the child is not reaped before we are back in serve()
        try:
            _send(self.control, {"launched": number, "pid": pid, "start_ticks": _start_ticks(pid)}, [pidfd])
        finally:
            os.close(pidfd)


def _say_go(write) -> None:
    try:
        write()
    except OSError:
        pass  # the child died: its exit is reported like any other


def _go_pipe(startup_fd: int) -> tuple[int, int]:
    """The pipe that says "go" to a child; its read end never sits on the startup fd number."""
    go_r, go_w = os.pipe()
    if go_r == startup_fd:
        moved = os.dup(go_r)
        os.close(go_r)
        go_r = moved
    return go_r, go_w


def _readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _send(control: socket.socket, message: dict, fds: list[int] = ()) -> None:
    socket.send_fds(control, [json.dumps(message).encode()], list(fds))


def received_fds(ancillary) -> list[int]:
    """The descriptors in a ``recvmsg`` ancillary list (SCM_RIGHTS)."""
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    return list(fds)


def _start_ticks(pid: int) -> int:
    """Field 22 of /proc/PID/stat (start time in clock ticks), as ``procinfo.identity_of``."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return int(text[text.rindex(")") + 2:].split()[22 - 3])


# ---- sys.path as `python -m` builds it -------------------------------------------------------

def _pythonpath_entries(pythonpath: str, cwd: str) -> list[str]:
    """PYTHONPATH as the interpreter takes it: empty entries dropped, relative ones made
    absolute from the working directory, duplicates removed (``site.removeduppaths``)."""
    return _unique([os.path.normpath(os.path.join(cwd, p)) for p in pythonpath.split(os.pathsep) if p])


def _unique(*lists: list[str]) -> list[str]:
    seen, result = set(), []
    for entry in (e for lst in lists for e in lst):
        if entry not in seen:
            seen.add(entry)
            result.append(entry)
    return result


def _shadowing(child_path: list[str], own_path: list[str], origins) -> str | None:
    """Why a preloaded module would not be the one the child imports, or None."""
    kept = set(child_path)
    for name, dirs in origins.items():
        lost = [d for d in dirs if d in own_path and d not in kept]
        if lost:
            return f"the program's sys.path drops {lost[0]}, where preloaded {name!r} comes from"
    own = set(own_path)
    for entry in child_path:
        if entry in own:
            continue
        try:
            names = os.listdir(entry)
        except OSError:
            continue  # a missing directory shadows nothing
        for file_name in names:
            name = file_name.partition(".")[0]
            if name in origins and origins[name] != {entry}:
                return f"{entry} has its own {name!r}, already imported by the zygote"
    return None


# ---- in the children (the rest is zygote_child.py) -------------------------------------------

def _become_program(server: ForkServer, request: dict, fds: list[int], go_r: int):
    """A fresh child: set up, wait for "go", run the module. Never returns."""
    try:
        child.leave_zygote(server.dispositions, server.control, (go_r, *fds))
        child.take_program(request, fds, request["sys_path"])
        child.confine(request)  # isolation: its uid, Landlock, non-dumpable; before its code
        go = os.read(go_r, 1)
        os.close(go_r)
    except BaseException as e:  # noqa: BLE001 - the program's log says why
        child.fail_setup(e)
    if go != _GO:
        os._exit(child.FAILED_SETUP_EXIT)  # the zygote died before the manager heard of us
    child.run_and_exit(request["module"])


def _serve_as_spare(server: ForkServer, channel: socket.socket):
    """A spare: leave the zygote now, then wait for a launch and its "go". Never returns."""
    try:
        child.leave_zygote(server.dispositions, server.control, (channel.fileno(),))
        pages.copy_ahead(server.hot_pages, lambda: _readable(channel))  # a launch goes first
        data, ancillary, _flags, _ = channel.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(2 * 4))
        if not data:
            os._exit(0)  # the zygote is gone: nothing to become
        request, fds = json.loads(data), received_fds(ancillary)
        if channel.fileno() == int(request["startup_fd"]):  # keep clear of that number
            old = channel.detach()
            channel = socket.socket(fileno=os.dup(old))
            os.close(old)
        child.take_program(request, fds, request["sys_path"])
        child.confine(request)  # isolation: its uid, Landlock, non-dumpable; before its code
        go = channel.recv(16)
        channel.close()
    except BaseException as e:  # noqa: BLE001 - the program's log says why
        child.fail_setup(e)
    if go != _GO:
        os._exit(child.FAILED_SETUP_EXIT)
    child.run_and_exit(request["module"])


if __name__ == "__main__":
    sys.exit(main())
