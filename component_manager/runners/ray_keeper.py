"""The keeper of a program on a Ray node: the leader of its process group, between the actor
(``ray_actor.py``) and the program. Standard library only.

    python -m component_manager.runners.ray_keeper GATE_FD -- PROGRAM ARGS...

It waits for "go" on ``GATE_FD``, a pipe whose write end only the actor holds (the program
is *held* until the manager has recorded it), then runs the program in its own group and
waits for it. EOF on the gate at any time means the actor is gone (killed, its node's Ray
shut down): the keeper kills the whole group, so no program outlives its actor. A keeper
killed itself (a Ray worker kills its children as it exits) takes the program with it
(``PR_SET_PDEATHSIG``). Exits as the
program did: with its code, or by its signal. SIGTERM, SIGINT and SIGHUP reach the whole
group (the actor signals the group); the keeper lets the program decide and waits on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

GO = b"go\n"


def _read_line(fd: int) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            break
        line += chunk
    return line


def _kill_group_on_eof(gate: int) -> None:
    while os.read(gate, 64):
        pass
    os.killpg(0, signal.SIGKILL)  # the actor is gone: so are we, and the program


def _die_with_keeper(keeper: int):
    """In the program's process before it execs: SIGKILL when the keeper dies. A Ray worker
    that exits kills its children (Ray's kill_child_processes_on_worker_exit): the keeper,
    by SIGKILL, which leaves it no time to kill its group."""
    def preexec() -> None:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != keeper:  # it died before the line above
            os._exit(1)

    return preexec


def main(argv: list[str]) -> int:
    gate = int(argv[1])
    command = argv[argv.index("--") + 1:]
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)  # handled, not ignored: the program gets defaults
    if _read_line(gate) != GO:
        return 127  # the manager never said go (its record was not committed): never run
    startup_fd = int(os.environ.get("CM_STARTUP_FD", "-1"))
    # Still one thread here, so the preexec_fn runs in a clean fork.
    program = subprocess.Popen(command, stdin=subprocess.DEVNULL, preexec_fn=_die_with_keeper(os.getpid()),
                               pass_fds=(startup_fd,) if startup_fd >= 0 else ())
    threading.Thread(target=_kill_group_on_eof, args=(gate,), daemon=True).start()
    if startup_fd >= 0:
        os.close(startup_fd)  # the program's now: its EOF tells the actor it is gone
    code = program.wait()
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)  # end as it ended
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
