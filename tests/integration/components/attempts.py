"""Helpers for the break-in programs: make a call, and say what a user would have seen."""
import json

import grpc

from component_manager._generated import component_pb2 as pb
from component_manager._generated import component_pb2_grpc as pb_grpc

GRANT_KEY = "cm-grant-bin"


async def call(address: str, method: str, grant: bytes | None = None, payload: bytes = b"hi") -> str:
    """Call a raw-bytes unary method; "OK" or "CODE: details"."""
    metadata = ((GRANT_KEY, grant),) if grant is not None else None
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            await channel.unary_unary(method)(payload, metadata=metadata, timeout=20)
            return "OK"
        except grpc.aio.AioRpcError as e:
            return f"{e.code().name}: {e.details()}"


async def runtime_connect(address: str, token: str, capability: str):
    """A raw ComponentRuntime.Connect with any token: (reply, "OK") or (None, "CODE: details")."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.ComponentRuntimeStub(channel)
        try:
            reply = await stub.Connect(pb.ConnectRequest(capability=capability),
                                       metadata=(("cm-token", token),), timeout=30)
            return reply, "OK"
        except grpc.aio.AioRpcError as e:
            return None, f"{e.code().name}: {e.details()}"


def report(attack: str, observed: str, refused_if: str = "PERMISSION_DENIED") -> bool:
    """Print one line for the test to read; True if the attempt was refused as expected."""
    refused = observed.startswith(refused_if)
    print("ATTEMPT " + json.dumps({"attack": attack, "refused": refused, "observed": observed}), flush=True)
    return refused
