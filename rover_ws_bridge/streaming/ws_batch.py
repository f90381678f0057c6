"""Several WebSocket messages in one transport write.

The Foxglove protocol has no batch frame (each record is its own MessageData message) and
rosbridge sends one publish per record: with one `websocket.send` per message, a 1000 Hz topic
to 10 clients is 10,000 send(2) calls a second, and asyncio's transport write was the largest
item of the bridge's own profile (issue 12). `send_messages` frames them all through
websockets' sans-I/O protocol and writes the bytes with one `transport.write`.

This leans on websockets' asyncio internals (16 and 17: `send_in_progress`, `send_context`,
`protocol`, `transport`); test/test_ws_batch.py fails if they change under it.
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from websockets.asyncio.connection import Connection


async def send_messages(ws: "Connection", messages: Sequence[str | bytes]) -> None:
    """Send each item as its own message (str: text, bytes: binary), in order, in one write.

    The same rules as `ws.send`: raises ConnectionClosed if the connection is not open (or
    fails meanwhile), waits for a fragmented send in progress, and waits after the write while
    the transport holds more than the write limit (the caller's backpressure). A batch is
    bounded by max_batch_bytes, so writing it whole past the limit overshoots by one batch.
    """
    # websockets' rule: nothing may come between the fragments of a message sent in parts.
    while ws.send_in_progress is not None:
        await asyncio.shield(ws.send_in_progress)
    protocol = ws.protocol
    # send_context checks the state on entry (ConnectionClosed when closing) and, on exit,
    # writes what the protocol still holds (nothing: we took it) and awaits drain().
    async with ws.send_context():
        for message in messages:
            if type(message) is str:
                protocol.send_text(message.encode())
            else:
                protocol.send_binary(message)
        # One frame serialised per message. No awaits since send_context's state check, so
        # nothing else (a pong, a close, with its end-of-stream marker) can be among them:
        # incoming data writes its answers at once, and other senders wait their turn.
        ws.transport.write(b"".join(protocol.data_to_send()))
