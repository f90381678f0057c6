"""Figures out: latency percentiles, the printed table, the machine description, the JSON file.

JSON layout (`--json FILE`):

    {"scenarios": [{"name", "bridge": "rover_ws_bridge", "clients", "rate_hz", "duration_s",
                    "expected", "delivered", "throughput_msgs_s",
                    "latency_ms": {"p50", "p95", "p99", "max"} | null, "latency_samples_ms",
                    "bridge_cpu_pct", "targets", ...scenario-specific extras}],
     "peers": [the same, for the runs through a peer bridge ("bridge": "foxglove-sdk")],
     "peer_ratios": [{"name", "peer", "p95_ratio", "cpu_per_msg_ratio", ...}],
     "machine": {"cpu_count", "cpu_model", "python", "rclpy", "date", "commit", ...},
     "command": "..."}

A scenario that could not run has an "error" field instead of figures. Peer runs are kept out
of "scenarios" so that a bench file read as the bridge's regression baseline
(`regression_baseline_file`: every scenario's `latency_samples_ms`) holds our figures only.

Fields (all counts are of messages whose publish stamp lies in the window):
- published: what the publisher sent (published_by_topic for the sim); expected = published x
  clients (the slow clients are not among them); delivered: what the clients got (by the end
  of the drain); delivered_pct, drop_pct = 100 - delivered_pct;
  throughput_msgs_s = delivered / duration_s.
- latency_ms: client receive time - header.stamp (publisher's wall clock right before
  publish); latency_samples_ms: up to 2000 of those latencies, evenly subsampled (the --compare
  input); ros_leg_latency_ms: bridge's ROS receive time (record timestamp, or the Foxglove
  log time) - header.stamp; websocket_leg_latency_ms: the rest (bridge -> client).
- bridge_received_estimate, lost_before_bridge_estimate: from the bridge's per-topic record
  sequence numbers (first..last seen in the window; single-topic scenarios);
  lost_in_bridge_estimate: sequence gaps the clients saw (handoff, outbox drops, conflation).
- frames_received, records_per_frame; compression_ratio = wire bytes / raw frame bytes (the
  frames received inside the window: WebSocket message sizes vs header + decompressed body);
  wire_bytes_per_msg, raw_bytes_per_msg (per record); json_bytes_per_msg: the same messages as
  rosbridge would send them (json.dumps of {"op": "publish", "topic", "msg"}, byte arrays as
  base64; mean per topic over a sample, weighted by what each topic delivered);
  reduction_vs_json_pct = 100 x (1 - wire / json). by_topic: the same, per topic.
- critical: CRITICAL records (e-stop) by sequence number: every one between the lowest and the
  highest any client saw must reach every client; "dropped" counts what did not.
  bridge_backpressure: the bridge's /api/performance/backpressure totals at the window's end
  (critical_dropped: its CRITICAL drops over every client).
- slow_clients_detail (and slow_clients_bridge_side, the bridge's view of those connections).
- bridge_rss_mb_start / _end: the bridge's resident memory at the window's start and end;
  bridge_rss_mb_peak: its peak since it started (VmHWM); bridge_memory_bound_mb: what the
  outboxes may hold at most (2 x outbox_max_bytes + write_limit_bytes per client).
- *_cpu_pct: percent of one core, from utime + stime of each process over the window (exact);
  *_cpu_pct_by_process for a group of several; bridge_cpu_user_pct / bridge_cpu_system_pct
  split it (the kernel samples the split at each tick); bridge_cpu_us_per_msg = bridge CPU
  time / delivered messages. machine_cpu_busy_pct (percent of all cores) and
  other_processes_cpu_pct_estimate come from /proc/stat, tick-sampled: rough at light load.
- bottlenecks: notes when a process was saturated (>= 90 % of a core) or every core was busy.
- targets: the specification's floor, each {"value", "limit", "pass", "text"}: p95_ms,
  drop_pct, clients_held; critical_dropped and bridge_memory_growth_mb where they apply.
- idle: idle_cpu_pct = bridge_cpu_pct with no publisher and no client.
- max_rate: bare_subscriber_msgs_s / _latency_ms: a bare rclpy subscriber (no bridge) on the
  same publisher, with the QoS the bridge picks: the ceiling.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[2]


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


def _commit() -> str | None:
    """HEAD of the checkout the bench runs from, with "+dirty" if it has local changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty.strip() else "")


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
        "foxglove_sdk": _version("foxglove-sdk"),
        "rmw_implementation": env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp (default)"),
        "ros_domain_id": int(env["ROS_DOMAIN_ID"]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": _commit(),
    }


# -- the table ---------------------------------------------------------------------------------

def _lat(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda r: (r.get("latency_ms") or {}).get(key)


def _pass(key: str) -> Callable[[dict[str, Any]], Any]:
    def cell(r: dict[str, Any]) -> Any:
        target = (r.get("targets") or {}).get(key)
        if not target or target["pass"] is None:
            return "-"
        return "PASS" if target["pass"] else "FAIL"
    return cell


def row_name(r: dict[str, Any]) -> str:
    bridge = r.get("bridge", "rover_ws_bridge")
    name = r["name"] + (f" #{r['round']}" if "round" in r else "")
    if bridge != "rover_ws_bridge":
        return f"{name} [{bridge}]"
    return f"{name} [foxglove protocol]" if r.get("protocol") == "foxglove" else name


_COLUMNS: tuple[tuple[str, Callable[[dict[str, Any]], Any]], ...] = (
    # header, how to get the cell from a result
    ("scenario", row_name),
    ("clients", lambda r: r.get("clients")),
    ("rate Hz", lambda r: "-" if r.get("rate_hz") is None
     else "sim" if r.get("publisher") == "sim" else "max" if r["rate_hz"] == 0
     else f"{r['rate_hz']:g}"),
    ("msgs/s", lambda r: r.get("throughput_msgs_s")),
    ("p50 ms", _lat("p50")),
    ("p95 ms", _lat("p95")),
    ("p99 ms", _lat("p99")),
    ("max ms", _lat("max")),
    ("drop %", lambda r: r.get("drop_pct")),
    ("compr", lambda r: r.get("compression_ratio")),
    ("B/msg", lambda r: r.get("wire_bytes_per_msg")),
    ("JSON B/msg", lambda r: r.get("json_bytes_per_msg")),
    ("vs JSON", lambda r: None if r.get("reduction_vs_json_pct") is None
     else f"-{r['reduction_vs_json_pct']:.0f} %"),
    ("bridge CPU %", lambda r: r.get("bridge_cpu_pct")),
    ("us/msg", lambda r: r.get("bridge_cpu_us_per_msg")),
    ("p95<50ms", _pass("p95_ms")),
    ("drops<0.1%", _pass("drop_pct")),
    ("held", _pass("clients_held")),
)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) >= 1 \
            else f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_table(results: list[dict[str, Any]], markdown: bool = False) -> str:
    rows = [[h for h, _ in _COLUMNS]]
    errors = []
    for r in results:
        if "error" in r:
            errors.append(f"{row_name(r)}  FAILED: {r['error'].splitlines()[0]}")
            continue
        rows.append([_text(get(r)) for _, get in _COLUMNS])
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |",
                 "|" + "|".join("---" if i == 0 else "--:" for i in range(len(rows[0]))) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
        return "\n".join(lines + errors)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines + errors)


def _ms(p: dict[str, float] | None) -> str:
    return "-" if not p else f"p50 {p['p50']:.2f} / p99 {p['p99']:.2f} ms"


def _spread(p: dict[str, float] | None) -> str:
    return "-" if not p else f"p50 {p['p50']:,.0f} / p95 {p['p95']:,.0f} / max {p['max']:,.0f} ms"


# Other processes using more than this (percent of one core) during a window: say so.
DISTURBANCE_NOTE_PCT = 20.0


def _disturbance(r: dict[str, Any]) -> list[str]:
    other = r.get("other_processes_cpu_pct_estimate") or 0.0
    if other < DISTURBANCE_NOTE_PCT:
        return []
    return [f"  note: other processes on this machine used ~{other:.0f} % of a core during the "
            "window; these figures are disturbed by them"]


def _targets_line(r: dict[str, Any]) -> str:
    parts = []
    for t in (r.get("targets") or {}).values():
        verdict = "-" if t["pass"] is None else "PASS" if t["pass"] else "FAIL"
        parts.append(f"{t['text']}: {_text(t['value'])} {verdict}")
    return "  targets: " + "; ".join(parts)


def _details(r: dict[str, Any], machine: dict[str, Any]) -> list[str]:
    name = row_name(r)
    if "error" in r:
        return [f"{name}: FAILED\n  " + r["error"].replace("\n", "\n  ")]
    if r.get("rate_hz") is None:
        return [f"{name}: bridge idle CPU {r['bridge_cpu_pct']:.2f} % of one core (no client, "
                f"no publisher, {r['duration_s']:g} s)", *_disturbance(r)]
    lines = [
        f"{name}: publisher {r['publisher_rate_hz_achieved']:,.0f} msgs/s"
        + (" (fastest topic)" if r.get("publisher") == "sim" else "")
        + f"; delivered {r['delivered_pct']} % of expected; latency publish->bridge "
        f"{_ms(r['ros_leg_latency_ms'])}, bridge->client {_ms(r['websocket_leg_latency_ms'])}"]
    clients = r.get("clients_cpu_pct_by_process")
    lines.append(
        f"  CPU % of a core: bridge {r['bridge_cpu_pct']} (user {r['bridge_cpu_user_pct']}, "
        f"system {r['bridge_cpu_system_pct']}), publisher {r['publisher_cpu_pct']}, clients "
        f"{r['clients_cpu_pct']}" + (f" {clients}" if clients else "")
        + (f", slow client {r['slow_clients_cpu_pct']}" if "slow_clients_cpu_pct" in r else "")
        + (f", bare subscriber {r['bare_subscriber_cpu_pct']}"
           if "bare_subscriber_cpu_pct" in r else "")
        + (f", CPU hog {r['cpu_hog_cpu_pct']}" if "cpu_hog_cpu_pct" in r else "")
        + f"; machine busy {r['machine_cpu_busy_pct']} % of {machine.get('cpu_count')} cores")
    roles = r.get("bridge_cpu_pct_by_role")
    if roles:
        lines.append("  bridge CPU by thread, % of a core: "
                     + ", ".join(f"{role} {pct}" for role, pct in roles.items())
                     + f"; per message: ROS side {_text(r.get('bridge_cpu_us_per_msg_ros_side'))}"
                     f" us, WebSocket side {_text(r.get('bridge_cpu_us_per_msg_websocket_side'))}"
                     " us")
    if r.get("lost_in_bridge_estimate") is not None:
        before = r.get("lost_before_bridge_estimate")
        lines.append(
            (f"  lost before the bridge ~{before:,}, " if before is not None else "  ")
            + f"lost inside it (sequence gaps) {r['lost_in_bridge_estimate']:,}; "
            f"{r.get('records_per_frame')} records per frame; bridge RSS "
            f"{r.get('bridge_rss_mb_start')} -> {r.get('bridge_rss_mb_end')} MiB "
            f"(peak {r.get('bridge_rss_mb_peak')})")
    by_topic = r.get("by_topic") or {}
    if len(by_topic) > 1:
        for topic, t in by_topic.items():
            lines.append(
                f"    {topic:26s} published {_text(t['published']):>6}  delivered "
                f"{_text(t['delivered']):>7}  drop {_text(t['drop_pct']):>6} %  gaps "
                f"{_text(t['sequence_gaps']):>5}  data {_text(t['data_bytes_per_msg']):>8} B  "
                f"JSON {_text(t['json_bytes_per_msg']):>8} B")
    critical = r.get("critical")
    if critical:
        bridge_side = (r.get("bridge_backpressure") or {}).get("critical_dropped")
        lines.append(f"  CRITICAL ({', '.join(critical['topics'])}): {critical['messages']} in "
                     f"the window, dropped {critical['dropped']} (seen by clients)"
                     + (f", {bridge_side} (bridge's count)" if bridge_side is not None else ""))
        for kind, delay in (critical.get("delay_ms") or {}).items():
            if delay:
                lines.append(f"    CRITICAL delay bridge->client, {kind} clients: p50 "
                             f"{delay['p50']:,.2f} / max {delay['max']:,.2f} ms")
    for slow in r.get("slow_clients_detail") or []:
        lines.append(f"  slow client: delivered {slow['delivered_pct']} % of published, "
                     f"{slow['critical_received']} CRITICAL, latency {_ms(slow['latency_ms'])}, "
                     f"connected at end {slow['connected_at_end']}")
    kernel = r.get("slow_clients_kernel_send_queue_bytes") or []
    for i, side in enumerate(r.get("slow_clients_bridge_side") or []):
        held = kernel[i] if i < len(kernel) else None
        lines.append(f"  slow client, bridge side: state {side['state']}, peak utilization "
                     f"{side['peak_utilization']}, dropped {side['dropped']}, conflated "
                     f"{side['conflated']}, queued in the outbox {side['queued_bytes']:,} of "
                     f"{side['max_bytes']:,} B" + ("" if held is None else
                                                  f", in the kernel's send queue {held:,} B"))
    for link in r.get("links_detail") or []:
        rate = f"{link['rate_kbit']:,} kbit/s" + (
            f" -> {link['later_rate_kbit']:,}" if link.get("later_rate_kbit") else "")
        lines.append(f"  link {rate}: CRITICAL {link['critical_received']} received, in order "
                     f"{link['critical_in_order']}, delay {_spread(link['critical_delay_ms'])}; "
                     f"link used {link['link_used_pct']} %; connected at end "
                     f"{link['connected_at_end']}")
        for topic, t in link["by_topic"].items():
            spacing = t.get("spacing_ms")
            published = t.get("published")
            lines.append(f"    {topic:26s} {t['rate_hz']:>7.1f} msgs/s"
                         + (f" ({t['delivered']} of {published})" if published else "")
                         + f"  age {_spread(t['age_ms'])}"
                         + (f"  spacing {_spread(spacing)} cv {t['spacing_cv']}" if spacing
                            else ""))
        change = link.get("estimate_change")
        if change:
            lines.append(f"    the bridge's estimate: {change['before_Bps']} B/s before the "
                         f"change to {change['new_rate_Bps']:,} B/s, within 15 % of that "
                         f"{change['followed_s']} s after it")
        for topic, age in (link.get("age_ms_from_2s_after_change") or {}).items():
            lines.append(f"    from 2 s after the change: {topic:26s} age {_spread(age)}")
    if "bare_subscriber_msgs_s" in r:
        ceiling = r["bare_subscriber_msgs_s"]
        share = f"{100.0 * r['throughput_msgs_s'] / ceiling:.0f} %" if ceiling else "-"
        lines.append(
            f"  ceiling: bare rclpy subscriber (no bridge), same publisher and QoS: "
            f"{ceiling:,.1f} msgs/s, latency {_ms(r['bare_subscriber_latency_ms'])}; "
            f"the bridge delivered {share} of it")
    for note in r.get("bottlenecks") or []:
        lines.append(f"  bottleneck: {note}")
    lines.append(_targets_line(r))
    lines.extend(_disturbance(r))
    if r.get("bridge_exit_code") not in (0, None):
        lines.append(f"  bridge exited with code {r['bridge_exit_code']} (expected 0)")
    return lines


def format_report(results: list[dict[str, Any]], machine: dict[str, Any],
                  peers: list[dict[str, Any]] | None = None,
                  ratios: list[dict[str, Any]] | None = None) -> str:
    everything = list(results) + list(peers or [])
    lines = [format_table(everything), ""]
    for r in everything:
        lines.extend(_details(r, machine))
    if ratios:
        lines += ["", format_ratios(ratios)]
        if any("round" in r for r in ratios):
            lines += ["", format_ratio_summary(ratio_summary(ratios))]
    return "\n".join(lines)


# -- ours vs a peer ----------------------------------------------------------------------------

def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


# Ours / peer, each a (name, how to read it from a result): under 1, ours is lower.
RATIO_FIGURES: tuple[tuple[str, Callable[[dict[str, Any]], Any]], ...] = (
    ("p95", lambda r: (r.get("latency_ms") or {}).get("p95")),
    ("cpu_per_msg", lambda r: r.get("bridge_cpu_us_per_msg")),
    ("ros_side_cpu_per_msg", lambda r: r.get("bridge_cpu_us_per_msg_ros_side")),
    ("websocket_side_cpu_per_msg", lambda r: r.get("bridge_cpu_us_per_msg_websocket_side")),
)


def peer_ratios(ours: dict[str, Any], peer: dict[str, Any]) -> dict[str, Any]:
    """Ours / peer for p95 latency and CPU per delivered message (all of it, its ROS side and
    its WebSocket side; under 1: we are better), and the delivered shares side by side."""
    out: dict[str, Any] = {"name": ours["name"], "peer": peer.get("bridge")}
    for figure, get in RATIO_FIGURES:
        out[f"{figure}_values"] = [get(ours), get(peer)]
        out[f"{figure}_ratio"] = _ratio(get(ours), get(peer))
    # The names of the first version of this file, which --load still reads.
    out["p95_ms"] = out["p95_values"]
    out["cpu_us_per_msg"] = out["cpu_per_msg_values"]
    out["delivered_pct"] = [ours.get("delivered_pct"), peer.get("delivered_pct")]
    out["delivered_share_ratio"] = _ratio(ours.get("delivered_pct"), peer.get("delivered_pct"))
    return out


def format_ratios(ratios: list[dict[str, Any]], markdown: bool = False) -> str:
    header = ["scenario", "peer", "p95 ours ms", "p95 peer ms", "p95 ours/peer",
              "CPU us/msg ours", "CPU us/msg peer", "CPU ours/peer", "ROS side ours/peer",
              "WS side ours/peer", "delivered % ours", "delivered % peer"]
    rows = [header] + [[r["name"] + (f" #{r['round']}" if "round" in r else ""), str(r["peer"]),
                        _text(r["p95_ms"][0]), _text(r["p95_ms"][1]),
                        _text(r["p95_ratio"]), _text(r["cpu_us_per_msg"][0]),
                        _text(r["cpu_us_per_msg"][1]), _text(r["cpu_per_msg_ratio"]),
                        _text(r.get("ros_side_cpu_per_msg_ratio")),
                        _text(r.get("websocket_side_cpu_per_msg_ratio")),
                        _text(r["delivered_pct"][0]), _text(r["delivered_pct"][1])]
                       for r in ratios]
    return _grid(rows, "ours vs peer (ratios under 1: ours is lower)", markdown)


def _grid(rows: list[list[str]], title: str, markdown: bool) -> str:
    """Rows as a Markdown table, or as aligned text under a title (first two columns text)."""
    if markdown:
        return "\n".join(["| " + " | ".join(rows[0]) + " |",
                          "|" + "|".join("---" if i < 2 else "--:"
                                         for i in range(len(rows[0]))) + "|"]
                         + ["| " + " | ".join(row) + " |" for row in rows[1:]])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [title]
    for row in rows:
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def ratio_summary(ratios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per scenario over the rounds: each ours/peer ratio as the median of the rounds' ratios,
    its range, and a verdict: "ours lower" / "peer lower" when every round agrees, "too
    spread to call" when the range holds 1.0 (some rounds say one thing, some the other),
    "one round" when there is nothing to spread."""
    by_name: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in ratios:
        by_name.setdefault((r["name"], str(r["peer"])), []).append(r)
    out = []
    for (name, peer), rounds in by_name.items():
        entry: dict[str, Any] = {"name": name, "peer": peer, "rounds": len(rounds)}
        for figure, _ in RATIO_FIGURES:
            values = [r.get(f"{figure}_ratio") for r in rounds]
            values = [v for v in values if v is not None]
            if not values:
                entry[figure] = None
                continue
            low, high = min(values), max(values)
            verdict = ("one round" if len(values) == 1 else "ours lower" if high < 1.0
                       else "peer lower" if low > 1.0 else "too spread to call")
            entry[figure] = {"median": round(float(np.median(values)), 2), "min": low,
                             "max": high, "verdict": verdict}
        out.append(entry)
    return out


def format_ratio_summary(summary: list[dict[str, Any]], markdown: bool = False) -> str:
    def cell(s: dict[str, Any] | None) -> str:
        if not s:
            return "-"
        return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f}) {s['verdict']}"

    header = ["scenario", "peer", "rounds", "p95 ours/peer", "CPU/msg ours/peer",
              "ROS side CPU/msg", "WS side CPU/msg"]
    rows = [header] + [[e["name"], e["peer"], str(e["rounds"])]
                       + [cell(e[figure]) for figure, _ in RATIO_FIGURES] for e in summary]
    return _grid(rows, "ours / peer over the rounds: median (range), and whether every round "
                       "agrees", markdown)


def write_json(path: Path, results: list[dict[str, Any]], machine: dict[str, Any],
               command: str, peers: list[dict[str, Any]] | None = None,
               ratios: list[dict[str, Any]] | None = None) -> None:
    document: dict[str, Any] = {"scenarios": results, "machine": machine, "command": command}
    if peers:
        document["peers"] = peers
        document["peer_ratios"] = ratios or []
        if any("round" in r for r in ratios or []):
            document["peer_ratio_summary"] = ratio_summary(ratios or [])
    path.write_text(json.dumps(document, indent=1) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    document = json.loads(Path(path).read_text())
    if not isinstance(document, dict) or not isinstance(document.get("scenarios"), list):
        raise ValueError(f"{path}: not a bench results file (no 'scenarios' list)")
    return document
