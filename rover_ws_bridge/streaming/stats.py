"""What the bridge says about itself: JSON snapshots, health, Prometheus text, diagnostics.

ROS-free. Runs on the asyncio thread: `tick()` once a second (housekeeping, not polling)
updates rates, the input-topic baselines and the latency regression detector. Everything else
reads what `tick()` and the Metrics object hold.
"""
from __future__ import annotations

import math
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..metrics import Metrics, RateMeter, mann_whitney_greater
from ..priority import Priority
from .outbox import BackpressureState

if TYPE_CHECKING:
    from .handoff import Handoff
    from .router import Router
    from .server import BridgeServer

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR"}

# An input topic is "slow" when its rate falls under this share of its learned rate.
SLOW_TOPIC_SHARE = 0.5
# Regression: one-sided Mann-Whitney p-value under this, and the median at least this much
# worse than the baseline (a statistically significant but tiny change is not a regression).
REGRESSION_P_VALUE = 0.001
REGRESSION_MIN_RATIO = 1.5
BASELINE_SAMPLES = 500
MAX_BASELINE_SAMPLES = 2000


@dataclass
class DiagnosticStatusData:
    """One diagnostic_msgs/DiagnosticStatus, ROS-free."""

    name: str
    level: int
    message: str
    values: dict[str, str] = field(default_factory=dict)


@dataclass
class _TopicRate:
    meter: RateMeter = field(default_factory=RateMeter)
    baseline_hz: float = 0.0  # learned: a slowly following maximum of the observed rate


class StatsCollector:
    def __init__(self, metrics: Metrics, router: "Router", server: "BridgeServer",
                 handoff: "Handoff | None", target_latency_ms: float = 50.0,
                 node_name: str = "rover_ws_bridge",
                 baseline_samples_ms: list[float] | None = None) -> None:
        self.metrics = metrics
        self.router = router
        self.server = server
        self.handoff = handoff
        self.target_latency_ms = target_latency_ms
        self.node_name = node_name
        self.hardware_id = socket.gethostname()
        self._in_rates: dict[str, _TopicRate] = {}
        self._out_rates: dict[int, RateMeter] = {}
        self._bytes_wire_rate = RateMeter()
        self._received_rate = RateMeter()
        if baseline_samples_ms and len(baseline_samples_ms) > MAX_BASELINE_SAMPLES:
            # The test sorts both sides once a period: keep it cheap on the event loop.
            step = len(baseline_samples_ms) / MAX_BASELINE_SAMPLES
            baseline_samples_ms = [baseline_samples_ms[int(i * step)]
                                   for i in range(MAX_BASELINE_SAMPLES)]
        self.baseline_ns: list[int] | None = (
            [int(v * 1e6) for v in baseline_samples_ms] if baseline_samples_ms else None)
        self.baseline_source = "file" if self.baseline_ns else None
        self.regression: dict[str, Any] | None = None
        self._peaks: dict[int, float] = {}  # session id -> peak utilization in the last period

    # -- the 1 Hz housekeeping -----------------------------------------------------------------

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.metrics.refresh_windows()
        for name, count in self.router.received_by_topic.items():
            rate = self._in_rates.setdefault(name, _TopicRate())
            hz = rate.meter.update(count, now)
            # Follow rises at once and falls slowly (about a minute), so a topic that stops
            # is seen as slow instead of teaching the baseline that 0 Hz is normal.
            rate.baseline_hz = max(hz, rate.baseline_hz * 0.98)
        for topic_id, count in self.metrics.records_sent.items():
            self._out_rates.setdefault(topic_id, RateMeter()).update(count, now)
        self._bytes_wire_rate.update(self.metrics.bytes_wire, now)
        self._peaks = {s.id: s.outbox.take_peak_utilization() for s in self.server.sessions}
        self._received_rate.update(self.router.received, now)
        self._detect_regression()

    def _detect_regression(self) -> None:
        current = self.metrics.recent_samples(BASELINE_SAMPLES)
        if self.baseline_ns is None:
            # Learned after start-up: the first full sample set after 10 s of traffic.
            if len(current) >= BASELINE_SAMPLES and self.metrics.uptime_s > 10:
                self.baseline_ns = current
                self.baseline_source = "learned"
            return
        p = mann_whitney_greater(current, self.baseline_ns)
        cur_med = _median(current)
        base_med = _median(self.baseline_ns)
        degraded = (p < REGRESSION_P_VALUE and base_med > 0
                    and cur_med >= REGRESSION_MIN_RATIO * base_med)
        self.regression = {
            "baseline": self.baseline_source, "p_value": round(p, 6),
            "current_median_ms": round(cur_med / 1e6, 3),
            "baseline_median_ms": round(base_med / 1e6, 3),
            "degraded": degraded,
        }

    # -- snapshots -----------------------------------------------------------------------------

    def latency(self) -> dict[str, Any]:
        m = self.metrics
        by_priority = {p.name: m.window_latency(priority=int(p)).summary_ms()
                       for p in sorted(Priority, reverse=True)}
        by_topic = {}
        for info in self.router.topics():
            window = m.window_latency(topic_id=info.id)
            if window.count:
                by_topic[info.name] = window.summary_ms()
        return {"window_s": m.window_s, "all": m.window_latency().summary_ms(),
                "since_start": m.total_latency().summary_ms(),
                "by_priority": by_priority, "by_topic": by_topic}

    def topics(self) -> list[dict[str, Any]]:
        out = []
        for info in self.router.topics():
            rate = self._in_rates.get(info.name)
            out_rate = self._out_rates.get(info.id)
            dropped = conflated = 0
            for session in self.server.sessions:
                counts = session.outbox.counts.get((info.id, int(info.description.priority)))
                if counts is not None:
                    dropped += counts.dropped
                    conflated += counts.conflated
            out.append({
                **info.to_json(),
                "subscribed": info.name in self.router.ros_subscribed,
                "rate_in_hz": round(rate.meter.rate, 2) if rate else 0.0,
                "expected_rate_hz": round(rate.baseline_hz, 2) if rate else 0.0,
                "rate_out_hz": round(out_rate.rate, 2) if out_rate else 0.0,
                "received": self.router.received_by_topic.get(info.name, 0),
                "sent": self.metrics.records_sent.get(info.id, 0),
                "dropped": dropped, "conflated": conflated,
            })
        return out

    def connections(self) -> list[dict[str, Any]]:
        out = []
        for s in sorted(self.server.sessions, key=lambda s: s.id):
            latency = getattr(s.websocket, "latency", 0.0)
            out.append({
                "id": s.id, "remote": s.remote, "protocol": s.protocol_name,
                "connected_s": round(time.monotonic() - s.connected_at, 1),
                "subscriptions": sorted(self.router.subscriptions_of(s)),
                # Protocols that compress their frames say how (the native one does).
                "compression": _compression_of(s.protocol), "batching": s.batching,
                "frames_sent": s.frames_sent, "bytes_sent": s.bytes_sent,
                "ping_rtt_ms": round(latency * 1e3, 3) if latency else None,
                "client_report": s.client_report,
                "backpressure": self._backpressure_of(s),
            })
        return out

    def _backpressure_of(self, s: Any) -> dict[str, Any]:
        o = s.outbox
        by_priority: dict[str, dict[str, int]] = {}
        for (_topic, priority), c in o.counts.items():
            slot = by_priority.setdefault(Priority(priority).name,
                                          {"dropped": 0, "conflated": 0, "delivered": 0})
            slot["dropped"] += c.dropped
            slot["conflated"] += c.conflated
            slot["delivered"] += c.delivered
        peak = max(self._peaks.get(s.id, 0.0), o.utilization)
        return {"state": o.state.value, "utilization": round(o.utilization, 4),
                "peak_utilization": round(peak, 4),
                "queued_records": len(o), "queued_bytes": o.queued_bytes,
                "critical_bytes": o.critical_bytes, "max_bytes": o.limits.max_bytes,
                "pushed": o.totals.pushed, "delivered": o.totals.delivered,
                "dropped": o.totals.dropped, "conflated": o.totals.conflated,
                "by_priority": by_priority}

    def backpressure(self) -> dict[str, Any]:
        clients = [{"id": s.id, "remote": s.remote, **self._backpressure_of(s)}
                   for s in sorted(self.server.sessions, key=lambda s: s.id)]
        return {
            # Worst fill over the last statistics period, not the fill of this instant.
            "max_utilization": max((c["peak_utilization"] for c in clients), default=0.0),
            "dropped": sum(c["dropped"] for c in clients),
            "conflated": sum(c["conflated"] for c in clients),
            "handoff_dropped": self.handoff.dropped if self.handoff else 0,
            "overflow_disconnects": self.metrics.overflow_disconnects,
            "clients": clients,
        }

    def snapshot(self) -> dict[str, Any]:
        m = self.metrics
        return {
            "server": self.node_name, "version": __version__,
            "uptime_s": round(m.uptime_s, 1), "time_ns": time.time_ns(),
            "latency_ms": self.latency(),
            "throughput": {
                "received_msgs_s": round(self._received_rate.rate, 1),
                "received": self.router.received,
                "frames_sent": m.frames_sent, "frames_compressed": m.frames_compressed,
                "bytes_raw": m.bytes_raw, "bytes_wire": m.bytes_wire,
                "wire_bytes_s": round(self._bytes_wire_rate.rate, 1),
                "compression_ratio": _round(m.compression_ratio, 4),
            },
            "topics": self.topics(),
            "clients": len(self.server.sessions),
            "backpressure": {k: v for k, v in self.backpressure().items() if k != "clients"},
            "regression": self.regression,
        }

    # -- health and diagnostics ----------------------------------------------------------------

    def diagnostics(self) -> list[DiagnosticStatusData]:
        prefix = f"{self.node_name}: "
        window = self.metrics.window_latency()
        p95 = window.percentile_ns(0.95) / 1e6 if window.count else math.nan
        statuses = []

        level, message = OK, "no data sent in the window" if not window.count else "ok"
        if window.count and p95 > self.target_latency_ms:
            level, message = WARN, f"p95 {p95:.1f} ms over the {self.target_latency_ms:g} ms target"
        if self.regression and self.regression["degraded"]:
            level = max(level, WARN)
            message = (f"latency regression: median {self.regression['current_median_ms']} ms vs "
                       f"baseline {self.regression['baseline_median_ms']} ms")
        summary = window.summary_ms()
        values = {f"{k}_ms": _text(summary[k]) for k in ("p50", "p95", "p99", "max")}
        values["messages_in_window"] = str(window.count)
        values["target_latency_ms"] = f"{self.target_latency_ms:g}"
        for p in sorted(Priority, reverse=True):
            h = self.metrics.window_latency(priority=int(p))
            if h.count:
                values[f"{p.name}_p95_ms"] = _text(h.summary_ms()["p95"])
        statuses.append(DiagnosticStatusData(prefix + "Latency", level, message, values))

        bp = self.backpressure()
        utilization = bp["max_utilization"]
        level = ERROR if utilization >= 0.9 else WARN if utilization >= 0.7 else OK
        if any(c["state"] == BackpressureState.DROPPING.value for c in bp["clients"]):
            level = ERROR
        values = {"max_utilization": f"{utilization:.3f}", "dropped": str(bp["dropped"]),
                  "conflated": str(bp["conflated"]), "handoff_dropped": str(bp["handoff_dropped"]),
                  "overflow_disconnects": str(bp["overflow_disconnects"])}
        for c in bp["clients"]:
            values[f"client {c['id']} ({c['remote']})"] = (
                f"{c['state']} now {c['utilization']:.3f} peak {c['peak_utilization']:.3f} "
                f"dropped={c['dropped']} "
                f"conflated={c['conflated']}")
        statuses.append(DiagnosticStatusData(
            prefix + "Backpressure", level,
            {OK: "ok", WARN: "client falling behind: conflating",
             ERROR: "client far behind: dropping"}[level], values))

        m = self.metrics
        statuses.append(DiagnosticStatusData(prefix + "Throughput", OK, "ok", {
            "received_msgs_s": f"{self._received_rate.rate:.1f}",
            "wire_bytes_s": f"{self._bytes_wire_rate.rate:.0f}",
            "frames_sent": str(m.frames_sent),
            "compression_ratio": _text(_round(m.compression_ratio, 4)),
        }))

        sessions = sorted(self.server.sessions, key=lambda s: s.id)
        statuses.append(DiagnosticStatusData(
            prefix + "Clients", OK, f"{len(sessions)} connected",
            {"count": str(len(sessions)),
             **{f"client {s.id}": s.remote for s in sessions}}))

        slow = []
        values = {}
        subscribed = self.router.ros_subscribed
        for name, rate in sorted(self._in_rates.items()):
            if name not in subscribed:
                continue
            values[name] = f"{rate.meter.rate:.1f} Hz (expected {rate.baseline_hz:.1f})"
            if rate.baseline_hz >= 1.0 and rate.meter.rate < SLOW_TOPIC_SHARE * rate.baseline_hz:
                slow.append(name)
        statuses.append(DiagnosticStatusData(
            prefix + "Input topics", WARN if slow else OK,
            f"below expected rate: {', '.join(slow)}" if slow else "ok", values))
        return statuses

    def health(self) -> dict[str, Any]:
        issues = []
        worst = OK
        for status in self.diagnostics():
            if status.level > OK:
                issues.append({"check": status.name.split(": ", 1)[-1],
                               "level": LEVEL_NAMES[status.level], "message": status.message})
                worst = max(worst, status.level)
        return {"status": {OK: "ok", WARN: "degraded", ERROR: "failing"}[worst],
                "connections": len(self.server.sessions),
                "topics": len(self.router.topics()),
                "subscribed_topics": sorted(self.router.ros_subscribed),
                "uptime_s": round(self.metrics.uptime_s, 1),
                "issues": issues, "regression": self.regression}

    def _topic_label(self, topic_id: int) -> str:
        return self.router.topic_name(topic_id) or str(topic_id)

    def prometheus(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str,
                   samples: list[tuple[dict[str, str], float]]) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                lines.append(f"{name}{{{label_text}}} {_num(value)}" if label_text
                             else f"{name} {_num(value)}")

        m = self.metrics
        metric("rover_ws_bridge_uptime_seconds", "gauge", "Seconds since the bridge started.",
               [({}, m.uptime_s)])
        metric("rover_ws_bridge_clients", "gauge", "Connected WebSocket clients.",
               [({}, len(self.server.sessions))])
        metric("rover_ws_bridge_messages_received_total", "counter",
               "Messages received from ROS, by topic.",
               [({"topic": n}, c) for n, c in sorted(self.router.received_by_topic.items())])
        metric("rover_ws_bridge_records_sent_total", "counter",
               "Records handed to client transports, by topic.",
               [({"topic": self._topic_label(t)}, c) for t, c in sorted(m.records_sent.items())])
        metric("rover_ws_bridge_frames_sent_total", "counter", "Frames sent.",
               [({}, m.frames_sent)])
        metric("rover_ws_bridge_bytes_raw_total", "counter", "Frame bytes before compression.",
               [({}, m.bytes_raw)])
        metric("rover_ws_bridge_bytes_wire_total", "counter", "Frame bytes as sent.",
               [({}, m.bytes_wire)])
        quantiles = []
        for p in sorted(Priority, reverse=True):
            h = m.window_latency(priority=int(p))
            if h.count:
                for q in (0.5, 0.95, 0.99):
                    quantiles.append(({"priority": p.name, "quantile": str(q)},
                                      h.percentile_ns(q) / 1e9))
        metric("rover_ws_bridge_server_latency_seconds", "gauge",
               f"Server latency (ROS receive to transport) over the last {m.window_s:g} s.",
               quantiles)
        bp = self.backpressure()
        metric("rover_ws_bridge_outbox_utilization", "gauge", "Outbox fill, by client.",
               [({"client": str(c["id"])}, c["utilization"]) for c in bp["clients"]])
        drops = []
        for s in self.server.sessions:
            for (topic_id, priority), c in s.outbox.counts.items():
                labels = {"client": str(s.id), "topic": self._topic_label(topic_id),
                          "priority": Priority(priority).name}
                drops.append(({**labels, "reason": "dropped"}, c.dropped))
                drops.append(({**labels, "reason": "conflated"}, c.conflated))
        metric("rover_ws_bridge_outbox_discarded_total", "counter",
               "Records dropped or conflated by backpressure.", drops)
        metric("rover_ws_bridge_handoff_dropped_total", "counter",
               "Messages dropped at the ROS->asyncio handoff.",
               [({}, self.handoff.dropped if self.handoff else 0)])
        return "\n".join(lines) + "\n"


def _median(values: list[int]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[len(ordered) // 2])


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _text(value: Any) -> str:
    return "n/a" if value is None else str(value)


def _num(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return repr(float(value)) if isinstance(value, float) else str(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _compression_of(protocol: Any) -> str | None:
    compression = getattr(protocol, "compression", None)
    return compression.name.lower() if compression is not None else None
