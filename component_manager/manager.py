"""The manager daemon: ``run()`` owns everything; ``request_shutdown()`` is idempotent.

Run: lock the state directory (one manager per directory), rebuild the model from LMDB
(recovering programs a dead manager left), start the governing policies (``policy/``: restarts,
health probes, hooks, triggers, run-time limits), serve the APIs (the control API behind a
relay that refuses component programs, see ``api/relay.py``), start the root. On SIGTERM or
SIGINT (or ``request_shutdown()``): stop every instance in dependency order, then the
servers, then exit 0. Shutdown is two-phase: requested (nothing new starts) and complete.

Every program gets a cgroup of its own (``runners/cgroups.py``) where the host allows it;
``CM_CGROUPS=none`` turns that off (programs are then found by their recorded identity).

The python runner's zygote (``runners/zygote.py``) is started right after the model is
built, becomes ready in the background, and is stopped last; ``CM_ZYGOTE=0`` (or
``Manager(..., zygote=False)``) turns it off, and python programs are then spawned.

Ray (``ray``: ``local:N`` or a cluster address; ``runners/ray_runner.py``): the manager
connects as a Ray driver before boot (recovery ends the actors a dead manager left), serves
ComponentRuntime on TCP too for programs on Ray nodes, and disconnects last (stopping the
local cluster it started). ``placements`` (moniker -> node) run python programs on Ray.

Governing options: ``budget`` (``policy/budget.py``: evict to stay within ``--max-running``
and ``--memory-budget``) and ``watch`` (``policy/watch.py``: reload when a manifest or a
program file changes).
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import logging
import os
import signal
from pathlib import Path

from . import actions
from .api.relay import make_non_dumpable
from .api.server import CONTROL_SOCKET, FRAMEWORK_SOCKET, QUERY_SOCKET, RUNTIME_SOCKET, start_servers
from .errors import ManagerAlreadyRunning, RootMismatch
from .model.model import Model
from .model.reasons import START_ROOT, StopReason
from .policy import Policies
from .policy.budget import Budget, BudgetPolicy
from .policy.watch import PackageWatch
from .runners import get_runner, isolation
from .runners import cgroups
from .runners.limits import clean_groups
from .runners.python import start_zygote, stop_zygote
from .runners.zygote_client import zygote_enabled

log = logging.getLogger("component_manager")

__all__ = ["Manager"]


class Manager:
    def __init__(self, state_dir: Path, root_url: str, zygote: bool | None = None,
                 package_roots=None, budget: Budget | None = None, watch: bool = False,
                 switch_root: bool = False, ray: str = "", placements: dict[str, str] | None = None):
        self.state_dir = Path(state_dir).resolve()
        self.root_url = root_url
        self.package_roots = package_roots
        self.budget = budget or Budget()
        self.watch = watch
        self.switch_root = switch_root
        self.use_zygote = zygote_enabled() if zygote is None else zygote
        self.ray = ray
        self.placements = dict(placements or {})
        self.model: Model | None = None
        self._shutdown_requested: asyncio.Event | None = None
        self._lock_fd: int | None = None

    def _lock_state_dir(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.state_dir / "manager.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ManagerAlreadyRunning(self.state_dir) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for `cm manager status/stop` (cli/manager_ctl.py)
        self._lock_fd = fd

    async def run(self, on_ready=None) -> None:
        """Serve until shutdown is requested; ``on_ready()`` is called once serving."""
        self._shutdown_requested = asyncio.Event()
        self._lock_state_dir()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_shutdown)
        servers = None
        ray_cluster = None
        make_non_dumpable()  # keeps same-uid programs out of our /proc/PID/fd (api/relay.py)
        try:
            self.model = Model(self.state_dir, self.root_url,
                               component_address=f"unix:{self.state_dir / RUNTIME_SOCKET}",
                               package_roots=self.package_roots)
            self._check_root()
            isolation.configure(self.model.store, self.state_dir)  # uids, Landlock, file modes
            self.model.cgroups = cgroups.hierarchy()  # a cgroup per program: actions/tracking.py
            self.model.placements = self.placements
            if self.ray:  # before boot: recovery ends the Ray actors a dead manager left
                ray_cluster = await self._connect_ray()
            if self.use_zygote:
                start_zygote(self.state_dir / "zygote.log")  # ready in the background
            if self.budget:
                self.model.pre_start_hooks.append(BudgetPolicy(self.model, self.budget))
            clean_groups(self.state_dir, end=False)  # a dead manager's frozen programs can die
            gc.disable()  # until the tree is frozen: the first collection after boot would
            try:          # walk all of it once (100,000 instances: ~0.15 s), for no garbage
                actions.boot(self.model)  # ... here, adopted or ended and recorded; the groups
                # of what was not adopted are removed there (actions/recover.py)
                policies = Policies(self.model)
                policies.start()  # before the root starts: eager children's events are watched
                gc.freeze()  # the tree lives as long as we do: later collections need not walk it
            finally:
                gc.enable()
            servers = await start_servers(self.model, self.state_dir,
                                          tcp_host=ray_cluster.host if ray_cluster else "")
            if ray_cluster is not None:
                get_runner("ray").component_address = servers.runtime_tcp
            isolation.share_sockets([self.state_dir / RUNTIME_SOCKET, self.state_dir / FRAMEWORK_SOCKET])
            (self.state_dir / "manager.pid").write_text(f"{os.getpid()}\n")
            (self.state_dir / "manager.pid").chmod(0o600)  # the manager's files are its own
            await actions.start(self.model, self.model.root, START_ROOT)
            self._remember_root()
            if self.watch:
                self.model.owner.spawn(PackageWatch(self.model).run(), "package watch")
            if on_ready is not None:
                on_ready()
            await self._shutdown_requested.wait()
            log.info("shutting down")
            policies.close()  # no restart, probe or run-time stop races the ordered shutdown
            await actions.shutdown(self.model, self.model.root, StopReason.SYSTEM_SHUTDOWN)
            await self.model.close()
        finally:
            if servers is not None:
                await servers.stop(grace=0.5)
            await stop_zygote()
            if ray_cluster is not None:
                await self._disconnect_ray(ray_cluster)
            clean_groups(self.state_dir)
            isolation.deconfigure()
            for name in (CONTROL_SOCKET, QUERY_SOCKET, RUNTIME_SOCKET, FRAMEWORK_SOCKET, "manager.pid"):
                (self.state_dir / name).unlink(missing_ok=True)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            if self._lock_fd is not None:
                os.close(self._lock_fd)

    async def _connect_ray(self):
        from .runners.ray_runner import RayCluster

        cluster = await RayCluster.connect(self.ray, self.state_dir)
        runner = get_runner("ray")
        runner.cluster, runner.snapshots = cluster, self.model.snapshots
        return cluster

    async def _disconnect_ray(self, cluster) -> None:
        runner = get_runner("ray")
        runner.cluster = None
        try:
            await cluster.close()
        except Exception as e:  # noqa: BLE001 - the manager exits anyway; say why it was unclean
            log.warning("disconnecting from Ray: %s", e)

    def _check_root(self) -> None:
        """One state directory, one root: a tree built from another root is not silently
        hidden (its storage kept but unreachable); ``switch_root`` replaces it."""
        store, wanted = self.model.store, self.model.root_url
        stored = store.get_meta("root_url")
        if stored is not None and stored != wanted and not self.switch_root:
            store.close()
            raise RootMismatch(self.state_dir, stored, wanted)
        if stored is not None and stored != wanted:
            log.warning("switching root from %s to %s", stored, wanted)

    def _remember_root(self) -> None:
        """Once the root runs: this state directory is now the tree of this root."""
        if self.model.store.get_meta("root_url") != self.model.root_url:
            self.model.store.put_meta("root_url", self.model.root_url)

    def request_shutdown(self) -> None:
        if self._shutdown_requested is not None:
            self._shutdown_requested.set()
