"""Startup info: what the manager hands a program when it starts it.

The manager writes it as one JSON object into a Unix socket whose other end the program
inherits; the environment variable ``CM_STARTUP_FD`` names that descriptor. Not environment
variables, because the grant key and the token are secrets and ``/proc/PID/environ`` is
readable by every process of the same user for the program's whole life. The SDK reads it
once (``inherited_startup()``) and keeps the descriptor for one message back: ``SERVING``,
written once it serves (the manager's cheapest way to learn that; systemd's sd_notify and
s6's readiness descriptor work the same way).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields

__all__ = ["ENV_STARTUP_FD", "SERVING", "StartupInfo", "inherited_startup", "make_non_dumpable"]

ENV_STARTUP_FD = "CM_STARTUP_FD"
SERVING = b"serving"  # what a program writes back on that descriptor once it serves


@dataclass(frozen=True)
class StartupInfo:
    moniker: str
    instance_id: str
    component_address: str  # gRPC target of the manager's ComponentRuntime, "unix:/..."
    token: str  # send as metadata cm-token on every ComponentRuntime call
    serve_address: str = ""  # where to serve the protocols this component declares
    grant_key: str = ""  # hex; verify cm-grant metadata of incoming calls with it
    protocols: tuple[str, ...] = ()  # protocol capabilities this component declares
    storage: dict[str, str] = field(default_factory=dict)  # used storage name -> LMDB dir
    stop_event: str = "none"
    ready: str = "spawned"
    idle_timeout_ms: int = 0
    stop_timeout_ms: int = 0  # how long a stop waits for it: the drain deadline after SIGTERM

    def to_json(self) -> bytes:
        # not asdict(): it deep-copies every field, a cost paid on every start
        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)}, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> StartupInfo:
        raw = json.loads(data)
        raw["protocols"] = tuple(raw.get("protocols", ()))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})  # a newer manager's extras

    @classmethod
    def from_inherited_fd(cls, environ=os.environ) -> StartupInfo:
        """Read the startup info the manager passed and close the descriptor. Raises
        RuntimeError outside a manager."""
        info, fd = inherited_startup(environ)
        os.close(fd)
        return info


def inherited_startup(environ=os.environ) -> tuple[StartupInfo, int]:
    """The startup info the manager passed, and its descriptor, still open (not inherited
    by what the program spawns) for writing ``SERVING``. Raises RuntimeError outside a
    manager."""
    fd_text = environ.get(ENV_STARTUP_FD)
    if not fd_text:
        raise RuntimeError(f"not started by a component manager ({ENV_STARTUP_FD} is not set)")
    fd = int(fd_text)
    os.set_inheritable(fd, False)
    make_non_dumpable()  # before the secrets are in our memory: execve made us dumpable again
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return StartupInfo.from_json(b"".join(chunks)), fd


def make_non_dumpable() -> bool:
    """``prctl(PR_SET_DUMPABLE, 0)``: other processes of this uid can no longer open our
    ``/proc/PID/mem``, ``environ`` or ``fd``, nor ptrace us. ``execve`` resets it. False
    where it cannot be done (not Linux)."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) == 0  # PR_SET_DUMPABLE
    except (OSError, AttributeError):
        return False
