"""The bridge's health as diagnostic statuses (for /diagnostics) and as /health. Pure.

Status names are "<node>: Latency", "Backpressure", "Throughput", "Clients", "Input topics":
rqt_robot_monitor and diagnostic_aggregator group them by the prefix, and the dashboard and
the tests read them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..streaming.outbox import BackpressureState
from .reading import Reading

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR"}
HEALTH = {OK: "ok", WARN: "degraded", ERROR: "failing"}

# Backpressure, by the worst outbox fill over the period: the outbox's own thresholds, where
# it starts conflating and dropping (outbox.py).
CONFLATING_AT = 0.7
DROPPING_AT = 0.9
# An input topic is slow when its rate falls under this share of its learned rate.
SLOW_TOPIC_SHARE = 0.5


@dataclass(frozen=True)
class Status:
    """One diagnostic_msgs/DiagnosticStatus, ROS-free."""

    name: str
    level: int
    message: str
    values: Mapping[str, str] = field(default_factory=dict)


def statuses(r: Reading) -> list[Status]:
    return [Status(f"{r.node_name}: {name}", level, message, values)
            for name, level, message, values in _checks(r)]


def health(r: Reading) -> dict[str, Any]:
    issues = [(name, level, message) for name, level, message, _ in _checks(r) if level > OK]
    worst = max((level for _, level, _ in issues), default=OK)
    return {"status": HEALTH[worst], "connections": len(r.connections),
            "topics": len(r.router.topics), "subscribed_topics": sorted(r.router.ros_subscribed),
            "uptime_s": round(r.uptime_s, 1),
            "issues": [{"check": name, "level": LEVEL_NAMES[level], "message": message}
                       for name, level, message in issues],
            "regression": r.regression.to_json() if r.regression else None}


def _checks(r: Reading) -> list[tuple[str, int, str, dict[str, str]]]:
    return [(name, *check(r)) for name, check in (
        ("Latency", _latency), ("Backpressure", _backpressure), ("Throughput", _throughput),
        ("Clients", _clients), ("Input topics", _input_topics))]


_Check = tuple[int, str, dict[str, str]]


def _latency(r: Reading) -> _Check:
    window = r.latency.window
    target = r.target_latency_ms
    level, message = OK, "ok" if window.count else "no data sent in the window"
    p95 = window.percentile_ns(0.95) / 1e6 if window.count else math.nan
    if window.count and p95 > target:
        level, message = WARN, f"p95 {p95:.1f} ms over the {target:g} ms target"
    verdict = r.regression
    if verdict is not None and verdict.degraded:
        level = WARN
        message = (f"latency regression at {verdict.load_level.describe()}: median "
                   f"{verdict.current_median_ns / 1e6:.3f} ms vs baseline "
                   f"{verdict.baseline.median_ns / 1e6:.3f} ms ({verdict.baseline.source})")
    summary = window.summary_ms()
    values = {f"{k}_ms": _text(summary[k]) for k in ("p50", "p95", "p99", "max")}
    values["messages_in_window"] = str(window.count)
    values["target_latency_ms"] = f"{target:g}"
    for priority, h in r.latency.by_priority.items():
        if h.count:
            values[f"{priority.name}_p95_ms"] = _text(h.summary_ms()["p95"])
    values["regression"] = (r.regression_note if verdict is None else
                            f"{'degraded' if verdict.degraded else 'ok'} at "
                            f"{verdict.load_level.describe()} (p={verdict.p_value:.3g})")
    return level, message, values


def _backpressure(r: Reading) -> _Check:
    outboxes = [c.outbox for c in r.connections]
    worst = max((o.peak_utilization for o in outboxes), default=0.0)
    level = ERROR if worst >= DROPPING_AT else WARN if worst >= CONFLATING_AT else OK
    if any(o.state == BackpressureState.DROPPING.value for o in outboxes):
        level = ERROR
    values = {"max_utilization": f"{worst:.3f}",
              "dropped": str(sum(o.dropped for o in outboxes)),
              "conflated": str(sum(o.conflated for o in outboxes)),
              "handoff_dropped": str(r.handoff.dropped),
              "overflow_disconnects": str(r.delivery.overflow_disconnects),
              "stalled_disconnects": str(r.server.stalled_disconnects)}
    for c in r.connections:
        o = c.outbox
        values[f"client {c.id} ({c.remote})"] = (
            f"{o.state} now {o.utilization:.3f} peak {o.peak_utilization:.3f} "
            f"dropped={o.dropped} conflated={o.conflated}")
    message = {OK: "ok", WARN: "client falling behind: conflating",
               ERROR: "client far behind: dropping"}[level]
    return level, message, values


def _throughput(r: Reading) -> _Check:
    ratio = r.delivery.compression_ratio
    return OK, "ok", {
        "received_msgs_s": f"{r.rates.received_msgs_s:.1f}",
        "delivered_msgs_s": f"{r.rates.delivered_msgs_s:.1f}",
        "wire_bytes_s": f"{r.rates.wire_bytes_s:.0f}",
        "frames_sent": str(r.delivery.frames_sent),
        "compression_ratio": _text(None if ratio is None else round(ratio, 4)),
    }


def _clients(r: Reading) -> _Check:
    values = {"count": str(len(r.connections)),
              "pending_disconnects": str(r.server.pending_disconnects)}
    penalised = 0
    for c in r.connections:
        if c.link:
            values[f"client {c.id} link"] = _link_text(c.link)
        level = c.penalty.get("penalty_level", "ok")
        if level == "ok" and not c.penalty.get("dropped"):
            values[f"client {c.id}"] = c.remote
            continue
        penalised += level != "ok"
        values[f"client {c.id}"] = (f"{c.remote} penalty={level} "
                                    f"dropped={c.penalty.get('dropped', 0)} "
                                    f"pauses={c.penalty.get('pauses', 0)}")
    if penalised:  # OK still: a hostile client must not make the bridge look degraded
        return OK, f"{len(r.connections)} connected, {penalised} over a rate limit", values
    return OK, f"{len(r.connections)} connected", values


def _link_text(link: Mapping[str, Any]) -> str:
    """A client's link estimate and what is queued for it (streaming/link.py), on one line."""
    bandwidth = link.get("bandwidth_bytes_per_s")
    return (f"bandwidth {_text(None if bandwidth is None else round(bandwidth / 1e3, 1))} kB/s, "
            f"RTT {_text(link.get('min_rtt_ms'))} ms, budget {_text(link.get('budget_bytes'))} B, "
            f"queued: outbox {_text(link.get('outbox_bytes'))} B, kernel "
            f"{_text(link.get('kernel_queued_bytes'))} B; shed for the link "
            f"{_text(link.get('shed_for_link'))}")


def _input_topics(r: Reading) -> _Check:
    slow = []
    values = {}
    for name, rate in sorted(r.rates.input_by_topic.items()):
        if name not in r.router.ros_subscribed:
            continue
        values[name] = f"{rate.rate_hz:.1f} Hz (expected {rate.expected_hz:.1f})"
        if rate.expected_hz >= 1.0 and rate.rate_hz < SLOW_TOPIC_SHARE * rate.expected_hz:
            slow.append(name)
    if slow:
        return WARN, f"below expected rate: {', '.join(slow)}", values
    return OK, "ok", values


def _text(value: Any) -> str:
    return "n/a" if value is None else str(value)
