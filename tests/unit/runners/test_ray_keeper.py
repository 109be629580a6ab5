"""The keeper of a program on a Ray node (runners/ray_keeper.py), without Ray: it runs the
program only after "go", ends as the program ended, and kills the program's whole group
when its actor (here: the test, holding the gate) goes away."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(30)


def keeper(*program: str) -> tuple[subprocess.Popen, int]:
    gate_r, gate_w = os.pipe()
    process = subprocess.Popen([sys.executable, "-m", "component_manager.runners.ray_keeper", str(gate_r), "--",
                                *program], pass_fds=(gate_r,), start_new_session=True,
                               stdout=subprocess.PIPE, text=True)
    os.close(gate_r)
    return process, gate_w


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_it_runs_the_program_only_after_go_and_exits_as_it_did():
    process, gate = keeper(sys.executable, "-c", "print('ran'); raise SystemExit(3)")
    os.write(gate, b"go\n")
    assert process.wait(timeout=20) == 3
    assert process.stdout.read() == "ran\n"
    os.close(gate)


def test_without_go_the_program_never_runs():
    process, gate = keeper(sys.executable, "-c", "print('ran')")
    os.close(gate)  # the actor died before the manager's record: EOF at the gate
    assert process.wait(timeout=20) == 127
    assert process.stdout.read() == ""


def test_a_signal_to_the_group_ends_it_by_that_signal():
    process, gate = keeper(sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)")
    os.write(gate, b"go\n")
    assert process.stdout.readline() == "up\n"
    os.killpg(process.pid, signal.SIGTERM)  # what the actor does for a stop
    assert process.wait(timeout=20) == -signal.SIGTERM
    os.close(gate)


def test_when_the_actor_goes_the_whole_group_dies():
    script = "import subprocess, sys, time; c = subprocess.Popen(['sleep', '60']); print(c.pid, flush=True); time.sleep(60)"
    process, gate = keeper(sys.executable, "-c", script)
    os.write(gate, b"go\n")
    grandchild = int(process.stdout.readline())
    os.close(gate)  # the actor's process is gone
    assert process.wait(timeout=20) == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.01)  # SIGKILL'd with its group; reaped by init
    assert not alive(grandchild)


def test_a_keeper_killed_takes_the_program_with_it():
    process, gate = keeper(sys.executable, "-c", "import os, time; print(os.getpid(), flush=True); time.sleep(60)")
    os.write(gate, b"go\n")
    program = int(process.stdout.readline())
    os.kill(process.pid, signal.SIGKILL)  # as a Ray worker that exits kills its children
    process.wait(timeout=20)
    deadline = time.monotonic() + 10
    while alive(program) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(program)
    os.close(gate)
