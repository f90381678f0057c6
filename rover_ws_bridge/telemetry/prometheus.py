"""The bridge's counters and latency as Prometheus text (exposition format 0.0.4). Pure."""
from __future__ import annotations

import math

from ..priority import Priority
from .reading import Reading

Sample = tuple[dict[str, str], float]


def render(r: Reading) -> str:
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[Sample]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{label_text}}} {_number(value)}" if label_text
                         else f"{name} {_number(value)}")

    d = r.delivery
    label = r.router.topic_label
    metric("rover_ws_bridge_uptime_seconds", "gauge", "Seconds since the bridge started.",
           [({}, r.uptime_s)])
    metric("rover_ws_bridge_clients", "gauge", "Connected WebSocket clients.",
           [({}, len(r.connections))])
    metric("rover_ws_bridge_connections_total", "counter", "WebSocket connections accepted.",
           [({}, r.server.connections_total)])
    metric("rover_ws_bridge_connections_rejected_total", "counter",
           "WebSocket handshakes refused (no protocol the bridge speaks).",
           [({}, r.server.connections_rejected)])
    metric("rover_ws_bridge_disconnects_total", "counter",
           "Clients closed by the bridge: CRITICAL backlog over its cap (overflow), or no write "
           "progress for client_send_timeout_s (stalled), over max_pending_bytes (pending).",
           [({"reason": "overflow"}, d.overflow_disconnects),
            ({"reason": "stalled"}, r.server.stalled_disconnects),
            ({"reason": "pending"}, r.server.pending_disconnects)])
    metric("rover_ws_bridge_messages_received_total", "counter",
           "Messages received from ROS, by topic.",
           [({"topic": n}, c) for n, c in sorted(r.router.received_by_topic.items())])
    metric("rover_ws_bridge_records_sent_total", "counter",
           "Records handed to client transports, by topic.",
           [({"topic": label(t)}, c) for t, c in sorted(d.records_sent.items())])
    metric("rover_ws_bridge_frames_sent_total", "counter", "Frames sent.",
           [({}, d.frames_sent)])
    metric("rover_ws_bridge_bytes_raw_total", "counter", "Frame bytes before compression.",
           [({}, d.bytes_raw)])
    metric("rover_ws_bridge_bytes_wire_total", "counter", "Frame bytes as sent.",
           [({}, d.bytes_wire)])
    quantiles = [({"priority": p.name, "quantile": str(q)}, h.percentile_ns(q) / 1e9)
                 for p, h in r.latency.by_priority.items() if h.count for q in (0.5, 0.95, 0.99)]
    metric("rover_ws_bridge_server_latency_seconds", "gauge",
           f"Server latency (ROS receive to transport) over the last {r.latency.window_s:g} s.",
           quantiles)
    metric("rover_ws_bridge_outbox_utilization", "gauge", "Outbox fill, by client.",
           [({"client": str(c.id)}, c.outbox.utilization) for c in r.connections])
    discarded = []
    for c in r.connections:
        for (topic_id, priority), counts in c.outbox.by_topic.items():
            labels = {"client": str(c.id), "topic": label(topic_id),
                      "priority": Priority(priority).name}
            discarded.append(({**labels, "reason": "dropped"}, counts.dropped))
            discarded.append(({**labels, "reason": "conflated"}, counts.conflated))
    metric("rover_ws_bridge_outbox_discarded_total", "counter",
           "Records dropped or conflated by backpressure.", discarded)
    levels = ("ok", "warned", "dropping", "paused", "closed")
    metric("rover_ws_bridge_client_penalty_level", "gauge",
           "Rate-limit penalty of each client: 0 ok, 1 warned, 2 dropping, 3 paused, 4 closed.",
           [({"client": str(c.id)}, levels.index(c.penalty.get("penalty_level", "ok")))
            for c in r.connections])
    metric("rover_ws_bridge_client_rate_dropped_total", "counter",
           "Client messages dropped for being over a rate limit, by client and limit.",
           [({"client": str(c.id), "limit": limit}, n) for c in r.connections
            for limit, n in c.penalty.get("dropped_by_limit", {}).items()])
    metric("rover_ws_bridge_client_pending_bytes", "gauge",
           "Bytes each client's transport holds unsent.",
           [({"client": str(c.id)}, c.pending_bytes) for c in r.connections])
    linked = [c for c in r.connections if c.link]
    metric("rover_ws_bridge_client_link_bandwidth_bytes_per_second", "gauge",
           "Estimated bottleneck bandwidth of each client's link (windowed max of TCP's "
           "delivery rate).",
           [({"client": str(c.id)}, c.link["bandwidth_bytes_per_s"]) for c in linked
            if c.link.get("bandwidth_bytes_per_s") is not None])
    metric("rover_ws_bridge_client_link_min_rtt_seconds", "gauge",
           "Estimated round-trip time of each client's link (windowed min of TCP's RTT).",
           [({"client": str(c.id)}, c.link["min_rtt_ms"] / 1e3) for c in linked
            if c.link.get("min_rtt_ms") is not None])
    metric("rover_ws_bridge_client_queued_bytes", "gauge",
           "Bytes waiting for each client, by stage: its outbox, and the kernel's send queue "
           "(unsent and unacknowledged).",
           [({"client": str(c.id), "stage": stage}, c.link[key]) for c in linked
            for stage, key in (("outbox", "outbox_bytes"), ("kernel", "kernel_queued_bytes"))
            if c.link.get(key) is not None])
    metric("rover_ws_bridge_handoff_dropped_total", "counter",
           "Messages dropped at the ROS->asyncio handoff.", [({}, r.handoff.dropped)])
    if r.core:
        metric("rover_ws_bridge_client_publishes_total", "counter",
               "Messages clients published into ROS, by outcome (error: rclpy refused it).",
               [({"outcome": "ok"}, r.core["published"]),
                ({"outcome": "error"}, r.core["publish_errors"])])
        metric("rover_ws_bridge_commands_refused_total", "counter",
               "Client requests refused because the command queue to ROS was full.",
               [({}, r.core["commands_refused"])])
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return repr(float(value)) if isinstance(value, float) else str(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
