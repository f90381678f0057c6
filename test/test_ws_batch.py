"""streaming/ws_batch.py against a real websockets server and client: it leans on websockets'
asyncio internals, so these fail if they change under it (frames intact and in order, one
write per batch, ping and close still work, the write limit still holds a slow client)."""
from __future__ import annotations

import asyncio
import os
import socket

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from rover_ws_bridge.streaming.ws_batch import send_messages


def _messages(n: int, size: int = 100) -> list[str | bytes]:
    return [f"text {i}" if i % 3 == 0 else bytes([i % 256]) * size for i in range(n)]


def with_pair(scenario, **server_options):
    """Run scenario(server_connection, client_connection) over 127.0.0.1 (permessage-deflate
    on, websockets' default, unless server_options say otherwise)."""
    async def main():
        ready: asyncio.Future = asyncio.get_running_loop().create_future()
        done = asyncio.Event()

        async def handler(ws):
            ready.set_result(ws)
            await done.wait()

        async with serve(handler, "127.0.0.1", 0, **server_options) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}", max_size=None,
                               compression=server_options.get("compression", "deflate")
                               ) as client:
                server_ws = await asyncio.wait_for(ready, 5)
                try:
                    await asyncio.wait_for(scenario(server_ws, client), 10)
                finally:
                    done.set()
    asyncio.run(main())


def test_messages_arrive_intact_in_order_from_one_write():
    async def scenario(server_ws, client):
        transport = server_ws.transport
        writes = []
        original = transport.write

        def counting_write(data):
            writes.append(len(data))
            original(data)

        transport.write = counting_write
        try:
            sent = _messages(50)
            await send_messages(server_ws, sent)
            assert len(writes) == 1
            received = [await client.recv() for _ in sent]
            assert received == sent
        finally:
            del transport.write

    with_pair(scenario)


def test_ping_send_and_close_still_work_around_it():
    async def scenario(server_ws, client):
        await send_messages(server_ws, ["a", b"b"])
        # A ping from either side is answered (websockets writes the pong itself).
        await asyncio.wait_for(await server_ws.ping(), 5)
        pong = await client.ping()
        assert [await client.recv(), await client.recv()] == ["a", b"b"]
        await asyncio.wait_for(pong, 5)
        # websockets' own send still works after ours, in order.
        await server_ws.send("after")
        await send_messages(server_ws, [b"x", "y"])
        assert [await client.recv() for _ in range(3)] == ["after", b"x", "y"]
        await server_ws.close(1000, "bye")
        with pytest.raises(ConnectionClosed):
            await send_messages(server_ws, ["late", b"late"])
        with pytest.raises(ConnectionClosed):
            await client.recv()
        assert client.close_code == 1000

    with_pair(scenario)


def test_a_client_that_does_not_read_holds_the_send_at_the_write_limit():
    async def scenario(server_ws, client):
        # Small kernel buffers (loopback's may take tens of MiB), then the client stops reading.
        client.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        server_ws.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        client.transport.pause_reading()
        batch = [os.urandom(16 * 1024) for _ in range(64)]  # 1 MiB: past the kernel's buffers
        sent = 0
        # The kernel's buffers take what they can; then the transport holds more than the
        # write limit and send_messages waits in websockets' drain.
        while True:
            task = asyncio.ensure_future(send_messages(server_ws, batch))
            for _ in range(100):
                await asyncio.sleep(0.01)
                if task.done() or server_ws.drain_waiters:
                    break
            if not task.done():
                break
            await task
            sent += 1
            assert sent < 50, "the write limit never held the sender"
        assert server_ws.transport.get_write_buffer_size() > 2**15
        client.transport.resume_reading()
        total = (sent + 1) * len(batch)
        # Read while the held send finishes: websockets' client queue stops reading when full.
        received = [await client.recv() for _ in range(total)]
        await task
        assert received == batch * (sent + 1)

    with_pair(scenario, write_limit=2**15, compression=None)
