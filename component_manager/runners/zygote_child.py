"""What runs in a child of the zygote (``zygote.py``): become the program ``python -m`` would
have started, run it, and end as the interpreter ends.

In order: :func:`leave_zygote` (own session and process group, the signal dispositions a
fresh interpreter has, every descriptor of the zygote's closed); :func:`take_program` (log on
1 and 2, ``/dev/null`` on 0, the startup socket on the number ``CM_STARTUP_FD`` names, the
program's cwd and environment, ``sys.path``, ``sys.argv`` and standard streams as ``python -m``
sets them, a fresh ``__main__``); then, after the zygote's "go", :func:`run_and_exit`:
``runpy._run_module_as_main`` (what ``python -m`` calls), then non-daemon threads joined,
atexit handlers run, stdio flushed, and ``os._exit`` with the code Python would give:
``SystemExit`` codes as Python maps them, 1 after an uncaught exception (its traceback, without
the zygote's frames, on stderr), death by SIGINT after an uncaught KeyboardInterrupt.

A child that cannot set itself up (it never happens short of a bug) writes why to its log
and exits 127, like a failed exec.
"""

from __future__ import annotations

import atexit
import io
import os
import runpy
import signal
import sys
import threading
import time
import types

__all__ = ["FAILED_SETUP_EXIT", "confine", "fail_setup", "leave_zygote", "run_and_exit",
           "take_program"]

FAILED_SETUP_EXIT = 127
_OLD_STDIO: list = []  # the zygote's stdio objects, kept alive so they never flush into the child


def leave_zygote(dispositions: dict, control, keep: tuple[int, ...]) -> None:
    """Own session and group (pgid == pid, as ``start_new_session``); the signal handlers
    the zygote inherited; every descriptor closed but 0-2 and ``keep``."""
    os.setsid()
    signal.set_wakeup_fd(-1)
    for sig, handler in dispositions.items():
        if signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)
    control.detach()  # its number is closed below; the object must not close it again later
    _close_all_but(keep)


def _close_all_but(keep: tuple[int, ...]) -> None:
    low = 3
    for fd in sorted(set(keep)):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, 1 << 20)


def take_program(request: dict, fds: list[int], child_path: list[str]) -> None:
    """Become the program of ``request`` (``fds``: its log and startup socket, closed here)."""
    log_fd, startup_socket = fds
    startup_fd = int(request["startup_fd"])
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    if startup_socket != startup_fd:
        os.dup2(startup_socket, startup_fd)  # inheritable, as pass_fds makes it
    else:
        os.set_inheritable(startup_fd, True)
    for fd in {log_fd, startup_socket} - {0, 1, 2, startup_fd}:
        os.close(fd)
    join_limits(request.get("limits"))
    os.chdir(request["cwd"])
    _replace_environment(request["env"])
    time.tzset()
    _set_up_interpreter(request, child_path)


def join_limits(limits: dict | None) -> None:
    """Join the program's cgroup and set its rlimits (``runners/limits.py``), before any of
    its code runs: nothing it does or forks escapes them."""
    if not limits:
        return
    import resource

    for path in limits.get("cgroup_procs", ()):
        with open(path, "w") as f:
            f.write(str(os.getpid()))
    for res, soft, hard in limits.get("rlimits", ()):
        resource.setrlimit(res, (soft, hard))


def _replace_environment(env: dict[str, str]) -> None:
    """``os.environ = env``, touching only what differs (each change is a putenv)."""
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _set_up_interpreter(request: dict, child_path: list[str]) -> None:
    sys.path[:] = child_path
    module, args = request["module"], list(request.get("args", ()))
    sys.argv = ["-m", *args]  # runpy replaces argv[0] with the module's file, as `python -m`
    sys.orig_argv = [sys.executable, "-m", module, *args]
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    sys.stdin = sys.__stdin__ = _stdio(0, "r", sys.__stdin__, unbuffered)
    sys.stdout = sys.__stdout__ = _stdio(1, "w", sys.__stdout__, unbuffered)
    sys.stderr = sys.__stderr__ = _stdio(2, "w", sys.__stderr__, unbuffered)
    sys.modules["__main__"] = types.ModuleType("__main__")


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


def confine(request: dict) -> None:
    """Enter the program's confinement (``runners/isolation.py``): at least non-dumpable, so
    that no sibling reads its grant key or token from ``/proc/PID/mem``. Raises OSError."""
    from .isolation import Confinement, enter

    enter(Confinement.from_dict(request.get("confine") or {}))


def fail_setup(error: BaseException):
    """Say why on stderr (the program's log once it is set up) and exit 127. Never returns."""
    try:
        os.write(2, f"component_manager zygote: cannot set up the program: {error!r}\n".encode())
    finally:
        os._exit(FAILED_SETUP_EXIT)


def run_and_exit(module: str):
    """Run ``module`` as ``__main__``, then end as the interpreter would. Never returns."""
    code, interrupted = _run_module(module)
    _exit_like_python(code, interrupted)


def _run_module(module: str) -> tuple[int, bool]:
    """(exit code, ended by an uncaught KeyboardInterrupt)."""
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
