"""Process identity from /proc, and recovery's kill_group."""

import os
import signal
import subprocess
import sys
from dataclasses import replace

from component_manager.runners import procinfo


def test_identity_of_this_process():
    ident = procinfo.identity_of(os.getpid())
    assert ident.pid == os.getpid()
    assert ident.pgid == os.getpgid(0)
    assert ident.start_ticks > 0
    assert ident.boot_id == open("/proc/sys/kernel/random/boot_id").read().strip()
    assert procinfo.is_alive(ident)


def test_a_command_name_with_parentheses_and_spaces_parses():
    code = "open('/proc/self/comm','w').write('a) b (c) 7'); print('renamed', flush=True); input()"
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout.readline() == b"renamed\n"
        assert open(f"/proc/{proc.pid}/comm").read().strip() == "a) b (c) 7"
        ident = procinfo.identity_of(proc.pid)
        assert ident.pgid == proc.pid
    finally:
        proc.communicate(b"\n")


def test_another_start_time_or_boot_is_not_alive():
    ident = procinfo.identity_of(os.getpid())
    assert not procinfo.is_alive(replace(ident, start_ticks=ident.start_ticks + 1))
    assert not procinfo.is_alive(replace(ident, boot_id="another-boot"))
    assert procinfo.kill_group(replace(ident, boot_id="another-boot")) == 0


def test_kill_group_kills_a_group_we_forgot():
    # A group of three: the shell and two sleeps; it says "ready" once both sleeps exist.
    proc = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60 & echo ready; wait"],
                            stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout.readline() == b"ready\n"
    ident = procinfo.identity_of(proc.pid)
    members = procinfo._group_members(ident)
    assert len(members) == 3
    assert procinfo.kill_group(ident, timeout=5) == 3
    assert not procinfo.is_alive(ident)
    assert procinfo._group_members(ident) == []
    assert proc.wait() == -signal.SIGKILL
    assert procinfo.kill_group(ident) == 0  # nothing left: idempotent


def test_kill_group_spares_processes_that_started_before_the_leader():
    ident = procinfo.identity_of(os.getpid())
    later = replace(ident, start_ticks=ident.start_ticks + 10**9)
    assert procinfo._group_members(later) == []
