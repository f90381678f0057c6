"""The send loop of the connection shell against a fake websocket: batching, linger,
priorities (the decision itself is tested without a loop in test_batcher.py)."""
from __future__ import annotations

import asyncio
import time

from rover_ws_bridge.config import BridgeConfig
from rover_ws_bridge.priority import Priority
from rover_ws_bridge.protocols.native import NativeProtocol
from rover_ws_bridge.streaming.commands import CommandQueue
from rover_ws_bridge.streaming.connection import Connection, SessionSettings
from rover_ws_bridge.streaming.core import BridgeCore
from rover_ws_bridge.streaming.policy import Policy
from rover_ws_bridge.streaming.router import Router
from rover_ws_bridge.wire.frame import Record, decode_frame


class FakeTransport:
    def __init__(self) -> None:
        self.buffered = 0

    def get_write_buffer_size(self) -> int:
        return self.buffered


class FakeConnection:
    remote_address = ("127.0.0.1", 5555)
    subprotocol = "rover-ws-bridge.v1"

    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.sent: list = []

    async def send(self, data) -> None:
        self.sent.append(data)

    async def close(self, code=1000, reason="") -> None:
        pass


class FakeRos:
    def set_wanted(self, names):
        pass

    def decoder_for(self, type_name):
        return lambda cdr: {}


def _record(seq: int, priority: Priority = Priority.NORMAL) -> Record:
    return Record(time.time_ns(), 1, seq, int(priority), 0, b"x" * 20)


def run_send_loop(scenario, **settings):
    async def main():
        connection = FakeConnection()
        config = BridgeConfig()
        core = BridgeCore(Router(FakeRos()), Policy(config), CommandQueue(10, lambda: None),
                          config)
        session = Connection(connection, NativeProtocol, core, SessionSettings(**settings))
        sender = asyncio.get_running_loop().create_task(session._send_loop())
        try:
            await scenario(session, connection)
        finally:
            sender.cancel()
        return [decode_frame(f) for f in connection.sent if isinstance(f, bytes)]
    return asyncio.run(main())


def test_idle_connection_sends_each_record_at_once():
    async def scenario(session, connection):
        for seq in range(3):
            session.enqueue(_record(seq))
            await asyncio.sleep(0.01)

    frames = run_send_loop(scenario)
    assert [len(f.records) for f in frames] == [1, 1, 1]


def test_busy_transport_lets_a_batch_grow_up_to_the_delay():
    async def scenario(session, connection):
        connection.transport.buffered = 10_000  # earlier frames still in the transport
        for seq in range(5):
            session.enqueue(_record(seq))
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.1)

    frames = run_send_loop(scenario, max_batch_delay_ns=50_000_000)
    assert sum(len(f.records) for f in frames) == 5
    assert len(frames) < 5  # grouped while the transport was busy


def test_high_priority_record_ends_the_linger():
    async def scenario(session, connection):
        connection.transport.buffered = 10_000
        session.enqueue(_record(1))
        await asyncio.sleep(0.01)
        assert not connection.sent or all(isinstance(f, str) for f in connection.sent)
        session.enqueue(_record(2, Priority.HIGH))
        await asyncio.sleep(0.01)

    frames = run_send_loop(scenario, max_batch_delay_ns=5_000_000_000)
    records = [r for f in frames for r in f.records]
    assert [r.sequence for r in records] == [2, 1]  # HIGH first, both sent without waiting 5 s


def test_batches_are_capped_and_batching_can_be_turned_off():
    async def fill(session, connection):
        for seq in range(120):
            session.outbox.push(_record(seq))
        session._wakeup.set()
        await asyncio.sleep(0.05)

    assert [len(f.records) for f in run_send_loop(fill, max_batch_messages=50)] == [50, 50, 20]

    async def unbatched(session, connection):
        session.batching = False
        await fill(session, connection)

    assert {len(f.records) for f in run_send_loop(unbatched)} == {1}
