"""Uses RealmQuery, routed from the framework: lists the instances; then tries the same
grant on LifecycleController (not routed to it), and the control socket."""
import asyncio

import grpc

from attempts import report
from component_manager import sdk
from component_manager._generated import manager_pb2, manager_pb2_grpc


async def main(ctx: sdk.ComponentContext) -> None:
    channel = await ctx.connect("component_manager.v1.RealmQuery")
    listed = await manager_pb2_grpc.RealmQueryStub(channel).ListInstances(
        manager_pb2.ListInstancesRequest(), timeout=20)
    print("LISTED " + " ".join(sorted(i.moniker for i in listed.instances)), flush=True)
    try:
        await manager_pb2_grpc.LifecycleControllerStub(channel).Stop(
            manager_pb2.InstanceRequest(moniker="/provider"), timeout=20)
        seen = "OK"
    except grpc.aio.AioRpcError as e:
        seen = f"{e.code().name}: {e.details()}"
    RESULT.append(0 if report("unrouted_framework_service", seen) else 1)


RESULT: list[int] = []

if __name__ == "__main__":
    code = asyncio.run(sdk.run_async(main))
    raise SystemExit(code or (RESULT[0] if RESULT else 99))
