"""The intruder's break-in, shared by test_isolation.py and runnable on its own, so that a test
can run it with the manager as root with per-instance uids, or as a normal user:

    python tests/integration/break_in.py     # prints what it saw, as JSON, on its last line

It starts a manager on the isolation realm, starts the victim and the provider, leaves
their names (pids, storage, log, the manager's store) in the intruder's own storage, runs
the intruder twice and reports the intruder's log, its stop and how the state folder looks.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

from component_manager.testing.process import ManagerProcess  # noqa: E402

REALM = str(Path(__file__).parent / "components" / "isolation_realm.cml")


def run_to_end(manager: ManagerProcess, moniker: str) -> dict:
    """Start a program that ends by itself; its `stopped` event."""
    with manager.events(moniker) as events:
        manager.cm("start", moniker)
        return events.wait_for(type="stopped", moniker=moniker, timeout=60)


def place_targets(manager: ManagerProcess) -> dict:
    """Start the victim and the provider; write what the intruder should aim at into the
    intruder's storage folder (created as the manager would; it owns it from its start)."""
    manager.cm("start", "/victim")
    manager.cm("start", "/provider")
    victim, provider = manager.show("/victim"), manager.show("/provider")
    state = manager.state_dir
    targets = {
        "victim_pid": victim["pid"], "provider_pid": provider["pid"],
        "victim_storage": victim["storage"][0]["path"], "victim_log": victim["log_path"],
        "storage_root": str(state / "storage"), "logs_dir": str(state / "logs"),
        "manager_lmdb": str(state / "manager.lmdb" / "data.mdb"),
        "manager_pid": manager.process.pid,
    }
    area = state / "storage" / manager.show("/intruder")["instance_id"] / "data"
    area.parent.mkdir(mode=0o700, exist_ok=True)
    area.mkdir(mode=0o700, exist_ok=True)
    (area / "targets.json").write_text(json.dumps(targets))
    return targets


def run_intruder(manager: ManagerProcess) -> tuple[dict, str]:
    """The intruder, run twice (the second run also tries the token of the first)."""
    place_targets(manager)
    for _ in range(2):
        stopped = run_to_end(manager, "/intruder")
    return stopped, Path(manager.show("/intruder")["log_path"]).read_text()


def uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def modes(state: Path) -> dict[str, list]:
    """Path (relative to the state folder) -> [mode, uid] for the manager's own files."""
    found = {}
    for path in [state, *state.iterdir(), *(state / "manager.lmdb").iterdir(), *(state / "logs").iterdir(),
                 *(state / "storage").iterdir(), *(state / "run").iterdir()]:
        st = path.lstat()
        found[str(path.relative_to(state))] = [stat.S_IMODE(st.st_mode), st.st_uid]
    return found


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="cm-iso-"))
    base.chmod(0o711)  # per-instance uids pass through to their storage and sockets
    try:
        with ManagerProcess(base / "state", root=REALM) as manager:
            stopped, log = run_intruder(manager)
            report = {"stopped": stopped, "log": log, "manager_uid": uid_of(manager.process.pid),
                      "victim_uid": uid_of(manager.show("/victim")["pid"]),
                      "provider_uid": uid_of(manager.show("/provider")["pid"]),
                      "shown_uid": manager.show("/victim")["uid"],
                      "modes": modes(manager.state_dir), "manager_log": manager.log_text()}
        print(json.dumps(report), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    os.umask(0o022)
    main()
