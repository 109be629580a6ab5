"""The baseline provider: the same echo as ``sdk_echo`` on a plain grpc.aio server (no
interceptor, no manager), with the same imports. ``python -m benchmarks.programs.plain_echo
SOCKET_PATH READY_FD``: serves ``unix:SOCKET_PATH``, writes one byte to READY_FD once serving
(as an SDK program tells the manager), runs until SIGTERM."""

import asyncio
import os
import signal
import sys

import grpc

from component_manager import sdk  # noqa: F401  (the same imports as the SDK provider)


async def echo(request: bytes, context) -> bytes:
    return request


async def main(path: str, ready_fd: int) -> None:
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(echo)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler}),))
    server.add_insecure_port(f"unix:{path}")
    await server.start()
    os.write(ready_fd, b"r")
    os.close(ready_fd)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
