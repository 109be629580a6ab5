"""The SDK, through the example programs, against a fake manager speaking the real proto."""

import asyncio
import time

import grpc
import lmdb
import pytest

from component_manager import grants
from component_manager._generated import component_pb2 as pb
from component_manager._generated import component_pb2_grpc as pb_grpc
from component_manager.runners.base import ExitStatus
from component_manager.sdk._client import grant_channel

LIFECYCLE = "component_manager.runtime.v1.Lifecycle"
T = 15  # seconds: every wait is bounded


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _echo(address: str, metadata=()) -> bytes:
    async with grpc.aio.insecure_channel(address) as channel:
        return await channel.unary_unary("/echo.Echo/Echo")(b"hi", metadata=metadata, timeout=T)


async def _on_stop(run, reason="requested", wait_for_ready=False):
    grant = grants.issue(run.key, grants.MANAGER_CLIENT, LIFECYCLE)
    async with grant_channel(run.startup.serve_address, grant) as channel:
        await pb_grpc.LifecycleStub(channel).OnStop(
            pb.OnStopRequest(reason=reason, deadline=time.time() + 5),
            timeout=T, wait_for_ready=wait_for_ready)


async def _denied(address: str, metadata) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _echo(address, metadata)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    return caught.value.details()


def test_echo_server_checks_grants_serves_and_stops_on_on_stop(fake_manager):
    async def body():
        manager, server = await fake_manager()
        try:
            echo = await manager.launch("echo_server", "components.echo.server",
                                        storage=["data"], protocols=["echo.Echo"])
            await asyncio.wait_for(asyncio.shield(echo.serving), T)
            address = echo.startup.serve_address

            assert "malformed grant" in await _denied(address, ())
            other_key = grants.issue(grants.new_key(), "/client", "echo.Echo")
            assert "forged" in await _denied(address, (("cm-grant-bin", other_key),))
            wrong_capability = grants.issue(echo.key, "/client", "other.Thing")
            assert "other.Thing" in await _denied(address, (("cm-grant-bin", wrong_capability),))

            good = grants.issue(echo.key, "/client", "echo.Echo")
            assert await _echo(address, (("cm-grant-bin", good),)) == b"hey: hi"
            async with grant_channel(address, good) as channel:
                assert await channel.unary_unary("/echo.Echo/Echo")(b"again", timeout=T) == b"hey: again"

            lifecycle_without_grant = grants.issue(echo.key, grants.MANAGER_CLIENT, "echo.Echo")
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async with grant_channel(address, lifecycle_without_grant) as channel:
                    await pb_grpc.LifecycleStub(channel).OnStop(pb.OnStopRequest(reason="x"), timeout=T)
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED

            await _on_stop(echo)
            status = await asyncio.wait_for(echo.program.wait(), T)
            return echo, status
        finally:
            await server.stop(None)

    echo, status = run(body())
    assert status == ExitStatus(exit_code=0), echo.log
    assert "stopping (requested)" in echo.log
    with lmdb.open(echo.startup.storage["data"], subdir=True, readonly=True, lock=False) as env:
        with env.begin() as txn:
            assert txn.get(b"calls") == b"2"


def test_echo_client_connects_through_the_manager_and_prints_the_reply(fake_manager):
    async def body():
        manager, server = await fake_manager()
        try:
            echo = await manager.launch("echo_server", "components.echo.server",
                                        storage=["data"], protocols=["echo.Echo"])
            manager.routes[("/echo_client", "echo.Echo")] = echo
            client = await manager.launch("echo_client", "components.echo.client",
                                          stop_event="none", ready="spawned")
            client_status = await asyncio.wait_for(client.program.wait(), T)
            await _on_stop(echo)
            await asyncio.wait_for(echo.program.wait(), T)
            return client, client_status
        finally:
            await server.stop(None)

    client, status = run(body())
    assert status == ExitStatus(exit_code=0), client.log
    assert client.log == "hey: hi\n"


def test_idle_server_asks_to_stop_again_after_a_refusal_and_exits(fake_manager):
    async def body():
        manager, server = await fake_manager()
        try:
            echo = await manager.launch("echo_server", "components.echo.server", storage=["data"],
                                        protocols=["echo.Echo"], idle_timeout_ms=150)
            # refuse the first idle request (set before it can be made: serving is not reported yet
            # when launch returns, and the idle timer starts only once serving)
            echo.accept_stop.append(False)
            status = await asyncio.wait_for(echo.program.wait(), T)
            return echo, status
        finally:
            await server.stop(None)

    echo, status = run(body())
    assert status == ExitStatus(exit_code=0), echo.log
    assert echo.stop_requests == ["idle", "idle"]
    assert "stopping (idle)" in echo.log


def test_counter_adds_one_per_start_and_stops_on_on_stop(fake_manager):
    async def one_start(manager, n):
        counter = await manager.launch(f"counter{n}", "components.counter.main", storage=["data"],
                                       ready="spawned")
        await _on_stop(counter, wait_for_ready=True)  # it serves Lifecycle once it has counted
        return counter, await asyncio.wait_for(counter.program.wait(), T)

    async def body():
        manager, server = await fake_manager()
        try:
            return [await one_start(manager, n) for n in (1, 2)]
        finally:
            await server.stop(None)

    (first, s1), (second, s2) = run(body())
    assert s1 == s2 == ExitStatus(exit_code=0)
    assert first.log == "count=1\n"
    assert second.log == "count=2\n"
