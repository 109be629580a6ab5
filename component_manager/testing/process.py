"""A real manager process for tests: start it on a state directory, drive it with the real
``cm`` executable and the real gRPC API, watch its events, kill it, bring it back.

Example::

    with ManagerProcess(tmp_dir, root="components/realm.cml") as manager:
        with manager.events() as events:
            manager.cm("start", "/counter")
            events.wait_for(type="started", moniker="/counter")
        manager.kill9()
        manager.start()          # the same state directory: the same instances

Teardown (``close()``, also on an exception inside ``with``) stops the manager with
SIGTERM (an ordered shutdown), SIGKILLs it if it hangs, and kills any program process group
it left, so a failing test leaks nothing.
"""

from __future__ import annotations

import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc

from .._generated import manager_pb2, manager_pb2_grpc
from ..api.messages import event_dict
from ..cli.client import CHANNEL_OPTIONS
from ..cli.output import log_tail
from ..runners import procinfo
from ..runners.base import ProcessIdentity
from ..runners import cgroups
from ..runners.limits import tag_of
from ..storage.topology import TopologyStore

__all__ = ["EventWatch", "ManagerProcess", "cm_executable", "pid_alive"]

READY_TIMEOUT_S = 60.0  # a manager with --ray local:N starts a Ray cluster first (4-10 s here)


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie waiting to be reaped does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cm_executable() -> list[str]:
    exe = Path(sys.executable).with_name("cm")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "component_manager.cli.main"]


class ManagerProcess:
    def __init__(self, state_dir: Path, root: str | None = None, package_roots=(),
                 args: tuple[str, ...] = (), env: dict[str, str] | None = None):
        self.state_dir = Path(state_dir)
        self.root = root
        self.package_roots = [str(r) for r in package_roots]
        self.args = tuple(args)  # more options of `cm manager run`, e.g. ("--max-running", "2")
        self.env = env  # more environment variables for the manager
        self.process: subprocess.Popen | None = None

    # ---- lifecycle of the manager itself ---------------------------------------------------

    def start(self) -> ManagerProcess:
        read_end, write_end = os.pipe()
        args = [sys.executable, "-m", "component_manager.cli.main", "--state-dir", str(self.state_dir),
                "manager", "run", "--ready-fd", str(write_end)]
        if self.root:
            args += ["--root", self.root]
        args += [f"--package-root={r}" for r in self.package_roots]
        args += self.args
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.state_dir / "manager.log", "ab")
        env = {**os.environ, **self.env} if self.env else None
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                        pass_fds=(write_end,), start_new_session=True, env=env)
        log.close()
        os.close(write_end)
        try:
            ready, _, _ = select.select([read_end], [], [], READY_TIMEOUT_S)
            line = os.read(read_end, 64) if ready else b""
        finally:
            os.close(read_end)
        if line.strip() != b"ready":
            self.kill9()
            raise RuntimeError(f"manager did not start; its log:\n{self.log_text()}")
        return self

    def log_text(self) -> str:
        path = self.state_dir / "manager.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def terminate(self, timeout: float = 60.0) -> int:
        """Ordered shutdown (SIGTERM); returns the manager's exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill9(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        if self.process and self.process.poll() is None:
            try:
                self.terminate(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()
        kill_leftover_programs(self.state_dir)

    def __enter__(self) -> ManagerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- driving it ------------------------------------------------------------------------

    def cm(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess:
        result = subprocess.run([*cm_executable(), "--state-dir", str(self.state_dir), *args],
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            tail = self.log_tail(args[1]) if args[:1] == ("start",) and len(args) > 1 else ""
            raise AssertionError(f"cm {' '.join(args)} exited {result.returncode}: {result.stderr}{tail}")
        return result

    def log_tail(self, moniker: str, lines: int = 20) -> str:
        """The last ``lines`` of the program log of ``moniker``, as a block to append to a
        failure (its traceback, when it failed before serving); "" when there is none."""
        shown = self.cm("show", moniker, "--json", check=False)
        if shown.returncode != 0:
            return ""
        path = json.loads(shown.stdout)["log_path"]
        tail = log_tail(path, lines)
        return f"the last lines of {moniker}'s log ({path}):\n" + "\n".join("    " + t for t in tail) if tail else ""

    def cm_json(self, *args: str):
        return json.loads(self.cm(*args, "--json").stdout)

    def show(self, moniker: str) -> dict:
        return self.cm_json("show", moniker)

    # ---- faults ----------------------------------------------------------------------------

    def signal_program(self, moniker: str, sig: int) -> int:
        """Send ``sig`` to the program of ``moniker`` (its whole process group); its pid.
        Raises AssertionError if it is not running."""
        pid = self.show(moniker).get("pid") or 0
        if not pid:
            raise AssertionError(f"{moniker} has no running program")
        os.killpg(pid, sig)  # programs run in their own session: pgid == pid
        return pid

    def crash(self, moniker: str, sig: int = signal.SIGSEGV) -> int:
        """Make the program crash now, as if it had a bug (SIGSEGV by default)."""
        return self.signal_program(moniker, sig)

    def hang(self, moniker: str) -> int:
        """Freeze the program (SIGSTOP): it neither answers nor ends, like a deadlock.
        ``unhang`` thaws it."""
        return self.signal_program(moniker, signal.SIGSTOP)

    def unhang(self, moniker: str) -> int:
        return self.signal_program(moniker, signal.SIGCONT)

    def channel(self):
        return grpc.insecure_channel(f"unix:{self.state_dir / 'manager.sock'}", options=CHANNEL_OPTIONS)

    def events(self, prefix: str = "", history: bool = False, since_seq: int = 0) -> EventWatch:
        """Watch events from now on (``history``: also those the manager stored before,
        after sequence number ``since_seq``)."""
        return EventWatch(self, prefix, history, since_seq)


class EventWatch:
    """Collects live events from the manager's EventStream in a thread, from the moment it
    is entered; ``wait_for`` returns the first matching event or fails after ``timeout``."""

    def __init__(self, manager: ManagerProcess, prefix: str, history: bool = False, since_seq: int = 0):
        self._manager = manager
        self._since_seq = since_seq
        self._prefix = prefix
        self._history = history
        self._queue: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        self._cursor = 0  # wait_for looks at seen[_cursor:]

    def __enter__(self) -> EventWatch:
        self._channel = self._manager.channel()
        stub = manager_pb2_grpc.EventStreamStub(self._channel)
        self._stream = stub.Subscribe(manager_pb2.SubscribeRequest(
            moniker_prefix=self._prefix, history=self._history, follow=True))
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()
        # The first event proves the subscription is live; there may be none, so wait for the
        # stream's initial metadata instead.
        self._stream.initial_metadata()
        return self

    def _pump(self) -> None:
        try:
            for event in self._stream:
                if event.seq > self._since_seq:
                    self._queue.put(event_dict(event))
        except grpc.RpcError:
            pass
        self._queue.put(None)

    def wait_for(self, matcher=None, timeout: float = 30.0, **match) -> dict:
        """The next event matching ``match`` (fields of the event, or ``disposition``) and,
        if given, the callable ``matcher(event) -> bool`` (see ``testing.events``).

        Waits read like an expect script: each one looks only at events after the one the
        previous wait returned, so waiting twice for the same kind waits for two events.
        """
        if matcher is not None:
            match = {**match, _PREDICATE: matcher}
        deadline = time.monotonic() + timeout
        while True:
            while self._cursor < len(self.seen):
                event = self.seen[self._cursor]
                self._cursor += 1
                if _matches(event, match):
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no event {match} within {timeout}s; saw {self.seen}")
            try:
                event = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if event is None:
                raise AssertionError(f"event stream ended before {match}; saw {self.seen}")
            self.seen.append(event)

    def __exit__(self, *exc) -> None:
        self._stream.cancel()
        self._channel.close()

    def close(self) -> None:
        """Stop watching; events already received are kept in ``seen`` (for a new watch
        that takes over, e.g. after a manager restart)."""
        self.__exit__(None, None, None)
        self._thread.join(timeout=10)
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                return
            if event is not None:
                self.seen.append(event)


_PREDICATE = "__matcher__"


def _matches(event: dict, match: dict) -> bool:
    for key, want in match.items():
        if key == _PREDICATE:
            if not want(event):
                return False
            continue
        have = event.get(key) if key not in ("disposition",) else (event.get("stop") or {}).get(key)
        if have != want:
            return False
    return True


def kill_leftover_programs(state_dir: Path) -> int:
    """Kill any program process group the store says is running (after a kill -9 test)."""
    killed = _kill_cgroups(Path(state_dir))
    path = Path(state_dir) / "manager.lmdb"
    if not path.exists():
        return killed
    store = TopologyStore(path)
    try:
        return killed + sum(procinfo.kill_group(ProcessIdentity(r.pid, r.pgid, r.start_ticks, r.boot_id))
                            for r in store.all_processes())
    finally:
        store.close()


def _kill_cgroups(state_dir: Path) -> int:
    """Kill the programs in the cgroups of the manager of ``state_dir``; remove them."""
    hier = cgroups.hierarchy()
    if hier is None or not state_dir.exists():
        return 0
    tag = tag_of(state_dir.resolve() / "logs")
    killed = sum(len(group.pids()) for group in hier.groups(tag))
    hier.clean(tag)
    return killed
