"""The bridge's view of itself: state kept from period to period, and the instant Reading.

`Telemetry.tick()` runs once a period on the asyncio thread (housekeeping, not polling): rates,
each outbox's peak fill over the period, the learned rate of each input topic, the load level
and the regression verdict. `Telemetry.read()` gathers, on demand, everything a renderer needs
into one frozen Reading; the renderers (diagnostics, prometheus, snapshot) read nothing else.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .. import __version__
from ..priority import Priority
from .delivery import DeliveryMetrics, DeliveryStats
from .histogram import LatencyHistogram
from .regression import (
    SAMPLES_PER_S,
    WARMUP_S,
    Baseline,
    LoadLevel,
    RegressionDetector,
    Verdict,
)
from .sources import (
    ConnectionStats,
    HandoffStats,
    RouterStats,
    connection_stats,
    handoff_stats,
    router_stats,
    server_stats,
)

if TYPE_CHECKING:
    from ..streaming.core import BridgeCore
    from ..streaming.handoff import Handoff
    from ..streaming.router import Router
    from ..streaming.server import BridgeServer, ServerStats


@dataclass
class RateMeter:
    """Rate of a monotonically increasing counter between two looks."""

    last_value: int = 0
    last_time: float = field(default_factory=time.monotonic)
    rate: float = 0.0

    def update(self, value: int, now: float) -> float:
        dt = now - self.last_time
        if dt > 0:
            # Never negative: a record counted delivered when it left the outbox and later
            # abandoned in pieces is taken back (Outbox.abandoned).
            self.rate = max(0, value - self.last_value) / dt
        self.last_value, self.last_time = value, now
        return self.rate


@dataclass
class _InputRate:
    meter: RateMeter = field(default_factory=RateMeter)
    expected_hz: float = 0.0


@dataclass(frozen=True)
class TopicRate:
    rate_hz: float
    # Learned: follows a rise at once and a fall over about a minute, so that a topic that
    # stops is seen as slow instead of teaching that 0 Hz is normal.
    expected_hz: float


@dataclass(frozen=True)
class Rates:
    """Over the last period."""

    received_msgs_s: float  # from ROS
    delivered_msgs_s: float  # records handed to transports, all clients: the load level's
    wire_bytes_s: float
    input_by_topic: Mapping[str, TopicRate]
    output_by_topic: Mapping[int, float]  # topic id -> records/s
    # connection id -> topic id -> records/s handed to that client's transport: against the
    # topic's input rate, what a slow link lets through of each topic.
    output_by_client: Mapping[int, Mapping[int, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class LatencyReading:
    window_s: float
    window: LatencyHistogram
    since_start: LatencyHistogram
    by_priority: Mapping[Priority, LatencyHistogram]  # window; every priority, highest first
    by_topic: Mapping[str, LatencyHistogram]  # window; topics with data in it


@dataclass(frozen=True)
class Reading:
    node_name: str
    version: str
    uptime_s: float
    time_ns: int
    target_latency_ms: float
    latency: LatencyReading
    delivery: DeliveryStats
    router: RouterStats
    connections: tuple[ConnectionStats, ...]  # by id
    handoff: HandoffStats
    server: "ServerStats"  # a copy of BridgeServer.stats
    core: Mapping[str, int]  # BridgeCore.stats(): client channels, calls, publishes, commands
    rates: Rates
    regression: Verdict | None
    regression_note: str  # why there is no verdict, when there is none


class Telemetry:
    def __init__(self, delivery: DeliveryMetrics, router: "Router", server: "BridgeServer",
                 handoff: "Handoff | None" = None, core: "BridgeCore | None" = None, *,
                 node_name: str = "rover_ws_bridge", target_latency_ms: float = 50.0,
                 baselines: Mapping[LoadLevel, Baseline] | None = None) -> None:
        self.delivery = delivery
        self.router = router
        self.server = server
        self.handoff = handoff
        self.core = core
        self.node_name = node_name
        self.target_latency_ms = target_latency_ms
        self.regression = RegressionDetector(baselines)
        self._inputs: dict[str, _InputRate] = {}
        self._outputs: dict[int, RateMeter] = {}
        self._received = RateMeter()
        self._delivered = RateMeter()
        self._wire_bytes = RateMeter()
        self._peaks: dict[int, float] = {}  # connection id -> peak outbox fill of the period
        # connection id -> topic id -> its records delivered; rebuilt each tick from the live
        # connections (memory: one meter per connected client and topic it has received).
        self._client_outputs: dict[int, dict[int, RateMeter]] = {}

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        delivery = self.delivery
        delivery.refresh_windows()
        for name, count in self.router.received_by_topic.items():
            rate = self._inputs.setdefault(name, _InputRate())
            hz = rate.meter.update(count, now)
            rate.expected_hz = max(hz, rate.expected_hz * 0.98)
        for topic_id, count in delivery.records_sent.items():
            self._outputs.setdefault(topic_id, RateMeter()).update(count, now)
        self._received.update(self.router.received, now)
        delivered = self._delivered.update(sum(delivery.records_sent.values()), now)
        self._wire_bytes.update(delivery.bytes_wire, now)
        sessions = self.server.sessions
        self._peaks = {s.id: s.outbox.take_peak_utilization() for s in sessions}
        self._client_outputs = {s.id: _client_output_rates(
            s.outbox.counts, self._client_outputs.get(s.id, {}), now) for s in sessions}
        self.regression.observe(LoadLevel.of(delivered, len(sessions)), delivery.take_samples(),
                                now, learn=delivery.uptime_s >= WARMUP_S)
        delivery.sample_every = max(1, int(delivered / SAMPLES_PER_S))

    def read(self) -> Reading:
        now = time.monotonic()
        d = self.delivery
        router = router_stats(self.router)
        by_topic = {}
        for info in router.topics:
            window = d.window_latency(topic_id=info.id)
            if window.count:
                by_topic[info.name] = window
        latency = LatencyReading(
            d.window_s, d.window_latency(), d.total_latency(),
            {p: d.window_latency(priority=int(p)) for p in sorted(Priority, reverse=True)},
            by_topic)
        connections = tuple(
            connection_stats(s, self.router, self._peaks.get(s.id, 0.0), now)
            for s in sorted(self.server.sessions, key=lambda s: s.id))
        rates = Rates(
            self._received.rate, self._delivered.rate, self._wire_bytes.rate,
            {name: TopicRate(r.meter.rate, r.expected_hz) for name, r in self._inputs.items()},
            {topic_id: meter.rate for topic_id, meter in self._outputs.items()},
            {client: {topic_id: meter.rate for topic_id, meter in meters.items()}
             for client, meters in self._client_outputs.items()})
        return Reading(
            self.node_name, __version__, d.uptime_s, time.time_ns(), self.target_latency_ms,
            latency, d.stats(), router, connections, handoff_stats(self.handoff),
            server_stats(self.server), self.core.stats() if self.core is not None else {},
            rates, self.regression.verdict, self.regression.note)

    def client_topics(self, client_id: int) -> dict[str, dict[str, float | None]]:
        """One client's topics, published vs delivered rate over the last period, as in
        /api/performance/connections, without a whole Reading (the native `link` op asks
        for its own connection's, every few seconds)."""
        published = {name: TopicRate(r.meter.rate, r.expected_hz)
                     for name, r in self._inputs.items()}
        delivered = {topic_id: meter.rate
                     for topic_id, meter in self._client_outputs.get(client_id, {}).items()}
        return topic_rates(self.router.topic_name, published, delivered)


def topic_rates(topic_name: Callable[[int], str | None], published: Mapping[str, TopicRate],
                delivered: Mapping[int, float]) -> dict[str, dict[str, float | None]]:
    """Each topic a client got records of: its rate in from ROS (published_hz) and the rate of
    its records handed to this client's connection (delivered_hz). Below published_hz:
    throttled (max_rate_hz), shed or conflated for this client."""
    out = {}
    for topic_id, rate in sorted(delivered.items()):
        name = topic_name(topic_id) or f"#{topic_id}"
        rate_in = published.get(name)
        out[name] = {"published_hz": None if rate_in is None else round(rate_in.rate_hz, 2),
                     "delivered_hz": round(rate, 2)}
    return out


def _client_output_rates(counts: Mapping[tuple[int, int], Any], meters: dict[int, RateMeter],
                         now: float) -> dict[int, RateMeter]:
    """One client's per-topic delivered rates, from its outbox's counts by (topic, priority)."""
    delivered: dict[int, int] = {}
    for (topic_id, _priority), c in counts.items():
        delivered[topic_id] = delivered.get(topic_id, 0) + c.delivered
    out = {}
    for topic_id, count in delivered.items():
        meter = meters.get(topic_id)
        if meter is None:  # first look: the rate starts at the next one
            meter = RateMeter(last_value=count, last_time=now)
        else:
            meter.update(count, now)
        out[topic_id] = meter
    return out
