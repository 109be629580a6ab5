"""Isolation, tested by real component programs that try to break in and fail.

Each attempt is made by a program the manager runs (``tests/integration/components``); it
prints what it observed (``ATTEMPT {json}`` lines in its log) and reports through its exit
code, and the test waits for its ``stopped`` event: no sleeps.

What is enforced, and where:

* a provider refuses every call without a grant the manager issued for this run of it, for
  this client and for the called service (the SDK, ``grants.py``);
* Connect answers only for capabilities the caller uses and that are routed to it
  (``actions/open.py``); ComponentRuntime only for the token of a running program;
* the control API (``manager.sock``) refuses connections from component programs
  (``api/relay.py``: SO_PEERCRED, session and ancestry); a component reaches a control
  service only when it is routed to it ``from: "framework"``, with a grant for that service;
* storage: through the manager an instance gets only its own areas.

Around the manager (runners/isolation.py, docs/security.md), each attack of issue 13's
finding 6 is tried by the intruder (``attempts.os_attacks``): another instance's storage and
log, the manager's store, other programs' memory (grant keys, tokens), ptrace and signals.
They are refused by Landlock and non-dumpable programs in every case, and also by file
ownership when the manager runs as root with per-instance uids. The module fixture runs the
manager as this test runs (as root, with its state in a 0700 folder: programs keep uid 0
without capabilities, confined by Landlock); ``test_break_in_*`` run the same break-in
(``break_in.py``) with per-instance uids and under a throwaway unprivileged uid.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from component_manager._generated import manager_pb2, manager_pb2_grpc
from component_manager.runners import landlock
from component_manager.testing.process import ManagerProcess

from tests.integration import break_in

pytestmark = pytest.mark.integration

REALM = break_in.REALM


@pytest.fixture(scope="module")
def manager():
    base = Path(tempfile.mkdtemp(prefix="cm-iso-"))
    with ManagerProcess(base / "state", root=REALM) as manager:
        yield manager
    shutil.rmtree(base, ignore_errors=True)


run_to_end = break_in.run_to_end
NEEDS_LANDLOCK = pytest.mark.skipif(
    not landlock.abi_version(), reason="this kernel has no Landlock: programs of one uid share their files")
OS_ATTACKS = ["read_victim_storage", "write_victim_storage", "plant_in_victim_storage",
              "list_storage_root", "read_victim_log", "list_logs", "read_manager_lmdb",
              "victim_mem", "victim_environ", "victim_fds", "provider_mem", "provider_ptrace",
              "manager_mem", "signal_victim"]


def log_of(manager: ManagerProcess, moniker: str) -> str:
    return Path(manager.show(moniker)["log_path"]).read_text()


def attempts(text: str) -> dict[str, dict]:
    found = [json.loads(line.removeprefix("ATTEMPT ")) for line in text.splitlines()
             if line.startswith("ATTEMPT ")]
    return {a["attack"]: a for a in found}  # the last run's line wins


@pytest.fixture(scope="module")
def intruder(manager):
    """The intruder, run twice (the second run also tries the token of the first)."""
    return break_in.run_intruder(manager)


@NEEDS_LANDLOCK
def test_the_intruder_got_nowhere(intruder):
    stopped, log = intruder
    assert "CONTROL with grant: OK" in log, log  # its own grant does work: the refusals are real
    assert stopped["reason"] == "exited" and stopped["stop"]["exit_code"] == 0, log
    assert len(attempts(log)) == 17 + len(OS_ATTACKS)


@pytest.mark.parametrize("attack, code, fragment", [
    ("no_grant", "PERMISSION_DENIED", "calling /test.X/Echo"),
    ("forged_mac", "PERMISSION_DENIED", "forged"),
    ("forged_client", "PERMISSION_DENIED", "forged"),
    ("wrong_service", "PERMISSION_DENIED", "grant is for 'test.X', not 'test.Y'"),
    ("connect_unused", "FAILED_PRECONDITION", "'test.Y' used by '/intruder'"),
    ("connect_unrouted", "FAILED_PRECONDITION", "'test.Z' used by '/intruder'"),
    ("token_made_up", "PERMISSION_DENIED", "cm-token"),
    ("token_empty", "PERMISSION_DENIED", "cm-token"),
    ("token_altered", "PERMISSION_DENIED", "cm-token"),
    ("token_of_earlier_run", "PERMISSION_DENIED", "cm-token"),
    ("manager_sock_query", "UNAVAILABLE", ""),
    ("manager_sock_stop", "UNAVAILABLE", ""),
    ("manager_sock_from_setsid_child", "UNAVAILABLE", ""),
    ("query_sock_list", "UNAVAILABLE", ""),
    ("framework_without_grant", "PERMISSION_DENIED", ""),
    ("framework_with_provider_grant", "PERMISSION_DENIED", ""),
    ("connect_unused_storage", "FAILED_PRECONDITION", "'other_data' used by '/intruder'"),
])
def test_attempt_is_refused(intruder, attack, code, fragment):
    seen = attempts(intruder[1])[attack]
    assert seen["refused"], seen
    assert seen["observed"].startswith(code + ":"), seen
    assert fragment in seen["observed"], seen


@NEEDS_LANDLOCK
@pytest.mark.parametrize("attack", OS_ATTACKS)
def test_os_attack_is_refused(intruder, attack):
    seen = attempts(intruder[1])[attack]
    assert seen["refused"] and seen["observed"].startswith("REFUSED:"), seen


def test_own_storage_still_works_and_programs_are_not_dumpable(intruder):
    assert "OWN storage: mine" in intruder[1] and "dumpable=0" in intruder[1], intruder[1]


def test_no_secret_in_a_programs_cmdline_or_environment(manager, intruder):
    """Startup info travels on a socket: nothing in argv or the environment names a token
    or a grant key (root reads both here, so this checks content, not access)."""
    pid = manager.show("/provider")["pid"]
    seen = Path(f"/proc/{pid}/cmdline").read_bytes() + Path(f"/proc/{pid}/environ").read_bytes()
    assert b"grant_key" not in seen and b"token" not in seen.lower(), seen


def test_the_managers_files_are_its_own(manager, intruder):
    state = manager.state_dir
    assert all(p.stat().st_mode & 0o077 == 0 for p in (state / "manager.lmdb").iterdir())
    assert all(p.stat().st_mode & 0o077 == 0 for p in (state / "logs").iterdir())
    assert (state / "logs").stat().st_mode & 0o777 == 0o700
    assert (state / "manager.lmdb").stat().st_mode & 0o777 == 0o700
    files = [p for p in state.iterdir() if p.is_file()]  # manager.pid, manager.log, zygote.log, ...
    assert {"manager.pid", "zygote.log"} <= {p.name for p in files}
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in files), [(p.name, oct(p.stat().st_mode)) for p in files]


def test_no_route_means_no_address_and_no_start(manager, intruder):
    """Connect for test.Z (routed to nobody) never started its provider or named its socket."""
    hidden = manager.show("/hidden")
    assert hidden["execution_state"] == "stopped" and not hidden.get("last_start")
    assert "/run/" not in attempts(intruder[1])["connect_unrouted"]["observed"]


def test_manager_sock_refusal_is_not_a_stop(manager, intruder):
    """The intruder's LifecycleController.Stop never reached the manager."""
    assert manager.show("/provider")["execution_state"] == "running"
    assert "refused a connection to the control API" in manager.log_text()


def test_startup_info_names_only_its_own_storage(manager, intruder):
    line = next(l for l in intruder[1].splitlines() if l.startswith("STORAGE "))
    named = dict(item.split("=", 1) for item in line.removeprefix("STORAGE ").split())
    own = {s["name"]: s["path"] for s in manager.show("/intruder")["storage"]}
    assert named == own
    manager.cm("start", "/victim")  # its storage exists now
    victims = [s["path"] for s in manager.show("/victim")["storage"]]
    assert victims and not set(victims) & set(named.values())
    assert all(manager.show("/intruder")["instance_id"] in path for path in named.values())


def test_grant_of_an_earlier_provider_run_is_refused(manager):
    with manager.events() as events:
        manager.cm("start", "/restart_client")  # returns once it holds a grant (ready: serving)
        first = manager.show("/restart_provider")["pid"]
        manager.cm("stop", "/restart_provider")
        os.kill(manager.show("/restart_client")["pid"], signal.SIGUSR1)
        stopped = events.wait_for(type="stopped", moniker="/restart_client", timeout=60)
    log = log_of(manager, "/restart_client")
    assert stopped["stop"]["exit_code"] == 0, log
    assert manager.show("/restart_provider")["pid"] not in (0, None, first)
    assert "second run, new grant: OK" in log
    seen = attempts(log)["grant_of_earlier_run"]
    assert seen["observed"].startswith("PERMISSION_DENIED:") and "earlier run" in seen["observed"], seen


def test_routed_control_protocol_works_and_only_that_one(manager):
    stopped = run_to_end(manager, "/control_user")
    log = log_of(manager, "/control_user")
    assert stopped["stop"]["exit_code"] == 0, log
    listed = next(l for l in log.splitlines() if l.startswith("LISTED ")).split()[1:]
    assert {"/", "/control_user", "/provider"} <= set(listed)
    seen = attempts(log)["unrouted_framework_service"]
    assert "grant is for 'component_manager.v1.RealmQuery'" in seen["observed"], seen
    route = manager.cm("route", "/control_user", check=False)
    assert "framework" in route.stdout + route.stderr


def test_cm_and_the_harness_still_reach_the_control_api(manager):
    """Not a program: the relay lets the cm tool and this test process through."""
    assert "/intruder" in {row["moniker"] for row in manager.cm_json("list")}
    stub = manager_pb2_grpc.RealmQueryStub(manager.channel())
    assert any(i.moniker == "/" for i in stub.ListInstances(manager_pb2.ListInstancesRequest(),
                                                             timeout=30).instances)
    assert (manager.state_dir / "manager.sock").stat().st_mode & 0o777 == 0o600


def test_two_hundred_concurrent_connects_start_one_provider(manager):
    assert manager.show("/lazy_provider")["execution_state"] == "stopped"
    with manager.events() as events:
        manager.cm("start", "/many")
        stopped = events.wait_for(type="stopped", moniker="/many", timeout=120)
    log = log_of(manager, "/many")
    assert stopped["stop"]["exit_code"] == 0, log
    assert "connects=200/200 calls_ok=200/200" in log
    starts = [e for e in events.seen if e["type"] == "started" and e["moniker"] == "/lazy_provider"]
    assert len(starts) == 1, events.seen
    assert re.search(r"'/many' requested capability 'test.X'", starts[0]["reason"])


# ---- the same break-in with per-instance uids, and with the manager as a normal user --------

PROJECT = Path(__file__).resolve().parents[2]


def _blocking_folders() -> list[Path]:
    """Folders on the way to the interpreter, its libraries and this checkout that other
    users cannot pass through (a pyenv under /root, mode 0700)."""
    needed = [Path(sys.executable).resolve(), Path(os.__file__).parent, Path(sys.prefix), PROJECT]
    return sorted({folder for path in needed for folder in path.parents
                   if not folder.stat().st_mode & stat.S_IXOTH})


def _reachable_namespace(command: list[str], scratch: Path) -> list[str]:
    """``command`` in a private mount namespace where each blocking folder is covered by an
    overlay of mode 0755 (same content): another uid can run the interpreter. Nothing
    changes outside that namespace."""
    mounts = ["mount --make-rprivate /"]
    for i, folder in enumerate(_blocking_folders()):
        upper, work = scratch / f"upper{i}", scratch / f"work{i}"
        upper.mkdir(mode=0o755)
        work.mkdir()
        mounts.append(f"mount -t overlay overlay -o lowerdir={folder},upperdir={upper},workdir={work} {folder}")
    return ["unshare", "--mount", "sh", "-ec", " && ".join([*mounts, 'exec "$@"']), "sh", *command]


def _break_in(tmp_path: Path, env: dict, as_uid: int | None = None) -> dict:
    if os.geteuid() != 0:
        pytest.skip("needs root: to give programs their own uids, or to run the manager as another user")
    if shutil.which("unshare") is None or shutil.which("setpriv") is None:
        pytest.skip("needs unshare and setpriv (util-linux)")
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace here: {probe.stderr.strip()}")
    tmp_path.chmod(0o755)
    command = [sys.executable, str(Path(__file__).parent / "break_in.py")]
    if as_uid is not None:
        command = ["setpriv", f"--reuid={as_uid}", f"--regid={as_uid}", "--clear-groups", *command]
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1", **env}
    done = subprocess.run(_reachable_namespace(command, tmp_path), capture_output=True, text=True,
                          env=env, timeout=240, cwd="/")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _assert_nobody_got_in(report: dict) -> dict:
    seen = attempts(report["log"])
    assert report["stopped"]["stop"]["exit_code"] == 0, report["log"]
    assert len(seen) == 17 + len(OS_ATTACKS), report["log"]
    assert all(a["refused"] for a in seen.values()), [a for a in seen.values() if not a["refused"]]
    assert "OWN storage: mine" in report["log"] and "dumpable=0" in report["log"], report["log"]
    return seen


def _own_uid(report: dict) -> int:
    return int(re.search(r"OWN storage: mine uid=(\d+)", report["log"]).group(1))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("zygote", ["1", "0"])  # the zygote's child enters it / a confined spawn
def test_break_in_with_per_instance_uids(tmp_path, zygote):
    first = 400_000 + secrets.randbelow(500) * 1000  # not the range of a manager next door
    report = _break_in(tmp_path, {"CM_UIDS": f"{first}-{first + 999}", "CM_ZYGOTE": zygote})
    _assert_nobody_got_in(report)
    uids = {report["victim_uid"], report["provider_uid"], _own_uid(report)}
    assert len(uids) == 3 and all(first <= uid <= first + 999 for uid in uids), report
    assert report["manager_uid"] == 0
    assert report["shown_uid"] == report["victim_uid"]  # cm show says which
    modes = report["modes"]
    assert modes["."] == [0o711, 0] and modes["storage"] == [0o711, 0], modes
    assert modes["logs"] == [0o700, 0] and modes["manager.lmdb"] == [0o700, 0], modes
    assert modes["manager.lmdb/data.mdb"] == [0o600, 0], modes
    logs = [v for k, v in modes.items() if k.startswith("logs/")]
    assert logs and all(mode == 0o600 and uid in uids for mode, uid in logs), modes
    areas = [v for k, v in modes.items() if k.startswith("storage/")]
    assert areas and all(mode == 0o700 and uid in uids for mode, uid in areas), modes


@NEEDS_LANDLOCK
@pytest.mark.timeout(300)
def test_break_in_with_the_manager_as_a_normal_user(tmp_path):
    user = 300_000 + secrets.randbelow(100_000)  # a throwaway uid nobody else has
    report = _break_in(tmp_path, {"CM_UIDS": "auto"}, as_uid=user)
    _assert_nobody_got_in(report)
    assert report["manager_uid"] == report["victim_uid"] == _own_uid(report) == user, report
    assert report["shown_uid"] is None  # the manager's own
    modes = report["modes"]
    assert modes["."] == [0o700, user] and modes["manager.lmdb/data.mdb"] == [0o600, user], modes
    shared = {k: oct(mode) for k, (mode, _) in modes.items() if k.startswith(("logs", "storage")) and mode & 0o077}
    assert not shared, shared
