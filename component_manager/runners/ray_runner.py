"""The ``ray`` runner: a python component on a node of a Ray cluster, the manager its driver.

``cm manager run --ray ADDRESS`` connects to an existing cluster; ``--ray local:N`` first
starts a lean local one (``ray_cluster.py``, in a process of its own: Ray forks to start its
daemons, the manager never does). Ray is imported only then: a manager without ``--ray``
never pays for it.

Ray places and runs, the manager decides. Each run of an instance is one actor
(``ray_actor.ProgramActor``: ``max_restarts=0``, no task retries, owned by the manager, so
it dies with it), placed on the node labelled ``cm-node=<program.node>`` if the manifest
names one, with the program's ``resources``. The actor spawns the program, held, under a
keeper that kills its process group when the actor goes; it reports host, port and pid. The
manager awaits the actor's ObjectRefs from its own event loop; the blocking Ray calls it
makes (connect, node list, kill) run in a worker thread.

How a run ends, seen from here (``RayProgram``):

- the program exits: its code or signal, as a local program's;
- the actor dies: ``ExitStatus()`` (its end seen, not how: recorded ``crashed``);
- its node is lost: the same, and ``node_lost`` names the node (recorded ``node_lost``).

Storage follows the instance: when the program has exited, the actor packs its areas on
its node (``storage.snapshots``) and the manager keeps the snapshot; a start on another node
restores the last snapshot there before the program runs; on the same node the areas are
used in place. The areas live in a node-local folder, ``areas_root`` with ``{node}``
replaced by the node's name.

Example::

    cluster = await RayCluster.connect("local:2", state_dir)
    runner = get_runner("ray"); runner.cluster = cluster
    program = await runner.launch(spec)       # program.node == "node1"
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import tempfile
import time
from pathlib import Path

from ..errors import RayUnavailable, StartError
from .base import ExitStatus, LaunchSpec, ProcessIdentity
from .ray_actor import NODE_LABEL
from .ray_cluster import LocalCluster, local_env

__all__ = ["RayCluster", "RayProgram", "RayRunner", "ray_available"]

log = logging.getLogger("component_manager.runners.ray")

LOCAL_PREFIX = "local:"
LEFT_OVER_TIMEOUT_S = 10.0
RAYLET_PROBE_TIMEOUT_S = 2.0
_SHORT_TMP = 40  # Ray's session sockets live under RAY_TMPDIR: a Unix socket path has 107 bytes


def ray_available() -> str:
    """Why Ray cannot be imported here (one line); empty if it can."""
    import importlib.util

    return "" if importlib.util.find_spec("ray") else "Ray is not installed (pip install 'ray>=2.60')"


class RayCluster:
    """The manager's connection to a Ray cluster, and the local cluster it started, if any."""

    def __init__(self, ray, address: str, namespace: str, areas_root: str, host: str,
                 local: LocalCluster | None = None, tmp_link: Path | None = None):
        self.ray = ray
        self.address = address
        self.namespace = namespace
        self.areas_root = areas_root
        self.host = host  # this host's address as the nodes reach it: programs call us there
        self._local = local
        self._tmp_link = tmp_link
        self.nodes: dict[str, dict] = {}  # name -> {"id": node id, "alive": bool, "host": ip}

    @classmethod
    async def connect(cls, spec: str, state_dir: Path) -> RayCluster:
        """``spec``: ``local:N`` or a Ray address. Raises RayUnavailable (a one-line why)."""
        why = ray_available()
        if why:
            raise RayUnavailable(spec, why)
        loop = asyncio.get_running_loop()
        local = tmp_link = None
        if spec.startswith(LOCAL_PREFIX):
            workers = spec[len(LOCAL_PREFIX):]
            if not workers.isdigit() or not 1 <= int(workers) <= 16:
                raise RayUnavailable(spec, "expected local:N with N from 1 to 16 worker nodes")
            tmp, tmp_link = _ray_tmp(state_dir)
            os.environ.update(local_env(str(tmp)))  # before `import ray`: read at import
            try:
                local = await loop.run_in_executor(
                    None, LocalCluster.start, int(workers), state_dir / "ray" / "cluster.log")
            except RuntimeError as e:
                raise RayUnavailable(spec, str(e)) from None
            address = local.address
        else:
            address = spec
            if _loopback(address):  # a cluster on this host's loopback (a test session's)
                for key, value in local_env("").items():
                    if key != "RAY_TMPDIR":
                        os.environ.setdefault(key, value)
        import ray

        # the same for every manager of this state folder: a new one finds what an old one left
        namespace = "cm-" + hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]
        try:
            await loop.run_in_executor(None, lambda: ray.init(
                address=address, namespace=namespace, logging_level=logging.WARNING,
                log_to_driver=False, configure_logging=False))
        except Exception as e:  # noqa: BLE001 - Ray raises many kinds; one line for the user
            if local is not None:
                await loop.run_in_executor(None, local.close)
            raise RayUnavailable(spec, f"cannot connect to Ray at {address}: {str(e).splitlines()[0]}") from None
        host = "127.0.0.1" if local is not None else ray.util.get_node_ip_address()
        areas = str(state_dir / "ray" / "nodes" / "{node}" / "storage")
        cluster = cls(ray, address, namespace, areas, host, local, tmp_link)
        await cluster.refresh_nodes()
        log.info("connected to Ray at %s (nodes: %s)", address, ", ".join(sorted(cluster.nodes)))
        return cluster

    async def refresh_nodes(self) -> dict[str, dict]:
        rows = await asyncio.get_running_loop().run_in_executor(None, self.ray.nodes)
        nodes = {}
        for row in rows:
            name = (row.get("Labels") or {}).get(NODE_LABEL) or row["NodeID"][:12]
            if row["Alive"] or name not in nodes:
                nodes[name] = {"id": row["NodeID"], "alive": bool(row["Alive"]),
                               "host": row.get("NodeManagerAddress", ""), "port": row.get("NodeManagerPort", 0)}
        self.nodes = nodes
        return nodes

    async def node_alive(self, name: str) -> bool:
        """Whether node ``name`` is up: Ray says so, and its raylet takes a connection. Ray
        learns of a lost node only after its health checks fail (seconds), while the end of
        the actors on it is reported at once: the raylet's port tells them apart now."""
        node = (await self.refresh_nodes()).get(name)
        if node is None or not node["alive"]:
            return False
        try:
            async with asyncio.timeout(RAYLET_PROBE_TIMEOUT_S):
                _reader, writer = await asyncio.open_connection(node["host"], node["port"])
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True

    async def close(self) -> None:
        """Disconnect; stop the local cluster if we started it (never `ray stop`)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.ray.shutdown)
        if self._local is not None:
            await loop.run_in_executor(None, self._local.close)
        if self._tmp_link is not None:  # a private folder under /tmp, linked from the state folder
            target = self._tmp_link.resolve()
            self._tmp_link.unlink(missing_ok=True)
            await loop.run_in_executor(None, _remove_tree, target)
        elif self._local is not None:  # the session folders of the cluster we ran
            await loop.run_in_executor(None, _remove_tree, Path(os.environ["RAY_TMPDIR"]))


def _loopback(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def _ray_tmp(state_dir: Path) -> tuple[Path, Path | None]:
    """RAY_TMPDIR: ``<state>/run/ray``, or, where that path is too long for Ray's sockets, a
    private folder under /tmp that ``<state>/run/ray`` links to (removed at close)."""
    place = state_dir / "run" / "ray"
    place.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if len(str(place)) <= _SHORT_TMP:
        place.mkdir(exist_ok=True, mode=0o700)
        return place, None
    short = Path(tempfile.mkdtemp(prefix="cm-ray-"))
    if place.is_symlink() or place.exists():
        old = place.resolve()
        place.unlink() if place.is_symlink() else _remove_tree(place)
        if old != place and old.parent == short.parent and old.name.startswith("cm-ray-"):
            _remove_tree(old)  # a dead manager's
    place.symlink_to(short)
    return short, place


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


class RayProgram:
    """A run on a Ray node, seen from the manager. Implements ``base.Program``.

    ``identity`` is None: it is not a process of this host (nothing local may signal, adopt
    or account it by pid). ``record_identity`` is its keeper as its node knows it, kept in
    the process record; ``pid`` is that keeper, the leader of the program's group."""

    identity = None
    limits = None

    def __init__(self, runner: RayRunner, actor, got: dict, spec: LaunchSpec, names: list[str]):
        self._runner = runner
        self._actor = actor
        self._spec = spec
        self._names = names
        self.actor_name = got["actor"]
        self.pid = got["pid"]
        self.node = got["node"]
        self.serve_address = got["serve_address"]
        self.record_identity = ProcessIdentity(got["pid"], got["pgid"], got["start_ticks"], got["boot_id"])
        self.node_lost = ""  # the node's name, when the run ended because its node was lost
        loop = asyncio.get_running_loop()
        self._done: asyncio.Future[ExitStatus] = loop.create_future()
        self._watch = loop.create_task(self._watch_end(), name=f"ray watch {spec.moniker}")

    def release(self) -> None:
        self._actor.release.remote()
        if self._spec.on_serving is not None:
            asyncio.get_running_loop().create_task(self._hear_serving())

    async def _hear_serving(self) -> None:
        try:
            if await self._actor.serving.remote():
                self._spec.on_serving()
        except Exception:  # noqa: BLE001 - the actor is gone: _watch_end reports the end
            pass

    def signal_group(self, sig: int) -> None:
        if not self._done.done():
            self._actor.signal.remote(int(sig))

    async def wait(self) -> ExitStatus:
        return await asyncio.shield(self._done)

    @property
    def exited(self) -> bool:
        return self._done.done()

    async def _watch_end(self) -> None:
        cluster = self._runner.cluster
        try:
            status = await self._actor.wait.remote()
            status = ExitStatus(exit_code=status["exit_code"], signal=status["signal"])
            await self._snapshot()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - RayActorError and kin: the actor is gone
            status = ExitStatus()
            if cluster is not None and not await cluster.node_alive(self.node):
                self.node_lost = self.node
            log.warning("%s: its Ray actor on %s ended: %s", self._spec.moniker, self.node,
                        str(e).splitlines()[0] if str(e) else type(e).__name__)
        finally:
            self._runner.kill(self._actor)
        if not self._done.done():
            self._done.set_result(status)

    async def _snapshot(self) -> None:
        """Storage follows the instance: pack its areas on the node, keep them here."""
        store = self._runner.snapshots
        if not self._names or store is None:
            return
        started = time.monotonic()
        try:
            blob = await self._actor.pack.remote(self._names)
            await asyncio.get_running_loop().run_in_executor(
                None, store.put, self._spec.instance_id, blob, self.node)
        except Exception as e:  # noqa: BLE001 - the stop goes on; the last snapshot stays
            log.warning("%s: cannot snapshot its storage on %s: %s", self._spec.moniker, self.node, e)
            return
        log.info("%s: storage snapshot from %s, %d bytes in %.0f ms", self._spec.moniker, self.node,
                 len(blob), (time.monotonic() - started) * 1000)

    def __repr__(self) -> str:
        return f"<RayProgram {self.actor_name} on {self.node} pid={self.pid}>"


class RayRunner:
    """Runs ``program.module`` on a Ray node. ``cluster``, ``component_address`` (where
    programs reach ComponentRuntime over TCP) and ``snapshots`` are set by the manager."""

    name = "ray"

    def __init__(self):
        self.cluster: RayCluster | None = None
        self.component_address = ""
        self.snapshots = None  # storage.snapshots.SnapshotStore
        self._actors: set = set()

    async def launch(self, spec: LaunchSpec) -> RayProgram:
        cluster = self.cluster
        if cluster is None:
            raise StartError(spec.moniker, "the ray runner needs a manager run with --ray ADDRESS or --ray local:N")
        program = spec.program
        if program.node and program.node not in cluster.nodes and program.node not in await cluster.refresh_nodes():
            raise StartError(spec.moniker, f"no Ray node labelled {NODE_LABEL}={program.node} "
                                           f"(nodes: {', '.join(sorted(cluster.nodes))})")
        names = sorted(spec.startup.storage)
        actor = None
        try:
            async with asyncio.timeout(program.start_timeout_ms / 1000):
                actor, name, where = await self._place(spec)
                await self._place_storage(spec, actor, where, names)
                got = await actor.launch.remote(self._request(spec, names))
        except BaseException as e:
            if actor is not None:
                self.kill(actor)
            if isinstance(e, (asyncio.CancelledError, StartError)):
                raise
            if isinstance(e, TimeoutError):
                raise StartError(spec.moniker, f"Ray did not place and launch it within "
                                               f"{program.start_timeout_ms / 1000:g}s (start_timeout)") from None
            log.warning("%s: Ray could not launch it: %s", spec.moniker, e)
            raise StartError(spec.moniker, f"Ray could not launch it: {str(e).splitlines()[0]}") from None
        got["actor"] = name
        return RayProgram(self, actor, got, spec, names)

    async def _place(self, spec: LaunchSpec):
        """A new actor for this run, placed and answering: (actor, its name, where it is).
        Placed again, once, if Ray loses the node it chose before the actor ran."""
        for attempt in (1, 2):
            name = f"cm-{spec.instance_id[:16]}-{secrets.token_hex(4)}"  # one actor per run
            actor = self._create_actor(spec, name)
            try:
                return actor, name, await actor.node.remote()
            except asyncio.CancelledError:
                self.kill(actor)
                raise
            except Exception as e:  # noqa: BLE001 - RayActorError: it never ran
                self.kill(actor)
                if attempt == 2 or "never ran" not in str(e):
                    raise
                log.warning("%s: its Ray actor was lost before it ran; placing it again", spec.moniker)

    def _create_actor(self, spec: LaunchSpec, name: str):
        from .ray_actor import ProgramActor

        ray = self.cluster.ray
        resources = dict(spec.program.resources)
        options = {"name": name, "max_restarts": 0, "max_task_retries": 0,
                   "num_cpus": resources.pop("CPU", 0), "num_gpus": resources.pop("GPU", 0),
                   "max_concurrency": 64}
        if "memory" in resources:
            options["memory"] = resources.pop("memory")
        if resources:
            options["resources"] = resources
        if spec.program.node:
            options["label_selector"] = {NODE_LABEL: spec.program.node}
        actor = ray.remote(ProgramActor).options(**options).remote(spec.instance_id, self.cluster.areas_root)
        self._actors.add(actor)
        return actor

    async def _place_storage(self, spec: LaunchSpec, actor, where: dict, names: list[str]) -> None:
        """Restore the last snapshot on this node unless the areas here are that very copy."""
        store = self.snapshots
        if not names or store is None:
            return
        loop = asyncio.get_running_loop()
        info = await loop.run_in_executor(None, store.info, spec.instance_id)
        if info is None or (info.node == where["node"] and where["has_areas"]):
            return  # nothing kept yet, or its areas are here as they were last packed
        found = await loop.run_in_executor(None, store.get, spec.instance_id)
        if found is not None:
            await actor.restore.remote(found[1], names)

    def _request(self, spec: LaunchSpec, names: list[str]) -> dict:
        from dataclasses import asdict

        startup = {**asdict(spec.startup), "component_address": self.component_address}
        package = str(spec.package_dir)
        inherited = os.environ.get("PYTHONPATH", "")
        env = {"PYTHONPATH": package + (os.pathsep + inherited if inherited else ""), "PYTHONUNBUFFERED": "1",
               **dict(spec.program.env), **dict(spec.extra_env)}
        return {"startup": startup, "serves": bool(spec.startup.serve_address), "storage": names,
                "env": env, "cwd": package, "log_path": str(spec.log_path),
                "module": spec.program.module, "args": list(spec.program.args)}

    def kill(self, actor) -> None:
        """End ``actor`` (no restart): its keeper kills the program's group; once the program
        has ended, this frees its place on the node. Once per actor."""
        if actor not in self._actors:
            return
        self._actors.discard(actor)
        try:
            self.cluster.ray.kill(actor, no_restart=True)
        except Exception as e:  # noqa: BLE001 - already gone
            log.debug("kill of a Ray actor: %s", e)

    def forget_areas(self, instance_id: str) -> None:
        """Delete the instance's node-local areas wherever this host can reach them (every
        node of a local cluster: their folders are here); called when its storage is deleted
        or it is destroyed. The nodes of a real cluster keep their copy (docs/scale-out.md)."""
        if self.cluster is None:
            return
        import glob
        import shutil

        pattern = self.cluster.areas_root.replace("{node}", "*")
        for folder in glob.glob(str(Path(pattern) / instance_id)):
            shutil.rmtree(folder, ignore_errors=True)

    def end_left_over(self, name: str) -> bool:
        """Kill the actor ``name`` a dead manager left (it dies with its owner anyway; this
        makes it certain before anything starts again). True if one was found."""
        if self.cluster is None:
            return False
        ray = self.cluster.ray
        try:
            actor = ray.get_actor(name)
        except ValueError:
            return False
        ray.kill(actor, no_restart=True)
        try:  # answered once it is dead: then its keeper has killed the program's group
            ray.get(actor.wait.remote(), timeout=LEFT_OVER_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - RayActorError: gone, as asked
            pass
        return True
