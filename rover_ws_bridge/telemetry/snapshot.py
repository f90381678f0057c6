"""The JSON of the HTTP API (/api/performance/{metrics,connections,backpressure}). Pure."""
from __future__ import annotations

from typing import Any

from ..priority import Priority
from .reading import Reading, topic_rates
from .sources import ConnectionStats


def metrics(r: Reading) -> dict[str, Any]:
    d = r.delivery
    latency = r.latency
    ratio = d.compression_ratio
    return {
        "server": r.node_name, "version": r.version,
        "uptime_s": round(r.uptime_s, 1), "time_ns": r.time_ns,
        "latency_ms": {
            "window_s": latency.window_s, "all": latency.window.summary_ms(),
            "since_start": latency.since_start.summary_ms(),
            "by_priority": {p.name: h.summary_ms() for p, h in latency.by_priority.items()},
            "by_topic": {name: h.summary_ms() for name, h in latency.by_topic.items()}},
        "throughput": {
            "received_msgs_s": round(r.rates.received_msgs_s, 1),
            "received": r.router.received,
            "delivered_msgs_s": round(r.rates.delivered_msgs_s, 1),
            "frames_sent": d.frames_sent, "frames_compressed": d.frames_compressed,
            "bytes_raw": d.bytes_raw, "bytes_wire": d.bytes_wire,
            "wire_bytes_s": round(r.rates.wire_bytes_s, 1),
            "compression_ratio": None if ratio is None else round(ratio, 4),
        },
        "topics": topics(r),
        "clients": len(r.connections),
        "connections_total": r.server.connections_total,
        "connections_rejected": r.server.connections_rejected,
        "backpressure": _backpressure_totals(r),
        "commands": dict(r.core),
        "regression": r.regression.to_json() if r.regression else None,
    }


def topics(r: Reading) -> list[dict[str, Any]]:
    out = []
    for info in r.router.topics:
        key = (info.id, int(info.description.priority))
        dropped = conflated = 0
        for c in r.connections:
            counts = c.outbox.by_topic.get(key)
            if counts is not None:
                dropped += counts.dropped
                conflated += counts.conflated
        rate = r.rates.input_by_topic.get(info.name)
        out.append({
            **info.to_json(),
            "subscribed": info.name in r.router.ros_subscribed,
            "rate_in_hz": round(rate.rate_hz, 2) if rate else 0.0,
            "expected_rate_hz": round(rate.expected_hz, 2) if rate else 0.0,
            "rate_out_hz": round(r.rates.output_by_topic.get(info.id, 0.0), 2),
            "received": r.router.received_by_topic.get(info.name, 0),
            "sent": r.delivery.records_sent.get(info.id, 0),
            "dropped": dropped, "conflated": conflated,
        })
    return out


def masked(remote: str) -> str:
    """A client's address without the IP (the port still tells one's own connection apart)."""
    return "hidden:" + remote.rsplit(":", 1)[-1]


def connections(r: Reading, show_addresses: bool = True) -> dict[str, Any]:
    return {"connections": [{
        "id": c.id, "remote": c.remote if show_addresses else masked(c.remote),
        "protocol": c.protocol,
        "connected_s": round(c.connected_s, 1), "subscriptions": list(c.subscriptions),
        "compression": c.compression, "batching": c.batching,
        "frames_sent": c.frames_sent, "bytes_sent": c.bytes_sent,
        "ping_rtt_ms": None if c.ping_rtt_ms is None else round(c.ping_rtt_ms, 3),
        "client_report": c.client_report,
        "backpressure": _outbox(c),
        "limits": {**c.penalty, "pending_bytes": c.pending_bytes},
        "link": dict(c.link) or None,
        "topics": _client_topics(r, c.id),
    } for c in r.connections]}


def _client_topics(r: Reading, client_id: int) -> dict[str, dict[str, float | None]]:
    names = {info.id: info.name for info in r.router.topics}
    return topic_rates(names.get, r.rates.input_by_topic,
                       r.rates.output_by_client.get(client_id, {}))


def backpressure(r: Reading, show_addresses: bool = True) -> dict[str, Any]:
    return {**_backpressure_totals(r),
            "clients": [{"id": c.id,
                         "remote": c.remote if show_addresses else masked(c.remote),
                         **_outbox(c)} for c in r.connections]}


def _backpressure_totals(r: Reading) -> dict[str, Any]:
    outboxes = [c.outbox for c in r.connections]
    return {
        # The worst fill over the last statistics period, not the fill of this instant.
        "max_utilization": round(max((o.peak_utilization for o in outboxes), default=0.0), 4),
        "dropped": sum(o.dropped for o in outboxes),
        "conflated": sum(o.conflated for o in outboxes),
        "handoff_dropped": r.handoff.dropped,
        "overflow_disconnects": r.delivery.overflow_disconnects,
        "stalled_disconnects": r.server.stalled_disconnects,
        "pending_disconnects": r.server.pending_disconnects,
    }


def _outbox(c: ConnectionStats) -> dict[str, Any]:
    o = c.outbox
    by_priority: dict[str, dict[str, int]] = {}
    for (_topic, priority), counts in o.by_topic.items():
        slot = by_priority.setdefault(Priority(priority).name,
                                      {"dropped": 0, "conflated": 0, "delivered": 0})
        slot["dropped"] += counts.dropped
        slot["conflated"] += counts.conflated
        slot["delivered"] += counts.delivered
    return {"state": o.state, "utilization": round(o.utilization, 4),
            "peak_utilization": round(o.peak_utilization, 4),
            "queued_records": o.queued_records, "queued_bytes": o.queued_bytes,
            "critical_bytes": o.critical_bytes, "max_bytes": o.max_bytes,
            "pushed": o.pushed, "delivered": o.delivered,
            "dropped": o.dropped, "conflated": o.conflated,
            "by_priority": by_priority}
