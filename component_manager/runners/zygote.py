"""The zygote: a pre-warmed interpreter that forks one child per ``python``-runner start.

A plain start (``sys.executable -m module``) spends ~100 ms starting an interpreter and
importing grpc, protobuf and the SDK before the program does anything. The zygote is one
interpreter that has imported all of that once and then forks a child per start (~1.5 ms,
FACTS.md); the child becomes the program exactly as ``python -m module`` would have made it.
It never creates a gRPC channel, server or thread before it forks (forking those is unsafe),
and it configures nothing a program might set up itself (no logging handlers, no event loop).

Run as ``sys.executable -P -m component_manager.runners.zygote FD`` by the manager
(``zygote_client.py``), FD being its end of a ``SOCK_SEQPACKET`` socketpair. One JSON
object per message::

    zygote  -> manager  {"ready": PID}                                   once, after the imports
    manager -> zygote   {"launch": N, "module": "m", "args": [...], "cwd": DIR,
                         "env": {...}, "startup_fd": 7}      + SCM_RIGHTS [log fd, startup pipe]
    zygote  -> manager  {"launched": N, "pid": P, "start_ticks": T}      + SCM_RIGHTS [pidfd of P]
                     or {"refused": N, "error": "one line"}              (the manager then spawns)
    zygote  -> manager  {"exit": P, "status": S}          S as from waitpid, whenever a child ends

The zygote reaps its children (SIGCHLD wakes its poll loop) and reports each status. It exits
when the manager closes its end. Scenario: the manager asks to launch ``echo.server``; the
zygote forks and answers the manager at once with the pid and a pidfd; meanwhile the child
calls ``setsid``, restores the signal dispositions a fresh interpreter has, puts the log on 1
and 2 and the startup pipe on fd 7, closes everything else of the zygote's, and takes the
program's environment, cwd, ``sys.path``, ``sys.argv`` and standard streams. Then it waits for
the zygote's "go", written right after the answer was sent (a child whose zygote dies before
"go" exits without running the program, so the manager's fallback spawn can never run it
twice), and runs ``runpy._run_module_as_main`` (what ``python -m`` runs). It ends as the
interpreter would: non-daemon threads joined, atexit handlers run, stdio flushed,
``SystemExit`` codes as Python maps them, an uncaught exception's traceback on stderr and
code 1, an uncaught KeyboardInterrupt as death by SIGINT. It always leaves by ``os._exit``,
so nothing of the zygote's own runs at its end. A child that cannot set itself up (it never
happens short of a bug) writes why to its log and exits 127, like a failed exec.

What the zygote refuses (the manager then spawns as before, which is always faithful):

- a ``sys.path`` under which a module the zygote has already imported would come from
  another file (the package directory has its own ``grpc`` or ``json``, or ``PYTHONPATH``
  drops the entry a preloaded module came from); the manager itself refuses programs whose
  ``PYTHON*`` (other than ``PYTHONPATH``/``PYTHONUNBUFFERED``) or locale variables differ
  from the zygote's, as those act at interpreter start;
- a working directory that does not exist (the manager's spawn then reports it).

Known differences from a fresh interpreter, by design: the preloaded modules are already in
``sys.modules``; every child shares the zygote's string-hash seed (``PYTHONHASHSEED``
randomization is per zygote, not per program; ``random`` and ``tempfile`` reseed after fork);
the program's parent is the zygote, not the manager; objects the zygote created are frozen
out of the garbage collector (``gc.freeze``, which keeps copy-on-write pages shared).
"""

from __future__ import annotations

import gc
import importlib
import io
import json
import os
import select
import signal
import socket
import sys
import time

PRELOAD = ("asyncio", "json", "runpy", "threading", "atexit", "grpc", "grpc.aio",
           "google.protobuf", "lmdb", "component_manager.sdk", "component_manager.storage.areas")
MAX_MESSAGE = 1 << 20
FAILED_SETUP_EXIT = 127
_GO = b"g"


# ---- the zygote ------------------------------------------------------------------------------

def main() -> int:
    control = socket.socket(fileno=int(sys.argv[1]))
    dispositions = _signal_dispositions()  # as inherited: what a fresh interpreter would have
    _preload()
    origins = _module_origins()
    gc.collect()
    gc.freeze()
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # the wakeup fd does the work
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on the manager's terminal is its own
    zygote = ForkServer(control, dispositions, origins, (wake_r, wake_w))
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
    def __init__(self, control: socket.socket, dispositions, origins, wake_pipe):
        self.control = control
        self.dispositions = dispositions
        self.origins = origins
        self.wake_pipe = wake_pipe
        self.own_pythonpath = _pythonpath_entries(os.environ.get("PYTHONPATH", ""), os.getcwd())
        self.base_path = [p for p in sys.path if p not in self.own_pythonpath]

    def serve(self) -> int:
        poller = select.poll()
        poller.register(self.control, select.POLLIN)
        poller.register(self.wake_pipe[0], select.POLLIN)
        while True:
            for fd, _events in poller.poll():
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
            _send(self.control, {"exit": pid, "status": status})

    def handle_request(self) -> bool:
        """Serve one message; False when the manager has closed its end."""
        data, fds, flags, _ = self.control.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(16 * 4))
        fds = _fds_of(fds)
        try:
            if not data:
                return False
            request = json.loads(data)
            number = request.get("launch")
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) != 2:
                _send(self.control, {"refused": number, "error": "malformed launch request"})
            else:
                self.launch(number, request, fds)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            _send(self.control, {"refused": None, "error": f"bad request: {e}"})
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
        sys.stdout.flush()  # nothing of ours may be flushed later into the child's log
        sys.stderr.flush()
        go_r, go_w = _go_pipe(int(request["startup_fd"]))
        pid = os.fork()
        if pid == 0:
            os.close(go_w)
            _become_program(self, {**request, "cwd": cwd}, fds, child_path, go_r)  # never returns
        os.close(go_r)
        try:  # the child sets itself up meanwhile; it runs the program only after "go"
            self.answer_launch(number, pid)
            os.write(go_w, _GO)
        finally:
            os.close(go_w)

    def answer_launch(self, number, pid: int) -> None:
        pidfd = os.pidfd_open(pid)  # the child is not reaped before we are back in serve()
        try:
            _send(self.control, {"launched": number, "pid": pid, "start_ticks": _start_ticks(pid)}, [pidfd])
        finally:
            os.close(pidfd)


def _go_pipe(startup_fd: int) -> tuple[int, int]:
    """The pipe that says "go" to a child; its read end never sits on the startup fd number."""
    go_r, go_w = os.pipe()
    if go_r == startup_fd:
        moved = os.dup(go_r)
        os.close(go_r)
        go_r = moved
    return go_r, go_w


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _send(control: socket.socket, message: dict, fds: list[int] = ()) -> None:
    socket.send_fds(control, [json.dumps(message).encode()], list(fds))


def _fds_of(ancillary) -> list[int]:
    import array

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


# ---- the child -------------------------------------------------------------------------------

def _become_program(zygote: ForkServer, request: dict, fds: list[int], child_path, go_r: int):
    """In the forked child: set up, wait for "go", run the module, exit. Never returns."""
    try:
        _set_up_process(zygote, request, fds, go_r)
        _set_up_interpreter(request, child_path)
        go = os.read(go_r, 1)
        os.close(go_r)
    except BaseException as e:  # noqa: BLE001 - the program's log says why; exit as a failed exec
        try:
            os.write(2, f"component_manager zygote: cannot set up the program: {e!r}\n".encode())
        finally:
            os._exit(FAILED_SETUP_EXIT)
    if go != _GO:
        os._exit(FAILED_SETUP_EXIT)  # the zygote died before the manager heard of us
    code, interrupted = _run_module(request["module"])
    _exit_like_python(code, interrupted)


def _set_up_process(zygote: ForkServer, request: dict, fds: list[int], go_r: int) -> None:
    os.setsid()  # first: own session and process group (pgid == pid), as start_new_session
    signal.set_wakeup_fd(-1)
    for sig, handler in zygote.dispositions.items():
        if signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)
    log_fd, startup_pipe = fds
    startup_fd = int(request["startup_fd"])
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    if startup_pipe != startup_fd:
        os.dup2(startup_pipe, startup_fd)  # inheritable, as pass_fds makes it
    else:
        os.set_inheritable(startup_fd, True)
    zygote.control.detach()  # its number is closed below; the object must not close it again
    keep = sorted({startup_fd, go_r})
    os.closerange(3, keep[0])
    for low, high in zip(keep, [*keep[1:], None]):
        os.closerange(low + 1, high if high is not None else 1 << 20)
    os.chdir(request["cwd"])
    _replace_environment(request["env"])
    time.tzset()


def _replace_environment(env: dict[str, str]) -> None:
    """``os.environ = env``, touching only what differs (each change is a putenv)."""
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _set_up_interpreter(request: dict, child_path: list[str]) -> None:
    import types

    sys.path[:] = child_path
    module, args = request["module"], list(request.get("args", ()))
    sys.argv = ["-m", *args]  # runpy replaces argv[0] with the module's file, as `python -m`
    sys.orig_argv = [sys.executable, "-m", module, *args]
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    sys.stdin = sys.__stdin__ = _stdio(0, "r", sys.__stdin__, unbuffered)
    sys.stdout = sys.__stdout__ = _stdio(1, "w", sys.__stdout__, unbuffered)
    sys.stderr = sys.__stderr__ = _stdio(2, "w", sys.__stderr__, unbuffered)
    sys.modules["__main__"] = types.ModuleType("__main__")


_OLD_STDIO: list = []  # the zygote's stdio objects, kept alive so they never flush into the child


def _stdio(fd: int, mode: str, template, unbuffered: bool):
    """A standard stream as the interpreter creates it (``create_stdio`` in pylifecycle.c)."""
    _OLD_STDIO.append(template)
    buffering = 0 if unbuffered and mode == "w" else -1
    buffer = io.open(fd, mode + "b", buffering=buffering, closefd=False)
    raw = buffer if buffering == 0 else buffer.raw
    raw.name = {0: "<stdin>", 1: "<stdout>", 2: "<stderr>"}[fd]
    line_buffering = not unbuffered and (os.isatty(fd) or fd == 2)
    stream = io.TextIOWrapper(buffer, template.encoding, template.errors, newline="\n",
                              line_buffering=line_buffering, write_through=unbuffered)
    stream.mode = mode
    return stream


def _run_module(module: str) -> tuple[int, bool]:
    """Run ``module`` as ``__main__``; (exit code, ended by an uncaught KeyboardInterrupt)."""
    import runpy

    try:
        runpy._run_module_as_main(module, alter_argv=True)  # exactly what `python -m` calls
    except SystemExit as e:
        return _exit_code(e.code), False
    except BaseException as e:  # noqa: BLE001 - the program's uncaught exception, as Python reports it
        traceback = e.__traceback__.tb_next if e.__traceback__ else None  # drop our own frame
        try:
            sys.excepthook(type(e), e.with_traceback(traceback), traceback)
        except BaseException:  # noqa: BLE001 - a broken excepthook: still exit like Python
            pass
        return 1, isinstance(e, KeyboardInterrupt)
    return 0, False


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code if -(1 << 31) <= code < (1 << 31) else -1
    try:
        print(code, file=sys.stderr)
    except BaseException:  # noqa: BLE001
        pass
    return 1


def _exit_like_python(code: int, interrupted: bool):
    """The end of ``Py_FinalizeEx`` that a program can observe, then ``os._exit``."""
    import atexit
    import threading

    try:
        threading._shutdown()  # joins non-daemon threads, as the interpreter does at exit
    except BaseException:  # noqa: BLE001
        pass
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - Python exits 120 when it cannot flush stdout
            code = 120 if stream is sys.stdout and code == 0 else code
    if interrupted:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code & 0xFF)


if __name__ == "__main__":
    sys.exit(main())
