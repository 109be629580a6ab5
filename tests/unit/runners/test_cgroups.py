"""cgroups.py on a fake /sys/fs/cgroup: detection, limit files, counters. The kernel's own
behaviour is tested in tests/integration/test_governing.py."""

from pathlib import Path

import pytest

from component_manager.runners import cgroups
from component_manager.runners.base import ExitStatus
from component_manager.runners.limits import Enforcement, Limits, format_size


def _proc_cgroup(tmp: Path, text: str) -> str:
    path = tmp / "cgroup"
    path.write_text(text)
    return str(path)


def test_v1_is_found_per_controller_under_our_own_cgroup(tmp_path):
    for controller in ("memory", "pids", "freezer"):
        (tmp_path / controller / "me").mkdir(parents=True)
        (tmp_path / controller / "cgroup.procs").write_text("")
    proc = _proc_cgroup(tmp_path, "4:memory:/me\n8:pids:/me\n6:freezer:/me\n1:cpu:/\n0::/\n")
    found = cgroups.hierarchy({}, root=tmp_path, proc_cgroup=proc)
    assert found.version == "v1"
    assert found.controllers == {"memory", "pids", "freezer"}  # no cpu mount: no cpu controller
    assert found.bases["memory"] == tmp_path / "memory" / "me"


def test_none_is_chosen_when_asked(tmp_path):
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "cgroup.procs").write_text("")
    proc = _proc_cgroup(tmp_path, "4:memory:/\n")
    assert cgroups.hierarchy({"CM_CGROUPS": "none"}, root=tmp_path, proc_cgroup=proc) is None
    assert cgroups.hierarchy({}, root=tmp_path, proc_cgroup=proc).version == "v1"


def test_v2_needs_a_writable_cgroup_with_the_memory_controller(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids")
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "cgroup.controllers").write_text("cpu memory pids io")
    found = cgroups.hierarchy({}, root=tmp_path, proc_cgroup=_proc_cgroup(tmp_path, "0::/svc\n"))
    assert found.version == "v2" and found.controllers == {"cpu", "memory", "pids"}
    (tmp_path / "svc" / "cgroup.controllers").write_text("cpu pids")
    assert cgroups.hierarchy({"CM_CGROUPS": "v2"}, root=tmp_path,
                             proc_cgroup=_proc_cgroup(tmp_path, "0::/svc\n")) is None


def test_v2_group_writes_limits_and_reads_counters(tmp_path):
    group = cgroups.V2Group({c: tmp_path for c in ("memory", "cpu", "pids")})
    group.set_limits(memory=64 << 20, cpu=0.5, pids=16)
    assert (tmp_path / "memory.max").read_text() == str(64 << 20)
    assert (tmp_path / "memory.oom.group").read_text() == "1"
    assert (tmp_path / "cpu.max").read_text() == "50000 100000"
    assert (tmp_path / "pids.max").read_text() == "16"
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n")
    (tmp_path / "pids.events").write_text("max 3\n")
    (tmp_path / "memory.peak").write_text(str(64 << 20))
    (tmp_path / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\n")
    c = group.counters()
    assert (c.oom_kills, c.pids_refused, c.memory_peak, c.cpu_s, c.memory_hits) == (1, 3, 64 << 20, 1.5, 8)


def test_v1_group_writes_limits(tmp_path):
    dirs = {c: tmp_path / c for c in ("memory", "cpu", "pids")}
    for d in dirs.values():
        d.mkdir()
    cgroups.V1Group(dirs).set_limits(memory=1 << 30, cpu=2, pids=100)
    assert (dirs["memory"] / "memory.limit_in_bytes").read_text() == str(1 << 30)
    assert (dirs["cpu"] / "cpu.cfs_quota_us").read_text() == "200000"
    assert (dirs["pids"] / "pids.max").read_text() == "100"


class _Counted:
    """A group that only answers counters (the verdict's input)."""

    version = "v1"

    def __init__(self, **counters):
        self.c = cgroups.Counters(**counters)

    def counters(self):
        return self.c

    def remove(self):
        return True


@pytest.mark.parametrize("counters,status,verdict", [
    ({"oom_kills": 1, "memory_peak": 64 << 20}, ExitStatus(signal=9), "memory: over its limit of 64MiB (peak 64MiB"),
    ({"memory_hits": 3, "memory_peak": 64 << 20}, ExitStatus(signal=9), "memory: over its limit of 64MiB"),
    ({"memory_hits": 3}, ExitStatus(exit_code=0), ""),  # it reached its limit, reclaimed, ended well
    ({"pids_refused": 2}, ExitStatus(exit_code=3), "pids: its limit of 8 was reached (2 forks refused)"),
    ({}, ExitStatus(signal=11), ""),
])
def test_the_verdict_names_the_limit_and_the_value(counters, status, verdict):
    enforcement = Enforcement(Limits(memory=64 << 20, pids=8), _Counted(**counters))
    assert enforcement.verdict(status).startswith(verdict) and bool(verdict) == bool(enforcement.verdict())


def test_shell_wrapper_waits_at_its_gate_then_execs(tmp_path):
    group = cgroups.V1Group({"memory": tmp_path / "m", "pids": tmp_path / "p"})
    for folder in group.dirs.values():
        folder.mkdir()
    enforcement = Enforcement(Limits(memory=1 << 20, open_files=64), group)
    argv = enforcement.wrap(["/bin/prog", "--x"])
    assert argv[:2] == ["/bin/sh", "-c"] and argv[2].startswith("ulimit -n 64 || exit 126; read -r _")
    assert argv[3:] == ["cm-limits", "/bin/prog", "--x"]
    enforcement.join(4242)
    assert (tmp_path / "m" / "cgroup.procs").read_text() == "4242"
    assert (tmp_path / "p" / "cgroup.procs").read_text() == "4242"


def test_a_gated_program_that_is_never_let_in_does_not_run(tmp_path):
    import subprocess

    marker = tmp_path / "ran"
    argv = Enforcement(Limits(open_files=64), None).wrap(["/bin/sh", "-c", f"touch {marker}"])
    gate_r, gate_w = __import__("os").pipe()
    process = subprocess.Popen(argv, stdin=gate_r)
    __import__("os").close(gate_r)
    __import__("os").close(gate_w)  # EOF: the manager could not put it in its cgroup
    assert process.wait(timeout=10) == 125 and not marker.exists()


def test_format_size():
    assert [format_size(n) for n in (64 << 20, 1 << 30, 1536 << 20, 100)] == ["64MiB", "1GiB", "1536MiB", "100B"]
