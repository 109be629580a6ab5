"""A fake manager: the real ComponentRuntime proto on a temporary Unix socket, launching
real programs through the python runner with a real StartupInfo."""

import asyncio
import json
import shutil
import tempfile
from pathlib import Path

import grpc
import pytest

from component_manager import grants
from component_manager._generated import component_pb2 as pb
from component_manager._generated import component_pb2_grpc as pb_grpc
from component_manager.manifest.decl import ProgramDecl
from component_manager.runners import get_runner
from component_manager.runners.base import LaunchSpec
from component_manager.runners.startup import StartupInfo

ROOT = Path(__file__).resolve().parents[3]


class Run:
    """One launched program, as the fake manager knows it."""

    def __init__(self, moniker, key, startup, log_path):
        self.moniker = moniker
        self.key = key
        self.startup = startup
        self.log_path = log_path
        self.serving = asyncio.get_running_loop().create_future()
        self.stop_requests: list[str] = []
        self.accept_stop: list[bool] = []  # answers to RequestStop, in order (then: accept)
        self.program = None

    @property
    def log(self) -> str:
        return self.log_path.read_text()


class FakeManager(pb_grpc.ComponentRuntimeServicer):
    def __init__(self, dir: Path):
        self.dir = dir
        self.address = f"unix:{dir}/component.sock"
        self.runs: dict[str, Run] = {}  # token -> run
        self.routes: dict[tuple[str, str], Run] = {}  # (client moniker, capability) -> provider
        self.config = {"greeting": "hey"}

    def _caller(self, context) -> Run:
        run = self.runs.get(dict(context.invocation_metadata()).get("cm-token"))
        if run is None:
            raise PermissionError("bad token")
        return run

    async def ReportServing(self, request, context):
        run = self._caller(context)
        if not run.serving.done():
            run.serving.set_result(True)
        return pb.ReportServingReply()

    async def Connect(self, request, context):
        client = self._caller(context)
        provider = self.routes[(client.moniker, request.capability)]
        await asyncio.wait_for(asyncio.shield(provider.serving), 10)
        return pb.ConnectReply(kind="protocol", address=provider.startup.serve_address,
                               grant=grants.issue(provider.key, client.moniker, request.capability),
                               provider=provider.moniker)

    async def RequestStop(self, request, context):
        run = self._caller(context)
        run.stop_requests.append(request.reason)
        accepted = run.accept_stop.pop(0) if run.accept_stop else True
        return pb.RequestStopReply(accepted=accepted, why_not="" if accepted else "not yet")

    async def GetConfig(self, request, context):
        self._caller(context)
        return pb.ConfigReply(values_json=json.dumps(self.config))

    async def launch(self, name: str, module: str, *, storage=(), stop_event="notify",
                     ready="serving", idle_timeout_ms=0, protocols=()) -> Run:
        key = grants.new_key()
        token = f"token-{name}-{len(self.runs)}"
        startup = StartupInfo(
            moniker=f"/{name}", instance_id=f"id-{name}", component_address=self.address,
            token=token, serve_address=f"unix:{self.dir}/{name}.sock", grant_key=key.hex(),
            protocols=tuple(protocols), storage={s: str(self.dir / "storage" / s) for s in storage},
            stop_event=stop_event, ready=ready, idle_timeout_ms=idle_timeout_ms)
        for path in startup.storage.values():
            Path(path).mkdir(parents=True, exist_ok=True)
        run = Run(f"/{name}", key, startup, self.dir / "logs" / f"{name}.log")
        self.runs[token] = run
        decl = ProgramDecl(runner="python", module=module, stop_event=stop_event, ready=ready)
        spec = LaunchSpec(run.moniker, startup.instance_id, decl, ROOT, run.log_path, startup)
        run.program = await get_runner("python").launch(spec)
        return run


@pytest.fixture
def fake_manager():
    """``await fake_manager()`` -> (FakeManager, its grpc.aio server) on a short tmp dir."""
    path = Path(tempfile.mkdtemp(prefix="cm-"))
    yield lambda: start_fake_manager(path)
    shutil.rmtree(path, ignore_errors=True)


async def start_fake_manager(dir: Path) -> tuple[FakeManager, grpc.aio.Server]:
    manager = FakeManager(dir)
    server = grpc.aio.server()
    pb_grpc.add_ComponentRuntimeServicer_to_server(manager, server)
    server.add_insecure_port(manager.address)
    await server.start()
    return manager, server
