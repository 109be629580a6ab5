"""The control relay on real Unix sockets: every byte both ways, with back-pressure."""

import asyncio
import os
import tempfile

from component_manager.api.relay import ControlRelay


async def _echo_server(path: str) -> asyncio.AbstractServer:
    async def echo(reader, writer):
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
        writer.close()

    return await asyncio.start_unix_server(echo, path=path)


def test_relay_carries_large_payloads_both_ways_intact():
    payload = os.urandom(8 << 20)  # larger than every socket buffer on the way

    async def body():
        folder = tempfile.mkdtemp(prefix="cm-relay-")
        server = await _echo_server(f"{folder}/server.sock")
        relay = ControlRelay(f"{folder}/relay.sock", f"{folder}/server.sock", lambda: ())
        await relay.start()
        try:
            reader, writer = await asyncio.open_unix_connection(f"{folder}/relay.sock")

            async def send():
                writer.write(payload)
                await writer.drain()
                writer.write_eof()

            sending = asyncio.ensure_future(send())
            received = await reader.read(-1)  # until the server's EOF comes back through
            await sending
            assert received == payload
            writer.close()
            assert relay.refused == 0
        finally:
            await relay.stop()
            server.close()

    asyncio.run(asyncio.wait_for(body(), 60))
