"""One connected client: its outbox, its control queue, and the loop that sends both.

Protocol-independent. A protocol (protocols/) subclasses `Session` and says how to answer a
client message (`handle_text`, `handle_binary`), how to turn a batch of records into frames
(`encode_batch`) and how to announce topic changes (`topics_changed`).

Sending: one task per session. Control messages go first, then up to `max_batch_messages`
records from the outbox in one batch. When the connection is idle a record goes out at once;
records that arrive while a frame is being written form the next batch, so batches grow with
load and cost no latency at low load. While the transport still holds earlier bytes, a small
batch may wait up to `max_batch_delay_ms` to grow (see `_linger_s`). `websocket.send` waits
while the transport holds more than its write limit: a slow client's backlog stays in the
outbox, where the priority policy applies, and never stalls the router or the other clients.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from websockets.exceptions import ConnectionClosed

from ..wire.compression import Compression
from ..wire.frame import Record
from .outbox import BackpressureState, Outbox, OutboxLimits, OutboxOverflow

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

    from .router import Router
    from .topics import TopicInfo

log = logging.getLogger(__name__)

# A client that stops reading while it keeps sending requests cannot make this grow without end.
MAX_QUEUED_CONTROL = 1000
MAX_QUEUED_CONTROL_BYTES = 4 * 1024 * 1024
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_POLICY_VIOLATION = 1008

_session_ids = itertools.count(1)


class OutgoingFrame(NamedTuple):
    data: bytes | str  # bytes: a binary frame; str: a text frame
    raw_size: int  # size before compression
    compressed: bool


@dataclass(frozen=True)
class SessionSettings:
    max_batch_messages: int = 50
    max_batch_delay_ns: int = 5_000_000
    max_batch_bytes: int = 64 * 1024
    flush_priority: int = 2  # Priority.HIGH: such records end a linger at once
    compression: Compression = Compression.LZ4
    compression_threshold_bytes: int = 512
    default_encoding: str = "msgpack"
    outbox: OutboxLimits = field(default_factory=OutboxLimits)


class Session:
    def __init__(self, websocket: "ServerConnection", router: "Router",
                 settings: SessionSettings) -> None:
        self.id = next(_session_ids)
        self.websocket = websocket
        self.router = router
        self.settings = settings
        self.compression = settings.compression
        self.batching = True
        # Bound method: a protocol's override of backpressure_changed is the one called.
        self.outbox = Outbox(settings.outbox, on_state_change=self.backpressure_changed)
        self._control: deque[str] = deque()
        self._control_bytes = 0
        # When the frame being written was handed to the connection (None: not writing). A
        # write that never ends is a dead or frozen peer: see BridgeServer.close_stalled.
        self.send_started: float | None = None
        self._wakeup = asyncio.Event()
        self._closing = False
        self.frames_sent = 0
        self.bytes_sent = 0
        self.connected_at = time.monotonic()
        # The latest report of what the client observed (the `stats` op of the protocol).
        self.client_report: dict[str, Any] | None = None
        remote = getattr(websocket, "remote_address", None)
        self.remote = f"{remote[0]}:{remote[1]}" if remote else "?"

    # -- called by the protocol / router -------------------------------------------------------

    def enqueue(self, record: Record) -> None:
        if self._closing:
            return
        try:
            self.outbox.push(record)
        except OutboxOverflow as exc:
            log.warning("client %s: %s; disconnecting it (close code %d)", self.remote, exc,
                        CLOSE_TRY_AGAIN_LATER)
            self.router.metrics.overflow_disconnects += 1
            self.close_soon(CLOSE_TRY_AGAIN_LATER, "critical backlog over cap")
            return
        self._wakeup.set()

    def send_control(self, message: dict[str, Any]) -> None:
        if self._closing:
            return
        text = json.dumps(message, separators=(",", ":"))
        if (len(self._control) >= MAX_QUEUED_CONTROL
                or self._control_bytes + len(text) > MAX_QUEUED_CONTROL_BYTES):
            self.close_soon(CLOSE_POLICY_VIOLATION, "too many unanswered requests")
            return
        self._control.append(text)
        self._control_bytes += len(text)
        self._wakeup.set()

    def close_soon(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        self.router.remove_session(self)
        asyncio.get_running_loop().create_task(self.websocket.close(code, reason))

    # -- for protocols to implement ------------------------------------------------------------

    async def start(self) -> None:
        """Greet the client (first frames on the connection)."""

    async def handle_text(self, text: str) -> None:
        raise NotImplementedError

    async def handle_binary(self, data: bytes) -> None:
        raise NotImplementedError

    def encode_batch(self, records: list[Record]) -> list["OutgoingFrame"]:
        raise NotImplementedError

    def topics_changed(self, added: list["TopicInfo"], changed: list["TopicInfo"],
                       removed: list["TopicInfo"]) -> None:
        pass

    def backpressure_changed(self, old: BackpressureState, new: BackpressureState) -> None:
        pass

    # -- the connection's life -----------------------------------------------------------------

    async def run(self) -> None:
        self.router.add_session(self)
        sender = asyncio.get_running_loop().create_task(self._send_loop())
        try:
            await self.start()
            async for message in self.websocket:
                if isinstance(message, str):
                    await self.handle_text(message)
                else:
                    await self.handle_binary(message)
        except ConnectionClosed:
            pass
        finally:
            self._closing = True
            self.router.remove_session(self)
            sender.cancel()
            try:
                await sender
            except (asyncio.CancelledError, ConnectionClosed):
                pass

    async def _send_loop(self) -> None:
        ws = self.websocket
        outbox = self.outbox
        control = self._control
        metrics = self.router.metrics
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while control or len(outbox):
                while control:
                    text = control.popleft()
                    self._control_bytes -= len(text)
                    self.send_started = time.monotonic()
                    await ws.send(text)
                    self.send_started = None
                if len(outbox):
                    limit = self.settings.max_batch_messages if self.batching else 1
                    linger_s = self._linger_s(limit)
                    if linger_s > 0:
                        self._wakeup.clear()
                        try:
                            await asyncio.wait_for(self._wakeup.wait(), linger_s)
                        except asyncio.TimeoutError:
                            pass
                        continue
                    records = outbox.pop_batch(limit, self.settings.max_batch_bytes)
                    frames = self.encode_batch(records)
                    raw = wire = compressed = 0
                    self.send_started = time.monotonic()
                    for frame in frames:
                        await ws.send(frame.data)
                        raw += frame.raw_size
                        wire += len(frame.data)
                        compressed += frame.compressed
                    self.send_started = None
                    self.frames_sent += len(frames)
                    self.bytes_sent += wire
                    metrics.record_batch(records, len(frames), raw, wire, compressed,
                                         time.time_ns())

    def _linger_s(self, limit: int) -> float:
        """How long to let the batch grow before sending it; 0 = send now.

        Only while the transport still holds bytes of earlier frames: a frame sent now would
        just wait behind them, so waiting (at most `max_batch_delay_ms` after the oldest
        record's arrival) costs no latency and gives a bigger, better compressed frame. An idle
        connection, a full batch, or a record at `flush_priority` or above: send now.
        """
        settings = self.settings
        transport = self.websocket.transport
        # Cheapest test first: almost always the transport is empty and this returns at once.
        if transport is None or transport.get_write_buffer_size() == 0:
            return 0.0
        outbox = self.outbox
        if (not self.batching or settings.max_batch_delay_ns <= 0 or len(outbox) >= limit
                or outbox.has_at_least(settings.flush_priority)):
            return 0.0
        oldest = outbox.oldest_timestamp_ns()
        if oldest is None:
            return 0.0
        return max(0.0, (oldest + settings.max_batch_delay_ns - time.time_ns()) / 1e9)
