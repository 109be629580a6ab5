"""RealmBuilder: build a realm of real and local components into a throwaway manager.

Example::

    from component_manager.testing import RealmBuilder, stopped

    async def client(ctx):                        # a LOCAL component: runs in the test process
        channel = await ctx.connect("echo.Echo")
        print(await channel.unary_unary("/echo.Echo/Echo")(b"hi"))

    builder = RealmBuilder()
    builder.add_child("server", url="components/echo/echo_server.cml")
    builder.add_local_child("client", main=client)
    builder.add_route(protocol="echo.Echo", source="#server", targets=["#client", "test"])
    builder.add_route(storage="data", targets=["#server"])
    async with builder.build() as realm:          # or: realm = await builder.build()
        channel = await realm.connect("echo.Echo")     # the test itself is a component
        await realm.start("/client")
        await realm.wait_for(stopped("/client", reason="exited"))

What ``build()`` does: it writes the realm's manifests into a fresh short temporary folder
(``/tmp/cm-*``): ``root.cml`` (the children, the offers, the storage capabilities routed
from the root) and one ``<name>.cml`` per local child; it serves the local launcher socket
there (see ``runners/local.py``); it starts a real manager process (``ManagerProcess``) on
``<folder>/state`` with that root; and it waits until the test's own local component,
``/test_driver`` (eager, uses every capability routed to ``"test"``), has its context.

Local components run in the test's event loop, under ``sdk.run_async(main, startup=...)``,
with a real ``sdk.ComponentContext``: the manager launches and stops them as it does any
program (Lifecycle ``OnStop``, then a "signal", which here cancels the coroutine).

Teardown (``destroy()``, also on leaving ``async with`` and in the ``realm_builder`` fixture,
pass or fail): ordered manager shutdown (SIGKILL if it hangs), every program group the state
knows killed, local coroutines cancelled, the launcher socket closed, the folder removed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..moniker import NAME_PATTERN
from ..runners.startup import StartupInfo
from ..sdk import run_async
from .events import Matcher
from .process import EventWatch, ManagerProcess

__all__ = ["LocalComponentRunner", "Realm", "RealmBuilder", "TEST_DRIVER"]

log = logging.getLogger("component_manager.testing")

TEST_DRIVER = "test_driver"  # the child that stands for the test itself
LocalMain = Callable[..., Awaitable[None]]
LocalHook = Callable[[dict], Awaitable[None]]  # gets the hook's CM_* environment
HOOK_CLIENT = Path(__file__).with_name("hook_client.py")


# ---- the launcher the manager's ``local`` runner talks to ------------------------------------


class _LocalRun:
    def __init__(self, name: str, moniker: str, task: asyncio.Task):
        self.name = name
        self.moniker = moniker
        self.task = task
        self.signal: int | None = None

    def kill(self, sig: int) -> None:
        if not self.task.done():
            if self.signal is None:
                self.signal = int(sig)
            self.task.cancel()

    def status(self) -> dict:
        if self.task.cancelled():
            return {"signal": self.signal or int(signal.SIGKILL)}
        if self.task.exception() is not None:
            return {"exit_code": 1}
        return {"exit_code": int(self.task.result() or 0)}


class LocalComponentRunner:
    """Serves the launcher socket in the test's event loop; runs registered ``main``
    coroutines when the manager launches a local component (protocol: ``runners/local.py``).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.mains: dict[str, LocalMain] = {}
        self.hooks: dict[str, LocalHook] = {}  # "<name>.pre_start" -> async fn(env)
        self.runs: dict[str, _LocalRun] = {}  # moniker -> its current (or last) run
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task] = set()

    @property
    def entry_prefix(self) -> str:
        return f"unix:{self.path}#"

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        os.chmod(self.path, 0o600)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(asyncio.current_task())
        try:
            request = json.loads(await reader.readline() or b"{}")
            if "hook" in request:
                writer.write(_line(await self._run_hook(request["hook"], request.get("env", {}))))
                await writer.drain()
                return
            main = self.mains.get(request.get("name", ""))
            if main is None:
                writer.write(_line({"ok": False, "error": f"no local component {request.get('name')!r}"}))
                await writer.drain()
                return
            startup = StartupInfo.from_json(json.dumps(request["startup"]))
            run = _LocalRun(request["name"], startup.moniker, asyncio.create_task(
                _run_component(main, startup), name=f"local component {startup.moniker}"))
            self.runs[startup.moniker] = run
            writer.write(_line({"ok": True}))
            await writer.drain()
            signals = asyncio.create_task(self._signals(reader, run))
            try:
                await asyncio.wait({run.task})
            finally:
                signals.cancel()
            writer.write(_line(run.status()))
            await writer.drain()
        except (OSError, ValueError, KeyError) as e:
            log.debug("local launcher connection ended: %r", e)
        finally:
            writer.close()
            self._connections.discard(asyncio.current_task())

    async def _run_hook(self, key: str, env: dict) -> dict:
        """Run a callable hook for ``hook_client.py``: ok, or the error it raised."""
        hook = self.hooks.get(key)
        if hook is None:
            return {"ok": False, "output": f"no local hook {key!r}"}
        try:
            await hook(env)
        except Exception as e:  # noqa: BLE001 - the hook's failure is the answer
            return {"ok": False, "output": f"{type(e).__name__}: {e}"}
        return {"ok": True, "output": ""}

    async def _signals(self, reader: asyncio.StreamReader, run: _LocalRun) -> None:
        """Signals from the manager cancel the run; so does losing the manager."""
        try:
            while line := await reader.readline():
                run.kill(json.loads(line).get("signal", signal.SIGKILL))
        except (OSError, ValueError):
            pass
        run.kill(signal.SIGKILL)  # the manager is gone: its program must not outlive it

    def kill(self, moniker: str, sig: int = signal.SIGKILL) -> bool:
        run = self.runs.get(moniker)
        if run is None or run.task.done():
            return False
        run.kill(sig)
        return True

    async def close(self) -> None:
        for run in self.runs.values():
            run.kill(signal.SIGKILL)
        tasks = [r.task for r in self.runs.values()] + list(self._connections)
        if self._server is not None:
            self._server.close()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None


async def _run_component(main: LocalMain, startup: StartupInfo) -> int:
    return await run_async(main, startup=startup)


def _line(message: dict) -> bytes:
    return json.dumps(message).encode() + b"\n"


# ---- the builder ------------------------------------------------------------------------------


@dataclass
class _Child:
    name: str
    url: str = ""
    eager: bool = False
    main: LocalMain | None = None
    uses: list[str] = field(default_factory=list)
    exposes: list[str] = field(default_factory=list)
    storage: list[str] = field(default_factory=list)
    program: dict = field(default_factory=dict)
    hooks: dict[str, LocalHook] = field(default_factory=dict)  # "pre_start"/"post_stop" -> fn


class RealmBuilder:
    """Describe a realm, then ``build()`` it. See the module docstring."""

    def __init__(self, *, start_timeout: float = 30.0):
        self.start_timeout = start_timeout
        self._children: dict[str, _Child] = {}
        self._offers: list[dict] = []
        self._root_storage: list[str] = []
        self._test_uses: list[str] = []
        self.realms: list[Realm] = []  # every realm built, for teardown

    def add_child(self, name: str, url: str, *, eager: bool = False) -> str:
        """A child from a manifest: a path (relative to the working directory) or a
        ``file://`` URL. Returns its reference ``"#name"`` for routes."""
        self._check_name(name)
        if not url.startswith("file:"):
            url = str(Path(url).resolve())
        self._children[name] = _Child(name, url=url, eager=eager)
        return f"#{name}"

    def _package_roots(self, folder: Path) -> list[Path]:
        """The realm's folder and the folder of each child's manifest."""
        urls = [c.url.removeprefix("file://") for c in self._children.values() if c.url]
        return [folder, *dict.fromkeys(Path(u).parent for u in urls)]

    def add_local_child(self, name: str, main: LocalMain, *, uses: Iterable[str] = (),
                        exposes: Iterable[str] = (), eager: bool = False,
                        idle_timeout: str | None = None, stop_timeout: str | None = None,
                        ready: str | None = None, pre_start: LocalHook | None = None,
                        post_stop: LocalHook | None = None, program: dict | None = None) -> str:
        """A child whose program is ``async def main(ctx: sdk.ComponentContext)``, run in
        the test process. ``uses``/``exposes`` are protocol names (a protocol routed to it,
        or storage, is added to its uses by ``add_route``). A component that exposes
        protocols must ``await ctx.serving()``, as any SDK program. Returns ``"#name"``.

        ``pre_start``/``post_stop``: callable hooks, ``async def hook(env)`` (``env``: the
        hook's ``CM_*`` variables), run in the test process at the manager's hook points,
        through a real hook command; one that raises fails the start (``start_failed``) or
        is recorded on the stop. ``program``: more keys for its ``program`` (``restart``,
        ``health``, ``max_run_time``, ...)."""
        self._check_name(name)
        settings: dict = {"lifecycle": {"stop_event": "notify"}, **(program or {})}
        for key, value in (("idle_timeout", idle_timeout), ("stop_timeout", stop_timeout), ("ready", ready)):
            if value is not None:
                settings[key] = value
        hooks = {which: fn for which, fn in (("pre_start", pre_start), ("post_stop", post_stop)) if fn}
        self._children[name] = _Child(name, eager=eager, main=main, uses=list(uses),
                                      exposes=list(exposes), program=settings, hooks=hooks)
        return f"#{name}"

    def add_route(self, *, targets: Iterable[str], protocol: str | Iterable[str] | None = None,
                  storage: str | None = None, source: str = "self") -> None:
        """Offer ``protocol`` (one name or several) from ``source`` (``"#child"``), or the
        root's ``storage`` area, to ``targets``: ``"#child"`` or ``"test"`` (the test itself,
        which then can ``await realm.connect(protocol)``)."""
        targets = list(targets)
        if (protocol is None) == (storage is None):
            raise ValueError("add_route needs exactly one of protocol= or storage=")
        to = []
        for target in targets:
            if target == "test":
                to.append(f"#{TEST_DRIVER}")
            elif target.startswith("#") and target[1:] in self._children:
                to.append(target)
            else:
                raise ValueError(f"unknown route target {target!r} (use '#child' or 'test')")
        if storage is not None:
            if source != "self":
                raise ValueError("storage routes come from the realm's root: source='self'")
            if storage not in self._root_storage:
                self._root_storage.append(storage)
            self._offers.append({"storage": storage, "from": "self", "to": to})
            self._note_uses(targets, storage=storage)
            return
        if not (source.startswith("#") and source[1:] in self._children):
            raise ValueError(f"unknown route source {source!r} (use '#child', added before)")
        names = [protocol] if isinstance(protocol, str) else list(protocol)
        for name in names:
            self._offers.append({"protocol": name, "from": source, "to": to})
        self._note_uses(targets, protocols=names)

    def _note_uses(self, targets: list[str], protocols: Iterable[str] = (), storage: str | None = None) -> None:
        for target in targets:
            if target == "test":
                self._test_uses += [p for p in protocols if p not in self._test_uses]
                continue
            child = self._children[target[1:]]
            if child.main is None:
                continue  # a manifest child declares its own uses
            child.uses += [p for p in protocols if p not in child.uses]
            if storage is not None and storage not in child.storage:
                child.storage.append(storage)

    def _check_name(self, name: str) -> None:
        if not re.fullmatch(NAME_PATTERN, name):
            raise ValueError(f"invalid child name {name!r}: must match {NAME_PATTERN}")
        if name == TEST_DRIVER or name in self._children:
            raise ValueError(f"child name {name!r} is taken")

    # -- building -------------------------------------------------------------------------

    def build(self) -> _Build:
        """``realm = await builder.build()`` or ``async with builder.build() as realm:``."""
        return _Build(self)

    def _write_manifests(self, folder: Path, launcher: LocalComponentRunner) -> Path:
        children = []
        for child in [*self._children.values(), _Child(TEST_DRIVER, eager=True, uses=self._test_uses,
                                                          main=_driver_placeholder,
                                                          program={"lifecycle": {"stop_event": "notify"}})]:
            url = child.url
            if child.main is not None:
                url = f"{child.name}.cml"
                _write_json(folder / url, _local_manifest(child, launcher.entry_prefix + child.name,
                                                         launcher.path))
            decl = {"name": child.name, "url": url}
            if child.eager:
                decl["startup"] = "eager"
            children.append(decl)
        root = {"children": children, "offer": self._offers}
        if self._root_storage:
            root["capabilities"] = [{"storage": s} for s in self._root_storage]
        path = folder / "root.cml"
        _write_json(path, root)
        return path

    async def _build(self) -> Realm:
        folder = Path(tempfile.mkdtemp(prefix="cm-"))
        launcher = LocalComponentRunner(folder / "local.sock")
        realm = Realm(folder, launcher, self.start_timeout)
        self.realms.append(realm)
        try:
            for child in self._children.values():
                if child.main is not None:
                    launcher.mains[child.name] = child.main
                for which, hook in child.hooks.items():
                    launcher.hooks[f"{child.name}.{which}"] = hook
            launcher.mains[TEST_DRIVER] = realm._driver_main
            root = self._write_manifests(folder, launcher)
            await launcher.start()
            realm.manager = ManagerProcess(folder / "state", root=str(root),
                                           package_roots=self._package_roots(folder))
            await realm._start_manager()
        except BaseException:
            await realm.destroy()
            raise
        return realm


async def _driver_placeholder(ctx) -> None:  # replaced by the realm's own driver
    raise AssertionError("unreachable")


def _local_manifest(child: _Child, entry: str, launcher_path: Path) -> dict:
    manifest: dict = {"program": {"runner": "local", "entry": entry, **child.program}}
    if child.hooks:  # each a real hook command that asks the launcher to run the callable
        manifest["program"]["hooks"] = {
            which: [[sys.executable, str(HOOK_CLIENT), str(launcher_path), f"{child.name}.{which}"]]
            for which in child.hooks}
    if child.exposes:
        manifest["capabilities"] = [{"protocol": p} for p in child.exposes]
        manifest["expose"] = [{"protocol": p, "from": "self"} for p in child.exposes]
    uses = [{"protocol": p} for p in child.uses] + [{"storage": s, "path": f"/{s}"} for s in child.storage]
    if uses:
        manifest["use"] = uses
    return manifest


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=4) + "\n")


class _Build:
    """What ``RealmBuilder.build()`` returns: awaitable, and an async context manager."""

    def __init__(self, builder: RealmBuilder):
        self._builder = builder
        self._realm: Realm | None = None

    def __await__(self):
        return self._builder._build().__await__()

    async def __aenter__(self) -> Realm:
        self._realm = await self._builder._build()
        return self._realm

    async def __aexit__(self, *exc) -> None:
        await self._realm.destroy()


# ---- the realm --------------------------------------------------------------------------------


class Realm:
    """A built realm: a running manager on its own state, plus the test's local components.

    Monikers are those of the manager: the builder's children are ``/name``; the test
    itself is ``/test_driver``.
    """

    def __init__(self, folder: Path, launcher: LocalComponentRunner, timeout: float):
        self.folder = folder
        self.launcher = launcher
        self.timeout = timeout
        self.manager: ManagerProcess | None = None
        self._watch: EventWatch | None = None
        self._driver: asyncio.Future | None = None
        self._channels: list = []  # every channel connect() gave the test, closed at teardown
        self._destroyed = False

    @property
    def state_dir(self) -> Path:
        return self.folder / "state"

    # -- the test as a component ----------------------------------------------------------

    async def _driver_main(self, ctx) -> None:
        if self._driver is not None and not self._driver.done():
            self._driver.set_result(ctx)
        await ctx.wait_for_stop()

    @property
    async def context(self):
        """The test's own ``sdk.ComponentContext`` (as ``/test_driver``)."""
        return await asyncio.wait_for(asyncio.shield(self._driver), self.timeout)

    async def connect(self, capability: str):
        """A ``grpc.aio.Channel`` to a protocol routed to ``"test"``, through the manager
        (which starts the provider if needed), carrying the grant. Each call asks the
        manager again: a channel from before the provider stopped holds a stale grant."""
        ctx = await self.context
        ctx._channels.pop(capability, None)  # ask the manager every time: the provider may have stopped
        channel = await ctx.connect(capability)
        self._channels.append(channel)
        return channel

    # -- driving --------------------------------------------------------------------------

    async def cm(self, *args: str, check: bool = True):
        """Run the real ``cm`` against this realm's manager (off the event loop)."""
        return await asyncio.to_thread(self.manager.cm, *args, check=check)

    async def start(self, moniker: str) -> None:
        await self.cm("start", moniker)

    async def stop(self, moniker: str) -> None:
        await self.cm("stop", moniker)

    async def show(self, moniker: str) -> dict:
        return await asyncio.to_thread(self.manager.show, moniker)

    async def wait_for(self, matcher: Matcher | None = None, timeout: float | None = None, **match) -> dict:
        """The next event (after the one the previous wait returned, from the manager's
        first event on) for which ``matcher(event)`` is true and whose fields equal
        ``match``. Raises AssertionError after ``timeout`` (default: the builder's)."""
        return await asyncio.to_thread(self._watch.wait_for, matcher,
                                       self.timeout if timeout is None else timeout, **match)

    @property
    def events(self) -> list[dict]:
        """Every event received so far."""
        return list(self._watch.seen) if self._watch else []

    # -- faults ---------------------------------------------------------------------------

    def kill_program(self, moniker: str) -> int:
        """SIGKILL the program of ``moniker`` (its whole process group; for a local
        component, cancel its coroutine): a crash the manager did not cause. Returns the
        pid killed (0 for a local component). Raises AssertionError if it is not running."""
        if self.launcher.kill(moniker, signal.SIGKILL):
            return 0
        pid = self.manager.show(moniker).get("pid") or 0
        if not pid:
            raise AssertionError(f"{moniker} has no running program to kill")
        os.killpg(pid, signal.SIGKILL)  # programs run in their own session: pgid == pid
        return pid

    def crash_program(self, moniker: str, sig: int = signal.SIGSEGV) -> int:
        """Make the program of ``moniker`` crash now (SIGSEGV to its process group; a local
        component is cancelled, as ``kill_program``). Returns the pid (0: local)."""
        if self.launcher.kill(moniker, sig):
            return 0
        return self.manager.crash(moniker, sig)

    def hang_program(self, moniker: str) -> int:
        """Freeze the program of ``moniker`` (SIGSTOP): it stops answering, health probes
        fail. ``manager.unhang(moniker)`` thaws it."""
        return self.manager.hang(moniker)

    async def restart_manager(self, kill: bool = True) -> None:
        """Stop the manager (``kill``: ``kill -9``, else an ordered shutdown) and start a
        new one on the same state directory; waits until the test is a component again.
        Events keep flowing into the same ``wait_for`` sequence."""
        last = self._close_watch()
        await asyncio.to_thread(self.manager.kill9 if kill else self.manager.terminate)
        await self._start_manager(since_seq=last)

    async def _start_manager(self, since_seq: int = 0) -> None:
        self._driver = asyncio.get_running_loop().create_future()
        await asyncio.to_thread(self.manager.start)
        old = self._watch
        watch = EventWatch(self.manager, "", history=True, since_seq=since_seq)
        if old is not None:
            watch.seen, watch._cursor = old.seen, old._cursor
        await asyncio.to_thread(watch.__enter__)
        self._watch = watch
        await self.context

    def _close_watch(self) -> int:
        if self._watch is None:
            return 0
        self._watch.close()
        return max((e["seq"] for e in self._watch.seen), default=0)

    # -- teardown -------------------------------------------------------------------------

    async def destroy(self) -> None:
        """Tear everything down (idempotent): the manager (ordered, then SIGKILL), every
        program, the local components, the launcher socket, the temporary folder."""
        if self._destroyed:
            return
        self._destroyed = True
        try:
            self._close_watch()
            for channel in self._channels:
                await channel.close()
            self._channels.clear()
            if self.manager is not None:
                await asyncio.to_thread(self.manager.close)
        finally:
            try:
                await self.launcher.close()
            finally:
                if self._driver is not None and not self._driver.done():
                    self._driver.cancel()
                shutil.rmtree(self.folder, ignore_errors=True)

    async def __aenter__(self) -> Realm:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.destroy()
