"""`cm manager status` and `cm manager stop`: the manager process itself, as systemctl shows it.

    cm manager status     # running (pid, since, root, instances) or "not running" (exit 3)
    cm manager stop       # SIGTERM (an ordered shutdown), wait until the process is gone

A manager runs at a state directory when it holds ``manager.lock`` (an flock it takes first
and keeps until it exits, and writes its pid into). A stale pid (after ``kill -9``) is
therefore never mistaken for a running manager.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import time

from .._generated import manager_pb2
from ..errors import CmError, ManagerNotRunning
from .client import Client
from .exitcodes import EXIT_NO_MANAGER

__all__ = ["detach_failure", "manager_pid", "status", "stop"]

STOP_TIMEOUT_S = 120.0


def manager_pid(state_dir: str) -> int | None:
    """The pid of the manager serving at ``state_dir``, or None when none holds its lock."""
    try:
        fd = os.open(os.path.join(state_dir, "manager.lock"), os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None  # we got the lock: nobody holds it
    except BlockingIOError:
        return int(os.read(fd, 32).strip() or 0) or None
    except ValueError:
        return None
    finally:
        os.close(fd)


def status(args) -> int:
    state_dir = os.path.realpath(args.state_dir)
    pid = manager_pid(state_dir)
    info = {"running": pid is not None, "state_dir": state_dir, "pid": pid, "since": None,
            "root_url": None, "instances": None, "running_instances": None}
    if pid is not None:
        info["since"] = os.stat(os.path.join(state_dir, "manager.lock")).st_mtime
        info.update(_instances(state_dir))
    print(json.dumps(info, indent=2) if args.json else _format_status(info))
    return 0 if pid is not None else EXIT_NO_MANAGER


def _instances(state_dir: str) -> dict:
    try:
        client = Client(state_dir)
        rows = client.call(client.query.ListInstances, manager_pb2.ListInstancesRequest()).instances
    except ManagerNotRunning:
        return {}  # locked, not serving yet: booting
    return {"root_url": next((r.url for r in rows if r.moniker == "/"), None), "instances": len(rows),
            "running_instances": sum(r.execution_state == "running" for r in rows)}


def _format_status(info: dict) -> str:
    if not info["running"]:
        return f"manager at {info['state_dir']}: not running"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["since"]))
    up = time.time() - info["since"]
    if info["instances"] is None:
        return f"manager at {info['state_dir']}: starting (pid {info['pid']})"
    return "\n".join([
        f"manager at {info['state_dir']}: running",
        f"{'PID':<12}{info['pid']}",
        f"{'Since':<12}{since} ({up:.0f}s ago)",
        f"{'Root':<12}{info['root_url']}",
        f"{'Instances':<12}{info['instances']} ({info['running_instances']} running)",
    ])


def stop(args) -> int:
    state_dir = os.path.realpath(args.state_dir)
    pid = manager_pid(state_dir)
    if pid is None:
        raise ManagerNotRunning(state_dir)
    started = time.monotonic()
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass  # it ended meanwhile
    except PermissionError:
        raise CmError(f"the manager at {state_dir} (pid {pid}) is not yours to stop") from None
    if not _wait_gone(pid, args.timeout):
        raise CmError(f"the manager (pid {pid}) did not stop within {args.timeout:g}s; "
                      f"`kill -9 {pid}` ends it (the next manager recovers its programs)")
    took = time.monotonic() - started
    data = {"state_dir": state_dir, "pid": pid, "stopped": True, "took_s": round(took, 3)}
    print(json.dumps(data, indent=2) if args.json else f"manager at {state_dir} (pid {pid}) stopped in {took:.1f}s")
    return 0


def _wait_gone(pid: int, timeout: float) -> bool:
    """Wait until process ``pid`` has exited (a pidfd becomes readable then)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([pidfd], [], [], timeout)[0])
    finally:
        os.close(pidfd)


def detach_failure(log_path: str, offset: int) -> str:
    """Why a detached manager failed: the last ``cm: ...`` line it wrote to its log after
    ``offset`` (its one-line error, as a foreground run prints it), else its last line."""
    try:
        with open(log_path, "rb") as f:
            f.seek(offset)
            lines = f.read(1 << 16).decode(errors="replace").splitlines()
    except OSError:
        return ""
    errors = [line for line in lines if line.startswith("cm: ")]
    return errors[-1][4:] if errors else (lines[-1] if lines else "")
