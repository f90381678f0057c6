"""What each component counts, read into frozen values in one place.

The core and DeliveryMetrics have their own `stats()`, the server its `stats` counters. The
router, the handoff and the connections with their outboxes have none yet, and their modules
are maintained apart: the readers below are the one place that knows their fields. When such a
component grows its own `stats()`, its reader here becomes that call.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from ..streaming.connection import Connection
    from ..streaming.handoff import Handoff
    from ..streaming.outbox import Outbox
    from ..streaming.router import Router
    from ..streaming.server import BridgeServer, ServerStats
    from ..streaming.topics import TopicInfo


@dataclass(frozen=True)
class HandoffStats:
    dropped: int  # non-CRITICAL messages refused at the ROS -> asyncio door (it was full)


def handoff_stats(handoff: "Handoff | None") -> HandoffStats:
    return HandoffStats(handoff.dropped if handoff is not None else 0)


@dataclass(frozen=True)
class RouterStats:
    topics: tuple["TopicInfo", ...]  # offered now
    received: int
    received_by_topic: Mapping[str, int]  # by name, withdrawn topics included
    ros_subscribed: frozenset[str]  # the ROS subscriptions that exist now

    def topic_label(self, topic_id: int) -> str:
        """A topic's name by id, or the id of one withdrawn since."""
        for info in self.topics:
            if info.id == topic_id:
                return info.name
        return str(topic_id)


def router_stats(router: "Router") -> RouterStats:
    return RouterStats(tuple(router.topics()), router.received, dict(router.received_by_topic),
                       frozenset(router.ros_subscribed))


def server_stats(server: "BridgeServer") -> "ServerStats":
    """A copy of the server's own counters (connections accepted, refused at the handshake,
    closed for no write progress)."""
    return dataclasses.replace(server.stats)


@dataclass(frozen=True)
class RecordCounts:
    delivered: int
    dropped: int
    conflated: int


@dataclass(frozen=True)
class OutboxStats:
    state: str
    utilization: float  # of now
    peak_utilization: float  # the worst over the last period, now included
    queued_records: int
    queued_bytes: int
    critical_bytes: int
    max_bytes: int
    pushed: int
    delivered: int
    dropped: int
    conflated: int
    by_topic: Mapping[tuple[int, int], RecordCounts]  # (topic id, priority) -> counts


def outbox_stats(outbox: "Outbox", period_peak: float) -> OutboxStats:
    t = outbox.totals
    return OutboxStats(
        outbox.state.value, outbox.utilization, max(period_peak, outbox.utilization),
        len(outbox), outbox.queued_bytes, outbox.critical_bytes, outbox.limits.max_bytes,
        t.pushed, t.delivered, t.dropped, t.conflated,
        {key: RecordCounts(c.delivered, c.dropped, c.conflated)
         for key, c in outbox.counts.items()})


@dataclass(frozen=True)
class ConnectionStats:
    id: int
    remote: str
    protocol: str
    connected_s: float
    subscriptions: tuple[str, ...]
    compression: str | None  # protocols that compress their frames say how (the native one)
    batching: bool
    frames_sent: int
    bytes_sent: int
    ping_rtt_ms: float | None
    client_report: Mapping[str, Any] | None  # the client's own figures (the native `stats` op)
    outbox: OutboxStats
    # Rate-limit standing (streaming/limits.py): penalty_level, pauses, warnings, dropped,
    # dropped_by_limit; and the bytes its transport holds now.
    penalty: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    pending_bytes: int = 0
    # The link estimate (streaming/link.py) and the bytes queued in the outbox and the kernel;
    # empty for a connection without one.
    link: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def connection_stats(connection: "Connection", router: "Router", period_peak: float,
                     now: float) -> ConnectionStats:
    c = connection
    latency = getattr(c.websocket, "latency", 0.0)
    compression = getattr(c.protocol, "compression", None)
    return ConnectionStats(
        c.id, c.remote, c.protocol_name, now - c.connected_at,
        tuple(sorted(router.subscriptions_of(c))),
        compression.name.lower() if compression is not None else None,
        c.batching, c.frames_sent, c.bytes_sent, latency * 1e3 if latency else None,
        c.client_report, outbox_stats(c.outbox, period_peak),
        _penalty(c), _pending_bytes(c), _link(c))


def _link(connection: "Connection") -> Mapping[str, Any]:
    link_stats = getattr(connection, "link_stats", None)
    return link_stats() if link_stats is not None else {}


def _penalty(connection: "Connection") -> Mapping[str, Any]:
    limits = getattr(connection, "limits", None)
    return limits.stats() if limits is not None else {}


def _pending_bytes(connection: "Connection") -> int:
    transport = getattr(connection.websocket, "transport", None)
    return transport.get_write_buffer_size() if transport is not None else 0
