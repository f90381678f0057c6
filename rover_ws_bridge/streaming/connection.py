"""One connected client: the only place that awaits on its socket.

The connection shell, around a sans-I/O protocol (protocols/): it feeds the protocol the
client's messages and the bridge's events, carries out the actions it returns (send, close,
requests to the core), and runs the send loop: control messages first, then batches of data
records from the outbox (batcher.py decides when).

`websocket.send` waits while the transport holds more than its write limit: a slow client's
backlog stays in the outbox, where the priority policy applies, and never stalls the router
or the other clients. On a TCP socket the loop also keeps what the kernel and the transport
hold to what the link delivers in `link.queue_target_s` (link.py), bounds frames to that
budget, and sheds from the outbox what is stale or too large for the link (outbox.py), all
from the link estimate; CRITICAL records pass the budget (they are small, and must not wait).
A record larger than the budget's room goes in pieces to a client that reads them (native
`chunks`), so that a CRITICAL record waits for one piece, not for a whole camera frame; a
record whose pieces are still under way when it is older than `max_record_age_s` is abandoned
(the client is told, and drops what it has of it). Once the link is measured, the topics that
do not fit it are evenly down-sampled (link.py `RateBudget`, outbox.py `set_sampling`).
"""
from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import itertools
import logging
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from ..priority import Priority
from ..protocols import base as p
from ..wire.compression import Compression
from ..wire.frame import CHUNK_HEADER_SIZE, Record
from .batcher import linger_s
from .limits import PASS, Act, Verdict
from .link import (
    BUSY_BYTES,
    MIN_BUDGET_BYTES,
    LinkEstimate,
    LinkSettings,
    RateBudget,
    read_tcp_info,
)
from .outbox import BackpressureState, Outbox, OutboxLimits, OutboxOverflow
from .policy import Client
from .ws_batch import send_messages

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
    link: LinkSettings = field(default_factory=LinkSettings)
    # LOW/NORMAL records older than this when they would leave are shed (0: never), and so
    # are those the link estimate needs longer than max_record_link_s to carry (0: never).
    max_record_age_s: float = 1.0
    max_record_link_s: float = 0.4
    link_rate_budget: bool = True  # evenly down-sample what does not fit (link.RateBudget)


def _local_peer(remote: Any, local: Any) -> bool:
    """A peer on this machine: loopback, or connected to one of our addresses from that same
    address."""
    return bool(remote) and (remote[0] == (local[0] if local else None)
                             or ipaddress.ip_address(remote[0].split("%")[0]).is_loopback)


def _link_settings(link: LinkSettings, local_peer: bool) -> LinkSettings:
    """No starting budget for a peer on this machine: it has no link buffer, what holds it
    up is its CPU, and a budget from a guessed rate starves a busy client (bench
    fanout_1000: p50 22 -> 668 ms); it is budgeted once measured, as any client. Nor a rate
    budget (RateBudget): down-sampling is for a link too slow for the data, and a client
    held up by its CPU is better served by the outbox's queue (it catches up)."""
    return dataclasses.replace(link, initial_rate_Bps=0.0) if local_peer else link


def abort_with_reset(transport: Any) -> None:
    """Abort a connection with a TCP reset, dropping what the kernel still holds for it.

    Why not transport.abort() alone: it closes the socket, and the kernel then sends an RST
    only if unread input is waiting; otherwise it keeps the unsent bytes of a peer that reads
    nothing (up to the socket's send buffer, MBs on loopback) as an orphan, in FIN-WAIT-1, for
    minutes of retries, and that peer is never told: kernel memory a hostile client could pin
    with every connection we "closed". SO_LINGER with a zero timeout makes close() reset.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass  # already closed: nothing left to drop
    transport.abort()


class _InPieces:
    """A record being sent in pieces, and how many bytes of its data have gone."""

    __slots__ = ("record", "sent")

    def __init__(self, record: Record) -> None:
        self.record = record
        self.sent = 0


# How long the send loop sleeps at most while the link drains its budget: a new CRITICAL
# record wakes it at once, so this only bounds how stale the link sample can get.
MAX_DRAIN_WAIT_S = 0.05


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
            sim_clock=lambda: core.sim_clock,
            link_report=self.link_report)
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
        # The link estimate of a TCP client (None: a Unix socket, a test's fake transport).
        transport = websocket.transport
        extra_info = getattr(transport, "get_extra_info", None)
        self._socket = extra_info("socket") if extra_info is not None else None
        self._held_by_link = False  # the last batch waited for the link's budget
        # Records under way in pieces, the highest priority last: a record of a higher
        # priority may start (in pieces too) while one of a lower priority is under way, so
        # at most one per priority below CRITICAL. Memory: those records, which have left
        # the outbox (the pieces are slices of them).
        self._pieces: list[_InPieces] = []
        local_peer = self._local_peer = _local_peer(remote,
                                                    getattr(websocket, "local_address", None))
        self.link = LinkEstimate(_link_settings(settings.link, local_peer)) \
            if self._socket is not None and self._socket.type == socket.SOCK_STREAM \
            and self._socket.family in (socket.AF_INET, socket.AF_INET6) else None
        self.rate_budget = RateBudget() \
            if self.link is not None and settings.link_rate_budget and not local_peer else None
        self.pieces_abandoned = 0
        # The rate budget's period: when it began and bytes acked then (_update_rate_budget).
        self._period_start: tuple[float, int] | None = None

    def link_stats(self) -> dict[str, Any]:
        """The link estimate and the bytes queued at each stage, for the HTTP API and
        /metrics (empty without an estimate)."""
        if self.link is None:
            return {}
        sample = read_tcp_info(self._socket) if self._socket is not None else None
        return {**self.link.stats(),
                # A lower bound of the bandwidth where the estimate has none (a link that was
                # never the bottleneck, e.g. loopback): the kernel's latest sample, which an
                # application-limited sender keeps below what the path could carry.
                "delivery_rate_bytes_per_s": None if sample is None
                else sample.delivery_rate_Bps,
                "kernel_queued_bytes": None if sample is None else sample.kernel_queued_bytes,
                "outbox_bytes": self.outbox.queued_bytes + self.outbox.critical_bytes,
                "shed_for_link": self.outbox.shed_for_link,
                "sampled": self.outbox.totals.sampled,
                "pieces_abandoned": self.pieces_abandoned,
                **(self.rate_budget.stats() if self.rate_budget is not None else {})}

    def link_report(self) -> dict[str, Any]:
        """What the native `link` op answers: this connection's own figures (the dashboard's
        header), at the cost of one TCP_INFO read and this client's topics."""
        return {"link": self.link_stats() or None,
                "topics": self.core.client_topic_rates(self.id)}

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
            elif kind is p.LimitTopicQueue:
                self.outbox.set_topic_limit(action.topic_id, action.max_records)
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
        asyncio.get_running_loop().call_later(2.0, abort_with_reset, transport)
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

    def _link_budget(self, transport_bytes: int) -> int | None:
        """Bytes the next batch may add to what the kernel and the transport hold (negative:
        over budget by that much; None: no bound). Reads TCP_INFO when due (link.py)."""
        link = self.link
        assert link is not None and self._socket is not None
        now = time.monotonic()
        if link.due(now):
            sample = read_tcp_info(self._socket)
            if sample is not None:
                # The link sets the pace only while data waits for it: unsent in the kernel or
                # the transport, held back in the outbox by the budget, or in flight while the
                # kernel says its sender is not application-limited (never on loopback), or
                # (records wait here: this is called only then) the kernel of a remote peer
                # still holding what we gave it: pieces cut to the room fill it exactly, so
                # "held" alone missed every 2 Mbit/s link of the bench (never measured). Not
                # for a peer on this machine: no link buffer there, and measured it got a
                # budget from its CPU's pace (as _link_settings says).
                link.update(now, sample, backlogged=sample.notsent_bytes > 0
                            or transport_bytes > 0 or self._held_by_link
                            or (not self._local_peer
                                and sample.kernel_queued_bytes >= BUSY_BYTES)
                            or (not sample.app_limited
                                and sample.kernel_queued_bytes > MIN_BUDGET_BYTES))
        rates = self.rate_budget
        if rates is not None and now >= rates.next_at and link.saturated_Bps is not None:
            self._update_rate_budget(now, rates, link)
        budget = link.budget_bytes()
        if budget is None or link.last is None:
            return None
        room = budget - link.last.kernel_queued_bytes - transport_bytes
        self._held_by_link = room < 0
        if room < 0 and self.outbox.has_at_least(Priority.CRITICAL):
            return 1  # CRITICAL goes now, alone (see _pop_for_link)
        return room

    def _update_rate_budget(self, now: float, rates: RateBudget, link: LinkEstimate) -> None:
        """Only once the link is measured saturated (sampled to a guessed rate, or to the
        bridge's own pace on a loaded machine, a fast link would never be backlogged, so
        never measured). A sampled period at whose end the kernel had drained says the link
        carries at least what it carried in it (how the budget's probes raise the estimate:
        link.py)."""
        last = link.last
        acked = last.bytes_acked if last is not None else 0
        start = self._period_start
        if start is not None and rates.intervals_ns and now > start[0] and last is not None \
                and last.kernel_queued_bytes < BUSY_BYTES:
            # The link took all it was given (the kernel holds next to nothing): it carries
            # at least that much. Not over capacity, so no saved-up burst (tbf's bucket) in it.
            before = link.saturated_Bps or 0.0
            link.at_least(now, (acked - start[1]) / (now - start[0]))
            rates.raised = (link.saturated_Bps or 0.0) > before
        self._period_start = (now, acked)
        self.outbox.set_sampling(rates.update(now, link.rate_Bps, self.outbox.counts))

    def _pop_for_link(self, limit: int, room: int, min_priority: int) -> list[Record]:
        """A batch that fits the link's room, after shedding what the link cannot carry in
        time (stale, or too large for it)."""
        settings = self.settings
        link = self.link
        assert link is not None
        bandwidth = link.rate_Bps
        now_ns = time.time_ns()
        max_age = settings.max_record_age_s
        return self.outbox.pop_batch(
            limit, min(settings.max_batch_bytes, room),
            stale_ns=now_ns - int(max_age * 1e9) if max_age > 0 else None,
            max_sheddable_bytes=int(bandwidth * settings.max_record_link_s)
            if settings.max_record_link_s > 0 else None,
            min_priority=min_priority, cuttable=self.protocol.chunkable)

    def _next_frames(self, limit: int, room: int | None
                     ) -> tuple[list[Record], list[p.OutgoingFrame]]:
        """The next frames to send and the records they complete: the next piece of the
        record under way, unless the outbox holds records of a higher priority, which go
        first (room None: no link budget, whole records)."""
        pieces = self._pieces
        outbox = self.outbox
        if pieces and not outbox.has_at_least(pieces[-1].record.priority + 1):
            if self._stale(pieces[-1].record):
                self._abandon(pieces.pop())
                return [], []
            return self._next_piece(room)
        min_priority = pieces[-1].record.priority + 1 if pieces else Priority.LOW
        if room is None:
            records = outbox.pop_batch(limit, self.settings.max_batch_bytes,
                                       min_priority=min_priority)
        else:
            records = self._pop_for_link(limit, room, min_priority)
        # A record larger than the room comes alone (pop_batch): cut it if the client can
        # read pieces. CRITICAL never: it passes the budget whole.
        if room is not None and len(records) == 1 \
                and records[0].priority < Priority.CRITICAL \
                and records[0].wire_size > max(room, MIN_BUDGET_BYTES) \
                and self.protocol.chunkable(records[0]):
            if records[0].priority <= Priority.NORMAL and outbox.has_newer(records[0]):
                # Newest first: not worth a pass through a link this slow when a newer one
                # of its topic waits (a backlog of camera frames otherwise started each at
                # the edge of the age bound, and abandoned each: none arrived at all).
                outbox.abandoned(records[0])
                return [], []
            pieces.append(_InPieces(records[0]))
            return self._next_piece(room)
        frames = self.protocol.encode_batch(records) if records else []
        if self.rate_budget is not None and frames:
            self.rate_budget.sent(outbox.last_batch_bytes, sum(len(f.data) for f in frames))
        return records, frames

    def _stale(self, record: Record) -> bool:
        """Whether the rest of a record under way in pieces is not worth sending any more:
        older than max_record_age_s, as the outbox sheds (a HIGH record only when a newer
        one of its topic is queued)."""
        max_age = self.settings.max_record_age_s
        if max_age <= 0 or record.timestamp_ns >= time.time_ns() - int(max_age * 1e9):
            return False
        return record.priority <= Priority.NORMAL or self.outbox.has_newer(record)

    def _abandon(self, under_way: _InPieces) -> None:
        """Stop sending a record in pieces, and tell the client (it drops what it has of
        it: docs/PROTOCOL.md, chunk frames)."""
        self.pieces_abandoned += 1
        self.outbox.abandoned(under_way.record)
        if under_way.sent:
            self.perform(self.protocol.on_pieces_abandoned(under_way.record, under_way.sent))

    def _next_piece(self, room: int | None) -> tuple[list[Record], list[p.OutgoingFrame]]:
        """One piece of the record under way, as large as the room (at least a few
        segments); the record once its last piece goes."""
        under_way = self._pieces[-1]
        record = under_way.record
        left = len(record.data) - under_way.sent
        size = left if room is None else min(left, max(room, MIN_BUDGET_BYTES)
                                             - CHUNK_HEADER_SIZE)
        frame = self.protocol.encode_chunk(record, under_way.sent, size)
        under_way.sent += size
        if self.rate_budget is not None:
            piece = [0, 0, 0, 0]
            piece[record.priority] = size
            self.rate_budget.sent(piece, len(frame.data))
        if under_way.sent < len(record.data):
            return [], [frame]
        self._pieces.pop()
        return [record], [frame]

    async def _send_loop(self) -> None:
        ws = self.websocket
        outbox = self.outbox
        control = self._control
        metrics = self.router.metrics
        settings = self.settings
        link = self.link
        while True:
            if link is not None:
                link.idle(keep_if_busy=not self._local_peer)
            await self._wakeup.wait()
            self._wakeup.clear()
            while control or len(outbox) or self._pieces:
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
                if len(outbox) or self._pieces:
                    limit = settings.max_batch_messages if self.batching else 1
                    transport = ws.transport
                    # Cheapest test first: almost always the transport is empty.
                    buffered = transport.get_write_buffer_size() if transport is not None else 0
                    budget = self._link_budget(buffered) if self.link is not None else None
                    if budget is not None and budget < 0:
                        # The link holds its budget: wait for it to drain (or for CRITICAL).
                        # A peer that never drains is a stalled write: close_stalled sees it.
                        if self.send_started is None:
                            self.send_started = time.monotonic()
                        self._wakeup.clear()
                        try:
                            await asyncio.wait_for(self._wakeup.wait(), min(
                                MAX_DRAIN_WAIT_S, self.link.seconds_to_drain(-budget)))
                        except asyncio.TimeoutError:
                            pass
                        continue
                    if buffered and not self._pieces:
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
                    records, frames = self._next_frames(limit, budget)
                    if not frames:
                        continue
                    raw = wire = compressed = 0
                    for frame in frames:
                        raw += frame.raw_size
                        wire += len(frame.data)
                        compressed += frame.compressed
                    self.send_started = time.monotonic()
                    self.sending_bytes = wire
                    if len(frames) == 1:
                        await ws.send(frames[0].data)
                    elif frames:
                        # One message per record (Foxglove, rosbridge): one write for them all.
                        await send_messages(ws, [frame.data for frame in frames])
                    self.send_started = None
                    self.sending_bytes = 0
                    self.frames_sent += len(frames)
                    self.bytes_sent += wire
                    metrics.record_batch(records, len(frames), raw, wire, compressed,
                                         time.time_ns())
