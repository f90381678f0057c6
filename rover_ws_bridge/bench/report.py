"""Figures out: latency percentiles, the printed table, the machine description, the JSON file.

JSON layout (`--json FILE`):

    {"scenarios": [{"name", "clients", "rate_hz", "duration_s", "expected", "delivered",
                    "throughput_msgs_s", "latency_ms": {"p50", "p95", "p99", "max"} | null,
                    "bridge_cpu_pct", ...scenario-specific extras}],
     "machine": {"cpu_count", "cpu_model", "python", "rclpy", "date", ...},
     "command": "..."}

A scenario that could not run has an "error" field instead of figures.

Fields (all counts are of messages whose publish stamp lies in the window):
- published: what the bench publisher sent; expected = published x clients; delivered: what
  the clients got (by the end of the drain); throughput_msgs_s = delivered / duration_s.
- latency_ms: client receive time - header.stamp (publisher's wall clock right before
  publish); ros_leg_latency_ms: bridge's ROS receive time (record timestamp) - header.stamp;
  websocket_leg_latency_ms: the rest (bridge receive -> client receive).
- bridge_received_estimate, lost_before_bridge_estimate, lost_in_bridge_estimate: from the
  bridge's per-topic record sequence numbers (first..last seen in the window).
- *_cpu_pct: percent of one core, from utime + stime of each process over the window (exact);
  bridge_cpu_user_pct / bridge_cpu_system_pct split it (the kernel samples the split at each
  tick). machine_cpu_busy_pct (percent of all cores) and other_processes_cpu_pct_estimate come
  from /proc/stat, tick-sampled: rough at light load.
- idle: idle_cpu_pct = bridge_cpu_pct with no publisher and no client.
- max_rate: bare_subscriber_msgs_s / _latency_ms: a bare rclpy subscriber (no bridge) on the
  same publisher, with the QoS the bridge picks: the ceiling.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np


def percentiles_ms(values_ns: np.ndarray) -> dict[str, float] | None:
    if len(values_ns) == 0:
        return None
    p50, p95, p99 = np.percentile(values_ns, [50, 95, 99]) / 1e6
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3),
            "p99": round(float(p99), 3), "max": round(float(np.max(values_ns)) / 1e6, 3)}


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def machine_info(env: dict[str, str]) -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "rclpy": _version("ros-rclpy") or _version("rclpy"),
        "websockets": _version("websockets"),
        "rmw_implementation": env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp (default)"),
        "ros_domain_id": int(env["ROS_DOMAIN_ID"]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


# -- the table ---------------------------------------------------------------------------------

_COLUMNS = (
    # header, width, how to get the cell from a result
    ("scenario", 10, lambda r: r["name"]),
    ("clients", 7, lambda r: r.get("clients")),
    ("rate Hz", 7, lambda r: "-" if r.get("rate_hz") is None
     else "max" if r["rate_hz"] == 0 else f"{r['rate_hz']:g}"),
    ("expected", 9, lambda r: r.get("expected")),
    ("delivered", 9, lambda r: r.get("delivered")),
    ("msgs/s", 9, lambda r: r.get("throughput_msgs_s")),
    ("p50 ms", 8, lambda r: (r.get("latency_ms") or {}).get("p50")),
    ("p95 ms", 8, lambda r: (r.get("latency_ms") or {}).get("p95")),
    ("p99 ms", 8, lambda r: (r.get("latency_ms") or {}).get("p99")),
    ("max ms", 8, lambda r: (r.get("latency_ms") or {}).get("max")),
    ("bridge CPU %", 12, lambda r: r.get("bridge_cpu_pct")),
)


def _cell(value: Any, width: int, first: bool) -> str:
    if value is None:
        text = "-"
    elif isinstance(value, float):
        text = f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return text.ljust(width) if first else text.rjust(width)


def _ms(p: dict[str, float] | None) -> str:
    return "-" if not p else f"p50 {p['p50']:.2f} / p99 {p['p99']:.2f} ms"


# Other processes using more than this (percent of one core) during a window: say so.
DISTURBANCE_NOTE_PCT = 20.0


def _disturbance(r: dict[str, Any]) -> list[str]:
    other = r.get("other_processes_cpu_pct_estimate") or 0.0
    if other < DISTURBANCE_NOTE_PCT:
        return []
    return [f"  note: other processes on this machine used ~{other:.0f} % of a core during the "
            "window; these figures are disturbed by them"]


def format_report(results: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    lines = ["  ".join(_cell(h, w, i == 0) for i, (h, w, _) in enumerate(_COLUMNS))]
    lines.append("-" * len(lines[0]))
    for r in results:
        if "error" in r:
            lines.append(f"{r['name']:<10}  FAILED: {r['error'].splitlines()[0]}")
            continue
        lines.append("  ".join(_cell(get(r), w, i == 0)
                               for i, (_, w, get) in enumerate(_COLUMNS)))
    lines.append("")
    for r in results:
        if "error" in r:
            lines.append(f"{r['name']}: FAILED\n  " + r["error"].replace("\n", "\n  "))
            continue
        if r.get("rate_hz") is None:
            lines.append(f"{r['name']}: bridge idle CPU {r['bridge_cpu_pct']:.2f} % of one core "
                         f"(no client, no publisher, {r['duration_s']:g} s)")
            lines.extend(_disturbance(r))
            continue
        lines.append(
            f"{r['name']}: publisher {r['publisher_rate_hz_achieved']:,.0f} msgs/s; "
            f"delivered {r['delivered_pct']} % of expected; latency publish->bridge "
            f"{_ms(r['ros_leg_latency_ms'])}, bridge->client {_ms(r['websocket_leg_latency_ms'])}")
        lines.append(
            f"  lost before the bridge ~{r['lost_before_bridge_estimate']:,}, inside it "
            f"~{r['lost_in_bridge_estimate']:,}; CPU % of a core: bridge {r['bridge_cpu_pct']} "
            f"(user {r['bridge_cpu_user_pct']}, system {r['bridge_cpu_system_pct']}), "
            f"publisher {r['publisher_cpu_pct']}, clients {r['clients_cpu_pct']}"
            + (f", bare subscriber {r['bare_subscriber_cpu_pct']}"
               if "bare_subscriber_cpu_pct" in r else "")
            + f"; machine busy {r['machine_cpu_busy_pct']} % of {machine['cpu_count']} cores")
        if "bare_subscriber_msgs_s" in r:
            ceiling = r["bare_subscriber_msgs_s"]
            share = f"{100.0 * r['throughput_msgs_s'] / ceiling:.0f} %" if ceiling else "-"
            lines.append(
                f"  ceiling: bare rclpy subscriber (no bridge), same publisher and QoS: "
                f"{ceiling:,.1f} msgs/s, latency {_ms(r['bare_subscriber_latency_ms'])}; "
                f"the bridge delivered {share} of it")
        lines.extend(_disturbance(r))
        if r.get("bridge_exit_code") not in (0, None):
            lines.append(f"  bridge exited with code {r['bridge_exit_code']} (expected 0)")
    return "\n".join(lines)


def write_json(path: Path, results: list[dict[str, Any]], machine: dict[str, Any],
               command: str) -> None:
    document = {"scenarios": results, "machine": machine, "command": command}
    path.write_text(json.dumps(document, indent=2) + "\n")
