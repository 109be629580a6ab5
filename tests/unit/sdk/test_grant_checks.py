"""Grant checks on the call path: the cached Verifier, the guarded handlers, and a client
channel that renews a stale grant after its provider restarted."""

import asyncio
import time

import grpc
import pytest

from component_manager import grants
from component_manager._generated import component_pb2 as pb
from component_manager._generated import component_pb2_grpc as pb_grpc
from component_manager.errors import AccessDenied
from component_manager.runners.startup import StartupInfo
from component_manager.sdk import ComponentContext
from component_manager.grant_guard import ActivityTracker, GrantGuard

LIFECYCLE = "component_manager.runtime.v1.Lifecycle"
T = 15


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def _refusal(call) -> str:
    with pytest.raises(AccessDenied) as caught:
        call()
    return str(caught.value)


def test_verifier_answers_as_verify_and_computes_one_hmac_per_grant(monkeypatch):
    key = grants.new_key()
    good = grants.issue(key, "/client", "echo.Echo")
    forged = grants.issue(grants.new_key(), "/client", "echo.Echo")
    verifier = grants.Verifier(key)
    for grant, capability in ((b"x", "echo.Echo"), (forged, "echo.Echo"), (good, "other.Thing")):
        assert _refusal(lambda: verifier.verify(grant, capability)) == \
            _refusal(lambda: grants.verify(key, grant, capability))
    macs = []
    real = grants._authentic
    monkeypatch.setattr(grants, "_authentic", lambda k, g: macs.append(g) or real(k, g))
    assert [verifier.verify(good, "echo.Echo") for _ in range(3)] == ["/client"] * 3
    assert macs == []  # remembered from the refusal for other.Thing above
    assert grants.NOT_ISSUED_HERE in _refusal(lambda: verifier.verify(forged, "echo.Echo"))
    assert grants.NOT_ISSUED_HERE in _refusal(lambda: verifier.verify(forged, "echo.Echo"))
    assert macs == [forged, forged]  # a forged grant is never remembered


def test_verifier_memory_is_bounded_and_a_keyless_one_refuses_everything(monkeypatch):
    key = grants.new_key()
    monkeypatch.setattr(grants.Verifier, "MAX_REMEMBERED", 4)
    verifier = grants.Verifier(key)
    for i in range(10):
        assert verifier.verify(grants.issue(key, f"/c{i}", "echo.Echo"), "echo.Echo") == f"/c{i}"
        assert len(verifier._authentic) <= 4
    keyless = grants.Verifier(b"")
    assert "no grant key" in _refusal(lambda: keyless.verify(grants.issue(b"", "/c", "x.Y"), "x.Y"))


def test_guarded_handler_refuses_before_deserializing_and_serves_with_a_grant(tmp_path):
    seen = []

    def deserialize(raw: bytes) -> bytes:
        seen.append(raw)
        return raw.upper()

    async def echo(request, context):
        return request

    async def body():
        key = grants.new_key()
        guard = GrantGuard(key, ActivityTracker())
        server = grpc.aio.server()
        handlers = {"Echo": grpc.unary_unary_rpc_method_handler(echo, request_deserializer=deserialize)}
        registrar = guard.server(server)
        registrar.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.E", handlers),))
        registrar.add_registered_method_handlers("t.E", handlers)
        address = f"unix:{tmp_path}/s.sock"
        server.add_insecure_port(address)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                call = channel.unary_unary("/t.E/Echo")
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call(b"no grant", timeout=T)
                assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
                assert caught.value.details() == f"{AccessDenied('malformed grant')} (calling /t.E/Echo)"
                assert seen == []
                grant = grants.issue(key, "/c", "t.E")
                assert await call(b"hi", metadata=(("cm-grant-bin", grant),), timeout=T) == b"HI"
                assert seen == [b"hi"]
        finally:
            await server.stop(None)

    run(body())


class _Runtime(pb_grpc.ComponentRuntimeServicer):
    """Just Connect: answers with the current provider's address and a grant of its key."""

    def __init__(self, address: str):
        self.address = address
        self.key = grants.new_key()
        self.connects = 0
        self.before_answer = None  # async () -> None, run by Connect before it answers

    async def Connect(self, request, context):
        self.connects += 1
        if self.before_answer is not None:
            await self.before_answer()
        return pb.ConnectReply(kind="protocol", address=self.address,
                               grant=grants.issue(self.key, "/client", request.capability))


async def _provider(runtime: _Runtime) -> grpc.aio.Server:
    """A provider run: a fresh key (the manager's runtime now grants with it), same address."""
    async def echo(request, context):
        return b"run %d: " % runtime.connects + request

    runtime.key = grants.new_key()
    guard = GrantGuard(runtime.key, ActivityTracker())
    server = grpc.aio.server()
    guard.server(server).add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "echo.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}),))
    server.add_insecure_port(runtime.address)
    await server.start()
    return server


async def _manager(tmp_path) -> tuple[_Runtime, grpc.aio.Server]:
    """A stand-in manager's ComponentRuntime at tmp_path/component.sock, for a provider
    at tmp_path/provider.sock."""
    runtime = _Runtime(f"unix:{tmp_path}/provider.sock")
    manager = grpc.aio.server()
    pb_grpc.add_ComponentRuntimeServicer_to_server(runtime, manager)
    manager.add_insecure_port(f"unix:{tmp_path}/component.sock")
    await manager.start()
    return runtime, manager


def _client(tmp_path) -> ComponentContext:
    return ComponentContext(StartupInfo(moniker="/client", instance_id="id", token="t",
                                        component_address=f"unix:{tmp_path}/component.sock"))


@pytest.mark.parametrize("gap", ["stopped", "restarted"])
def test_a_call_with_a_stale_grant_renews_it_once_and_is_repeated(tmp_path, gap):
    """``stopped``: the provider is gone when the call is made (UNAVAILABLE), and restarted
    by the time the client asks again; ``restarted``: a new run already serves the address
    (PERMISSION_DENIED, earlier run's grant)."""
    async def body():
        runtime, manager = await _manager(tmp_path)
        provider = await _provider(runtime)
        ctx = _client(tmp_path)
        try:
            channel = await ctx.connect("echo.Echo")
            assert await channel.unary_unary("/echo.Echo/Echo")(b"a", timeout=T) == b"run 1: a"
            assert await ctx.connect("echo.Echo") is channel and runtime.connects == 1
            await provider.stop(None)
            if gap == "restarted":
                provider = await _provider(runtime)
            else:
                async def restart_the_provider():  # as the manager's lazy start does
                    nonlocal provider
                    provider = await _provider(runtime)
                runtime.before_answer = restart_the_provider
            stub = channel.unary_unary("/echo.Echo/Echo")
            assert await stub(b"b", timeout=T) == b"run 2: b"
            assert runtime.connects == 2
            runtime.before_answer = None
            assert await stub(b"c", timeout=T) == b"run 2: c"  # the renewed grant stays
            assert runtime.connects == 2
        finally:
            await ctx.aclose()
            await provider.stop(None)
            await manager.stop(None)

    run(body())


_DYING_PROVIDER = """
import asyncio, os, sys
import grpc
from component_manager.grant_guard import ActivityTracker, GrantGuard

async def die(request, context):
    with open(sys.argv[3], "a") as ran:
        ran.write("ran\\n")
    os._exit(1)  # mid-call: the client's call has reached us

async def main():
    server = grpc.aio.server()
    GrantGuard(bytes.fromhex(sys.argv[2]), ActivityTracker()).server(server).add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("echo.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(die)}),))
    server.add_insecure_port(sys.argv[1])
    await server.start()
    print("serving", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def test_a_call_whose_provider_dies_mid_call_is_not_repeated(tmp_path):
    """It may have run: the caller gets UNAVAILABLE and no second run happens."""
    import subprocess
    import sys

    async def body():
        runtime, manager = await _manager(tmp_path)
        ran = tmp_path / "ran"
        provider = subprocess.Popen([sys.executable, "-c", _DYING_PROVIDER, runtime.address, runtime.key.hex(),
                                     str(ran)], stdout=subprocess.PIPE)
        ctx = _client(tmp_path)
        try:
            assert provider.stdout.readline() == b"serving\n"
            channel = await ctx.connect("echo.Echo")
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await channel.unary_unary("/echo.Echo/Echo")(b"once", timeout=T)
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
            assert ran.read_text() == "ran\n" and runtime.connects == 1
        finally:
            provider.kill()
            provider.wait()
            await ctx.aclose()
            await manager.stop(None)

    run(body())
