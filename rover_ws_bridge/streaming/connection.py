"""One connected client: the only place that awaits on its socket.

The connection shell, around a sans-I/O protocol (protocols/): it feeds the protocol the
client's messages and the bridge's events, carries out the actions it returns (send, close,
requests to the core), and runs the send loop: control messages first, then batches of data
records from the outbox (batcher.py decides when).

`websocket.send` waits while the transport holds more than its write limit: a slow client's
backlog stays in the outbox, where the priority policy applies, and never stalls the router
or the other clients.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from ..protocols import base as p
from ..wire.compression import Compression
from ..wire.frame import Record
from .batcher import linger_s
from .limits import PASS, Act, Verdict
from .outbox import BackpressureState, Outbox, OutboxLimits, OutboxOverflow
from .policy import Client

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

    from .core import BridgeCore
    from .graph import RosGraph, ServiceDescription
    from .topics import TopicInfo

log = logging.getLogger(__name__)

# A client that stops reading while it keeps sending requests cannot make this grow without
# end: past either bound it is closed. Memory: at most 4 MiB of queued control text each.
MAX_QUEUED_CONTROL = 1000
MAX_QUEUED_CONTROL_BYTES = 4 * 1024 * 1024
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_POLICY_VIOLATION = 1008

_connection_ids = itertools.count(1)


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


class Connection:
    def __init__(self, websocket: "ServerConnection", protocol_class: type[p.Protocol],
                 core: "BridgeCore", settings: SessionSettings,
                 client: Client | None = None) -> None:
        self.id = next(_connection_ids)
        self.websocket = websocket
        self.core = core
        self.router = core.router
        self.settings = settings
        self.batching = True
        remote = getattr(websocket, "remote_address", None)
        self.remote = f"{remote[0]}:{remote[1]}" if remote else "?"
        # Who the policy said this client is at the handshake (its token's role, if any).
        self.client = client if client is not None else \
            Client(address=str(remote[0]) if remote else "")
        self.outbox = Outbox(settings.outbox, on_state_change=self._backpressure_changed)
        view = p.ConnectionView(
            session_id=self.id,
            visible_topics=self._visible_topics,
            topic_name=self.router.topic_name,
            permissions=core.policy.permissions(self.client),
            frame_cache=self.router.frame_cache,
            visible_services=self._visible_services,
            graph=lambda: core.graph,
            config=core.config,
            sim_time=core.sim_time,
            sim_clock=lambda: core.sim_clock)
        self.protocol = protocol_class(view, settings)
        self.protocol_name = protocol_class.subprotocols[0] if protocol_class.subprotocols \
            else protocol_class.__name__
        self._control: deque[str | bytes] = deque()
        self._control_bytes = 0
        # When the frame being written was handed to the connection (None: not writing). A
        # write that never ends is a dead or frozen peer: see BridgeServer.close_stalled.
        self.send_started: float | None = None
        self._wakeup = asyncio.Event()
        self._closing = False
        self.frames_sent = 0
        self.bytes_sent = 0
        self.connected_at = time.monotonic()
        # The latest report of what the client observed (e.g. the native `stats` op).
        self.client_report: dict[str, Any] | None = None
        # Rate buckets and penalty ladder (the policy's; asked per message, O(1)).
        self.limits = core.policy.client_limits()
        self.paused_s = 0.0  # reading paused for rate limits, in total
        # Bytes of the frame being written (they may sit in the transport meanwhile), and
        # since when the transport holds more than that allows (see check_pending).
        self.sending_bytes = 0
        self.pending_over_since: float | None = None
        self._reading_paused = False

    def _visible_topics(self) -> list["TopicInfo"]:
        may_see = self.core.policy.may_see
        return [t for t in self.router.topics() if may_see(self.client, t.name)]

    def _visible_services(self) -> list["ServiceDescription"]:
        """The graph's services this client may call (a service it may not call is not
        offered: it could do nothing with it)."""
        may_call = self.core.policy.may_call
        return [s for s in self.core.graph.services if may_call(self.client, s.name) is None]

    # -- from the router and the core ----------------------------------------------------------

    def graph_changed(self, old: "RosGraph", new: "RosGraph") -> None:
        if not self._closing:
            self.perform(self.protocol.on_graph_changed(old, new))

    def clock_changed(self, sim_ns: int) -> None:
        if not self._closing:
            self.perform(self.protocol.on_clock(sim_ns))

    def parameters_changed(self, node: str, values: tuple) -> None:
        if not self._closing:
            self.perform(self.protocol.on_parameters_changed(node, values))

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

    def deliver(self, outcome: p.Outcome) -> None:
        """The core's answer to one of this connection's requests."""
        if not self._closing:
            self.perform(self.protocol.on_outcome(outcome))

    def topics_changed(self, added: list["TopicInfo"], changed: list["TopicInfo"],
                       removed: list["TopicInfo"]) -> None:
        may_see = self.core.policy.may_see
        added = [t for t in added if may_see(self.client, t.name)]
        changed = [t for t in changed if may_see(self.client, t.name)]
        removed = [t for t in removed if may_see(self.client, t.name)]
        if added or changed or removed:
            self.perform(self.protocol.on_topics_changed(added, changed, removed))

    def _backpressure_changed(self, old: BackpressureState, new: BackpressureState) -> None:
        totals = self.outbox.totals
        summary = {"utilization": round(self.outbox.utilization, 3),
                   "dropped": totals.dropped, "conflated": totals.conflated}
        self.perform(self.protocol.on_backpressure(old, new, summary))

    def close_soon(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        self.core.forget(self)
        asyncio.get_running_loop().create_task(self.websocket.close(code, reason))

    # -- actions -------------------------------------------------------------------------------

    def perform(self, actions: list[p.Action]) -> None:
        for action in actions:
            if self._closing:
                return
            kind = type(action)
            if kind is p.SendText:
                self._queue_control(action.text)
            elif kind is p.SendBinary:
                self._queue_control(action.data)
            elif kind is p.Close:
                self.close_soon(action.code, action.reason)
            elif kind is p.SetBatching:
                self.batching = action.enabled
            elif kind is p.StoreClientReport:
                self.client_report = action.report
            else:
                self.core.execute(self, action)

    def _queue_control(self, data: str | bytes) -> None:
        if (len(self._control) >= MAX_QUEUED_CONTROL
                or self._control_bytes + len(data) > MAX_QUEUED_CONTROL_BYTES):
            self.close_soon(CLOSE_POLICY_VIOLATION, "too many unanswered requests")
            return
        self._control.append(data)
        self._control_bytes += len(data)
        self._wakeup.set()

    # -- limits --------------------------------------------------------------------------------

    def _penalise(self, verdict: Verdict) -> Act:
        """Carry out the ladder's answer: tell, drop, or close (a pause is awaited by run)."""
        if verdict.notice is not None:
            level, message = verdict.notice
            # In the client's protocol (native: docs/PROTOCOL.md "Limits and penalties").
            self.perform(self.protocol.on_rate_limited(level, message, verdict.limit,
                                                       self.limits.stats()))
        if verdict.act is Act.CLOSE:
            log.warning("client %s: over %s after warnings, drops and pauses; closing it "
                        "(1008)", self.remote, verdict.limit)
            self.close_soon(CLOSE_POLICY_VIOLATION, f"over {verdict.limit}")
        elif verdict.act is Act.PAUSE:
            log.warning("client %s: over %s; not reading it for %g s", self.remote,
                        verdict.limit, verdict.pause_s)
        return verdict.act

    async def _pause(self, seconds: float) -> None:
        """Stop reading: the client's frames wait in websockets' small queue, then in the
        kernel, and TCP slows its sender. It cannot answer pings meanwhile: not a reason to
        close it (keepalive waits no pong during the pause)."""
        ws = self.websocket
        saved = ws.ping_timeout
        ws.ping_timeout = None
        try:
            await asyncio.sleep(seconds)
        finally:
            ws.ping_timeout = saved
            self.paused_s += seconds

    def check_pending(self, now: float, write_limit: int, bound: int, grace_s: float) -> bool:
        """The transport's buffer against what we put there: past write_limit plus the frame
        being written, the rest is frames websockets writes for us (pongs). Over `bound`: stop
        reading (no more pings read, no more pongs); over for `grace_s`: close with 1008 and
        abort (the peer reads nothing, so no close handshake). True if it was closed now."""
        transport = self.websocket.transport
        if transport is None or self._closing:
            return False
        extra = transport.get_write_buffer_size() - write_limit - self.sending_bytes
        if extra <= bound:
            if self.pending_over_since is not None:
                self.pending_over_since = None
                if self._reading_paused:
                    self._reading_paused = False
                    transport.resume_reading()
            return False
        if self.pending_over_since is None:
            self.pending_over_since = now
            if not self._reading_paused:
                self._reading_paused = True
                transport.pause_reading()
            return False
        if now - self.pending_over_since < grace_s:
            return False
        log.warning("client %s: %d bytes pending that it does not read (over max_pending_bytes "
                    "for %.1f s); closing it (1008)", self.remote, extra,
                    now - self.pending_over_since)
        self.close_soon(CLOSE_POLICY_VIOLATION, "pending bytes over max_pending_bytes")
        asyncio.get_running_loop().call_later(2.0, transport.abort)
        return True

    # -- the connection's life -----------------------------------------------------------------

    async def run(self) -> None:
        self.router.add_session(self)
        sender = asyncio.get_running_loop().create_task(self._send_loop())
        try:
            self.perform(self.protocol.on_connect())
            limits = self.limits
            protocol = self.protocol
            async for message in self.websocket:
                if self._closing:
                    continue
                now = time.monotonic()
                text = isinstance(message, str)
                verdict = limits.arrive(len(message), now, not text)
                if verdict is not PASS and self._penalise(verdict) is not Act.PASS:
                    if verdict.act is Act.PAUSE:
                        await self._pause(verdict.pause_s)
                    continue
                actions = protocol.on_text(message) if text else protocol.on_binary(message)
                if text and any(type(a) is p.Publish for a in actions):
                    verdict = limits.turned_out_publish(now)
                    if verdict is not PASS and self._penalise(verdict) is not Act.PASS:
                        if verdict.act is Act.PAUSE:
                            await self._pause(verdict.pause_s)
                        continue
                self.perform(actions)
        except ConnectionClosed:
            pass
        finally:
            self._closing = True
            self.core.forget(self)
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
        settings = self.settings
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while control or len(outbox):
                if control:
                    while control:
                        data = control.popleft()
                        self._control_bytes -= len(data)
                        self.send_started = time.monotonic()
                        self.sending_bytes = len(data)
                        await ws.send(data)
                        self.send_started = None
                        self.sending_bytes = 0
                    if not self._closing:
                        self.perform(self.protocol.on_control_drained())
                if len(outbox):
                    limit = settings.max_batch_messages if self.batching else 1
                    transport = ws.transport
                    # Cheapest test first: almost always the transport is empty.
                    buffered = transport.get_write_buffer_size() if transport is not None else 0
                    if buffered:
                        wait_s = linger_s(time.time_ns(), buffered, self.batching,
                                          settings.max_batch_delay_ns, len(outbox), limit,
                                          outbox.has_at_least(settings.flush_priority),
                                          outbox.oldest_timestamp_ns())
                        if wait_s > 0:
                            self._wakeup.clear()
                            try:
                                await asyncio.wait_for(self._wakeup.wait(), wait_s)
                            except asyncio.TimeoutError:
                                pass
                            continue
                    records = outbox.pop_batch(limit, settings.max_batch_bytes)
                    frames = self.protocol.encode_batch(records)
                    raw = wire = compressed = 0
                    self.send_started = time.monotonic()
                    for frame in frames:
                        self.sending_bytes = len(frame.data)
                        await ws.send(frame.data)
                        raw += frame.raw_size
                        wire += len(frame.data)
                        compressed += frame.compressed
                    self.send_started = None
                    self.sending_bytes = 0
                    self.frames_sent += len(frames)
                    self.bytes_sent += wire
                    metrics.record_batch(records, len(frames), raw, wire, compressed,
                                         time.time_ns())
