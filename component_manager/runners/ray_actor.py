"""The Ray actor that supervises one run of one instance's program on its node.

The manager (``ray.py``) creates one per run, placed by the program's ``node`` and
``resources``, with no Ray-side restarts: the manager's restart policy decides. It runs in
a Ray worker process on that node; everything here is the standard library, ``lmdb`` (for
snapshots) and this package (the node must have it installed, as the worker does).

A run, as the manager drives it::

    where = await actor.node.remote()            # {"node": "node1", "host": "127.0.0.1"}
    await actor.restore.remote(blob)             # only when its storage moves here
    got = await actor.launch.remote(request)     # held: pid, serve address, identity
    ... the manager records it ...
    await actor.release.remote()                 # "go": the program runs
    await actor.serving.remote()                 # True once the SDK wrote SERVING
    status = await actor.wait.remote()           # {"exit_code": 0, "signal": None}
    blob = await actor.pack.remote()             # its storage, after it exited

The program runs under ``ray_keeper`` (the leader of its own process group), which kills
the whole group when this actor's process goes away, however it goes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from .procinfo import identity_of
from .startup import ENV_STARTUP_FD, SERVING

__all__ = ["NODE_LABEL", "ProgramActor", "node_areas"]

NODE_LABEL = "cm-node"  # the Ray node label that names a node for `program.node`


def node_areas(areas_root: str, node: str, instance_id: str) -> Path:
    """The folder of an instance's storage areas on ``node``: node-local, one per node."""
    return Path(areas_root.replace("{node}", node)) / instance_id


class ProgramActor:
    """One run; async methods, so ``signal`` is answered while ``wait`` waits."""

    def __init__(self, instance_id: str, areas_root: str):
        import ray

        context = ray.get_runtime_context()
        node_id = context.get_node_id()
        labels = next((n.get("Labels", {}) for n in ray.nodes() if n["NodeID"] == node_id), {})
        self.node_name = labels.get(NODE_LABEL) or node_id[:12]
        self.host = ray.util.get_node_ip_address()
        self.instance_id = instance_id
        self.areas = node_areas(areas_root, self.node_name, instance_id)
        self._keeper: subprocess.Popen | None = None
        self._gate = -1
        self._done: asyncio.Future | None = None
        self._serving: asyncio.Future | None = None

    async def node(self) -> dict:
        return {"node": self.node_name, "host": self.host, "has_areas": self.areas.is_dir()}

    async def restore(self, blob: bytes, names: list[str]) -> None:
        """Replace this node's copy of the areas by the snapshot ``blob``."""
        from ..storage.snapshots import unpack_areas

        shutil.rmtree(self.areas, ignore_errors=True)
        self.areas.mkdir(parents=True, mode=0o700)
        await asyncio.get_running_loop().run_in_executor(
            None, unpack_areas, blob, {name: self.areas / name for name in names})

    async def pack(self, names: list[str]) -> bytes:
        """A snapshot of the areas, once the program has ended (nothing writes them)."""
        from ..storage.snapshots import pack_areas

        present = {name: self.areas / name for name in names if (self.areas / name).is_dir()}
        return await asyncio.get_running_loop().run_in_executor(None, pack_areas, present)

    async def launch(self, request: dict) -> dict:
        """Spawn the program, held; return where it serves and who it is."""
        startup = dict(request["startup"])
        port = _free_port(self.host) if request["serves"] else 0
        host = f"[{self.host}]" if ":" in self.host else self.host
        startup["serve_address"] = f"{host}:{port}" if port else ""
        startup["storage"] = {}
        for name in request["storage"]:
            path = self.areas / name
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            startup["storage"][name] = str(path)
        ours, theirs = socket.socketpair()
        ours.sendall(json.dumps(startup, separators=(",", ":")).encode())
        ours.shutdown(socket.SHUT_WR)
        gate_r, gate_w = os.pipe2(os.O_CLOEXEC)
        env = {**os.environ, **request["env"], ENV_STARTUP_FD: str(theirs.fileno())}
        log_path = Path(request["log_path"])
        log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        argv = [sys.executable, "-m", "component_manager.runners.ray_keeper", str(gate_r), "--",
                sys.executable, "-m", request["module"], *request["args"]]
        with open(log_path, "ab") as log:
            os.chmod(log_path, 0o600)
            self._keeper = subprocess.Popen(
                argv, cwd=request["cwd"], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                pass_fds=(gate_r, theirs.fileno()), start_new_session=True)
        os.close(gate_r)
        theirs.close()
        self._gate = gate_w
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._serving = loop.create_future()
        pidfd = os.pidfd_open(self._keeper.pid)
        loop.add_reader(pidfd, self._reap, pidfd)
        ours.setblocking(False)
        loop.add_reader(ours.fileno(), self._hear, ours)
        identity = identity_of(self._keeper.pid)
        return {"pid": identity.pid, "pgid": identity.pgid, "start_ticks": identity.start_ticks,
                "boot_id": identity.boot_id, "node": self.node_name, "host": self.host,
                "serve_address": startup["serve_address"]}

    def _hear(self, ours: socket.socket) -> None:
        try:
            chunk = ours.recv(64)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        asyncio.get_running_loop().remove_reader(ours.fileno())
        ours.close()
        if not self._serving.done():
            self._serving.set_result(chunk.startswith(SERVING))

    def _reap(self, pidfd: int) -> None:
        asyncio.get_running_loop().remove_reader(pidfd)
        os.close(pidfd)
        code = self._keeper.wait()
        if not self._done.done():
            self._done.set_result({"exit_code": None, "signal": -code} if code < 0
                                  else {"exit_code": code, "signal": None})
        if not self._serving.done():
            self._serving.set_result(False)

    async def release(self) -> None:
        os.write(self._gate, b"go\n")  # the gate stays open: its EOF is this actor's end

    async def serving(self) -> bool:
        """True once the program wrote SERVING; False if it ended first."""
        return await asyncio.shield(self._serving)

    async def wait(self) -> dict:
        return await asyncio.shield(self._done)

    async def signal(self, sig: int) -> None:
        if self._keeper is not None and not self._done.done():
            try:
                os.killpg(self._keeper.pid, sig)
            except ProcessLookupError:
                pass


def _free_port(host: str) -> int:
    """A TCP port free on ``host`` now (the program binds it right after: gRPC cannot serve
    on an inherited socket)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]
