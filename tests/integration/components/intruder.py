"""A component program that tries to get what was not routed to it. Each attempt prints one
``ATTEMPT {json}`` line (what it observed); the exit code is the number that got in."""
import asyncio
import json
import os
import sys
from pathlib import Path

import grpc

from attempts import call, os_attacks, report, runtime_connect
from component_manager import sdk
from component_manager._generated import manager_pb2, manager_pb2_grpc
from component_manager.api.query_wire import Unanswered, ask


async def main(ctx: sdk.ComponentContext) -> None:
    info = ctx.startup
    address = info.component_address
    reply, seen = await runtime_connect(address, info.token, "test.X")
    assert seen == "OK", seen
    grant, target = reply.grant, reply.address
    ok = []
    print("CONTROL with grant: " + await call(target, "/test.X/Echo", grant), flush=True)

    # the provider, without a grant / with forged grants / for another service
    ok.append(report("no_grant", await call(target, "/test.X/Echo")))
    flipped = bytearray(grant)
    flipped[-1] ^= 0x01
    ok.append(report("forged_mac", await call(target, "/test.X/Echo", bytes(flipped))))
    other_client = grant.replace(info.moniker.encode(), b"/victim", 1)
    ok.append(report("forged_client", await call(target, "/test.X/Echo", other_client)))
    ok.append(report("wrong_service", await call(target, "/test.Y/Echo", grant)))

    # Connect to what it does not use, or has no route to
    _, seen = await runtime_connect(address, info.token, "test.Y")
    ok.append(report("connect_unused", seen, "FAILED_PRECONDITION"))
    _, seen = await runtime_connect(address, info.token, "test.Z")
    ok.append(report("connect_unrouted", seen, "FAILED_PRECONDITION"))

    # ComponentRuntime with tokens that are not its own
    _, seen = await runtime_connect(address, "made-up-token", "test.X")
    ok.append(report("token_made_up", seen))
    _, seen = await runtime_connect(address, "", "test.X")
    ok.append(report("token_empty", seen))
    altered = info.token[:-1] + ("A" if info.token[-1] != "A" else "B")
    _, seen = await runtime_connect(address, altered, "test.X")
    ok.append(report("token_altered", seen))
    env = ctx.storage("data")
    with env.begin(write=True) as txn:
        stale = txn.get(b"token")
        txn.put(b"token", info.token.encode())
    if stale is not None:  # the token of this instance's previous run
        _, seen = await runtime_connect(address, stale.decode(), "test.X")
        ok.append(report("token_of_earlier_run", seen))

    # the manager's control socket (its state dir is next to component.sock)
    state_dir = Path(address.removeprefix("unix:")).parent
    async with grpc.aio.insecure_channel(f"unix:{state_dir / 'manager.sock'}") as channel:
        try:
            listed = await manager_pb2_grpc.RealmQueryStub(channel).ListInstances(
                manager_pb2.ListInstancesRequest(), timeout=10)
            seen = f"OK: {len(listed.instances)} instances"
        except grpc.aio.AioRpcError as e:
            seen = f"{e.code().name}: {e.details()}"
        ok.append(report("manager_sock_query", seen, "UNAVAILABLE"))
        try:
            await manager_pb2_grpc.LifecycleControllerStub(channel).Stop(
                manager_pb2.InstanceRequest(moniker="/provider"), timeout=10)
            seen = "OK"
        except grpc.aio.AioRpcError as e:
            seen = f"{e.code().name}: {e.details()}"
        ok.append(report("manager_sock_stop", seen, "UNAVAILABLE"))
    # ... and from a child that left the program's session (setsid) but is still under it
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SETSID_CHILD, str(state_dir / "manager.sock"),
        stdout=asyncio.subprocess.PIPE, start_new_session=True)
    out, _ = await child.communicate()
    ok.append(report("manager_sock_from_setsid_child", out.decode().strip(), "UNAVAILABLE"))
    # ... and its query socket (`cm list`, `cm show` without grpc): the same peers
    try:
        _, body = await asyncio.to_thread(ask, str(state_dir), {"method": "ListInstances"}, 10)
        seen = f"OK: {len(body.splitlines())} instances"
    except Unanswered as e:
        seen = f"UNAVAILABLE: {e}"
    ok.append(report("query_sock_list", seen, "UNAVAILABLE"))
    # the framework server, without a grant for the service
    async with grpc.aio.insecure_channel(f"unix:{state_dir / 'framework.sock'}") as channel:
        try:
            await manager_pb2_grpc.RealmQueryStub(channel).ListInstances(
                manager_pb2.ListInstancesRequest(), timeout=10)
            seen = "OK"
        except grpc.aio.AioRpcError as e:
            seen = f"{e.code().name}: {e.details()}"
        ok.append(report("framework_without_grant", seen))
        try:  # the provider's grant is not a framework grant
            await manager_pb2_grpc.RealmQueryStub(channel).ListInstances(
                manager_pb2.ListInstancesRequest(), metadata=(("cm-grant-bin", grant),), timeout=10)
            seen = "OK"
        except grpc.aio.AioRpcError as e:
            seen = f"{e.code().name}: {e.details()}"
        ok.append(report("framework_with_provider_grant", seen))

    # storage through the manager: only its own
    _, seen = await runtime_connect(address, info.token, "other_data")
    ok.append(report("connect_unused_storage", seen, "FAILED_PRECONDITION"))
    print("STORAGE " + " ".join(f"{k}={v}" for k, v in sorted(info.storage.items())), flush=True)

    # around the manager: files and processes of others (the test leaves their names here)
    targets = Path(info.storage["data"]) / "targets.json"
    if targets.exists():
        ok.extend(os_attacks(json.loads(targets.read_text())))
    own = Path(info.storage["data"]) / "own.txt"
    own.write_text("mine")  # its own storage stays its own to use
    print(f"OWN storage: {own.read_text()} uid={os.getuid()} dumpable={_dumpable()}", flush=True)
    GOT_IN.append(sum(not refused for refused in ok))


def _dumpable() -> int:
    import ctypes

    return ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE


GOT_IN: list[int] = []
SETSID_CHILD = '''
import os, sys, grpc
from component_manager._generated import manager_pb2, manager_pb2_grpc
from component_manager.api.query_wire import Unanswered, ask
assert os.getsid(0) == os.getpid()
channel = grpc.insecure_channel("unix:" + sys.argv[1])
try:
    manager_pb2_grpc.RealmQueryStub(channel).ListInstances(manager_pb2.ListInstancesRequest(), timeout=10)
    print("OK")
except grpc.RpcError as e:
    print(f"{e.code().name}: {e.details()}")
'''

if __name__ == "__main__":
    code = asyncio.run(sdk.run_async(main))
    sys.exit(code or (GOT_IN[0] if GOT_IN else 99))
