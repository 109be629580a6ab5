"""The hand-framed grpc.health.v1 Check against a real grpcio server (in this process)."""

import asyncio
import functools
import tempfile
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from component_manager.policy.health_wire import HealthConnection


@pytest.fixture
async def server():
    folder = Path(tempfile.mkdtemp(prefix="cm-hw-"))
    path = folder / "h.sock"
    health = HealthServicer()
    srv = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health, srv)
    srv.add_insecure_port(f"unix:{path}")
    await srv.start()
    yield path, health, srv
    await srv.stop(0)


async def check(conn: HealthConnection) -> tuple:
    answer = asyncio.get_running_loop().create_future()
    conn.check(lambda status, text: answer.done() or answer.set_result((status, text)))
    return await asyncio.wait_for(answer, 5)


@pytest.mark.parametrize("lazy_acks", [False, True])
async def test_serving_then_not_serving_many_times_on_one_connection(server, lazy_acks):
    path, health, _ = server
    _, conn = await asyncio.get_running_loop().create_unix_connection(
        functools.partial(HealthConnection, lazy_acks), str(path))
    for _ in range(50):
        assert await check(conn) == (1, "SERVING")
    await health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert await check(conn) == (2, "NOT_SERVING")
    conn.close()


async def test_an_error_status_or_a_lost_server_is_no_answer(server):
    path, health, srv = server
    _, conn = await asyncio.get_running_loop().create_unix_connection(HealthConnection, str(path))
    health._server_status.pop("")  # the service "" unknown: NOT_FOUND in the trailers
    status, text = await check(conn)
    assert status is None and "error status" in text
    await srv.stop(0)
    status, text = await check(conn)
    assert status is None and ("lost" in text or "closed" in text or "GOAWAY" in text), text
