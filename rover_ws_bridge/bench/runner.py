"""Runs one scenario: starts the bridge, the publisher and the clients, measures, stops them.

Timeline of a scenario:

    bridge up (port 0) -> publisher up -> clients (and bare subscriber) ready (data flowing)
    -> warm-up -> [measurement window: `duration` s] -> drain -> results -> stop, in order

The window is a pair of wall-clock instants sent to every child. The publisher counts the
messages it stamps inside it (`published`); clients count the records stamped inside it that
reach them by the end of the drain (`delivered`). CPU time of every process (utime + stime from
/proc/<pid>/stat) is sampled at the window's start and end, and the bridge's resident memory
too. At the window's end the bridge's /api/performance/backpressure is read (ours only).

`bridge="foxglove-sdk"` runs the same scenario through the peer (bench/foxglove_peer.py) with
the same publisher and the same client harness speaking the Foxglove protocol.

The idle scenario runs the bridge alone and only samples its CPU.
"""
from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from ..config import BridgeConfig
from .processes import (
    BenchError,
    ChildProcess,
    machine_cpu_s,
    process_memory_mb,
    tcp_send_queue_bytes,
    thread_cpu_s,
)
from .report import percentiles_ms
from .scenarios import TARGET_DROP_PCT, TARGET_P95_MS, LinkSpec, Scenario
from .slowlink import LinkUnavailable, ThrottledLink
from .stamps import decode_ns_array

BRIDGE_MODULE = "rover_ws_bridge.ros.node"
PEER_MODULE = "rover_ws_bridge.bench.foxglove_peer"
PUBLISHER_MODULE = "rover_ws_bridge.bench.publisher"
SIM_PUBLISHER_MODULE = "rover_ws_bridge.bench.sim_publisher"
LOADCLIENT_MODULE = "rover_ws_bridge.bench.loadclient"
BARE_SUBSCRIBER_MODULE = "rover_ws_bridge.bench.bare_subscriber"
CPU_HOG_MODULE = "rover_ws_bridge.bench.cpu_hog"
LISTENING = r"listening on (ws://\S+)"
OURS = "rover_ws_bridge"
PEERS = ("foxglove-sdk",)
# Latency samples kept per scenario in the JSON (evenly subsampled): the --compare input, and
# the bridge's regression baseline (regression_baseline_file).
LATENCY_SAMPLES = 2000
# A process using this much of a core during the window is saturated: if it is a load
# generator (publisher, client process), the figures measure it rather than the bridge.
SATURATED_CPU_PCT = 90.0
MACHINE_SATURATED_PCT = 95.0
# Links: how often the bridge's per-connection figures are read during the window (its link
# estimates, to see how fast they follow a rate change).
CONNECTIONS_POLL_S = 0.25
# The bridge's CPU by thread role (bridge_cpu_pct_by_role): "ros_executor" (the executor
# thread: rclpy's wait set and our subscription callbacks), "dds" (Fast DDS's own threads:
# receive, events), "websocket" (everything after the handoff: ours, the asyncio thread that
# runs router, protocols and sockets; the peer's, the Rust server's threads), "other".
# ROS side = ros_executor + dds.
EXECUTOR_THREAD_NAME = "ros-executor"  # ros/node.py names its executor thread so
ROS_SIDE_ROLES = ("ros_executor", "dds")


def thread_role(bridge: str, pid: int, tid: int, name: str) -> str:
    """What a thread of a bridge process does, from its OS name. Our main thread runs the
    asyncio loop and the executor has a thread of its own; the peer's main thread spins its
    executor and the foxglove-sdk server runs on threads of its own (Rust)."""
    if name.startswith("dds."):
        return "dds"
    if bridge == OURS:
        if name == EXECUTOR_THREAD_NAME:
            return "ros_executor"
        return "websocket" if tid == pid else "other"
    return "ros_executor" if tid == pid else "websocket"


@dataclass(frozen=True)
class RunSettings:
    duration_s: float
    warmup_s: float
    drain_s: float
    env: dict[str, str]
    log_dir: Path
    start_timeout_s: float = 30.0
    # Bridge parameters given on the command line (--bridge-param), after the scenario's own.
    bridge_parameters: tuple[tuple[str, str], ...] = ()
    # The clients' protocol with our bridge (--protocol): "native" or "foxglove" (the peer's
    # clients always speak the Foxglove protocol).
    protocol: str = "native"


class _CpuClock:
    """CPU seconds of a set of processes and of the machine, between two samples."""

    def __init__(self, processes: dict[str, list[ChildProcess]], bridge_name: str = OURS) -> None:
        self.processes = processes
        self.bridge_name = bridge_name
        self._bridge_threads_at_start: dict[int, tuple[str, float]] = {}
        self._start: dict[str, list[float]] = {}
        self._start_machine = (0.0, 0.0)
        self._start_wall = 0.0
        self._bridge_at_start = (0.0, 0.0)
        self.elapsed_s = 0.0

    def _sample(self) -> dict[str, list[float]]:
        return {name: [p.cpu_s() or 0.0 for p in group] for name, group in self.processes.items()}

    def start(self) -> None:
        self._start_wall = time.monotonic()
        self._start_machine = machine_cpu_s()
        self._start = self._sample()
        self._bridge_at_start = self._bridge_times()
        self._bridge_threads_at_start = thread_cpu_s(self.processes["bridge"][0].pid)

    def _bridge_times(self) -> tuple[float, float]:
        return self.processes["bridge"][0].cpu_times() or (0.0, 0.0)

    def stop(self) -> dict[str, Any]:
        """Percent of one core per group (and per process of a group of several), and
        `machine_cpu_busy_pct` of all cores."""
        ends = self._sample()
        threads_end = thread_cpu_s(self.processes["bridge"][0].pid)
        busy, total = machine_cpu_s()
        self.elapsed_s = time.monotonic() - self._start_wall
        out: dict[str, Any] = {}
        for name in self.processes:
            each = [round(100.0 * (e - s) / self.elapsed_s, 1)
                    for s, e in zip(self._start[name], ends[name])]
            out[f"{name}_cpu_pct"] = round(sum(each), 1)
            if len(each) > 1:
                out[f"{name}_cpu_pct_by_process"] = each
        # User vs kernel time of the bridge: a high system share means wake-ups and socket
        # writes (per message or per frame), not Python work, are what costs.
        user, system = self._bridge_times()
        out["bridge_cpu_user_pct"] = round(100.0 * (user - self._bridge_at_start[0])
                                           / self.elapsed_s, 1)
        out["bridge_cpu_system_pct"] = round(100.0 * (system - self._bridge_at_start[1])
                                             / self.elapsed_s, 1)
        # By thread role (tick-sampled per thread: rough at light load, fine over seconds).
        pid = self.processes["bridge"][0].pid
        by_role: dict[str, float] = {}
        for tid, (name, end_s) in threads_end.items():
            start_s = self._bridge_threads_at_start.get(tid, (name, 0.0))[1]
            role = thread_role(self.bridge_name, pid, tid, name)
            by_role[role] = by_role.get(role, 0.0) + end_s - start_s
        out["bridge_cpu_pct_by_role"] = {role: round(100.0 * cpu_s / self.elapsed_s, 1)
                                         for role, cpu_s in sorted(by_role.items())}
        # Tick-sampled by the kernel (HZ), so rough at light load; the per-process figures
        # above are exact (utime + stime are scaled to the scheduler's runtime).
        machine_total = total - self._start_machine[1]
        machine_busy = busy - self._start_machine[0]
        out["machine_cpu_busy_pct"] = round(
            100.0 * machine_busy / machine_total, 1) if machine_total else 0.0
        # The machine is shared: CPU used by processes that are not the bench's disturbs the
        # figures; this says how much (percent of one core, as rough as the line above).
        ours = sum(out[f"{name}_cpu_pct"] for name in self.processes)
        out["other_processes_cpu_pct_estimate"] = round(
            max(0.0, 100.0 * machine_busy / self.elapsed_s - ours), 1)
        return out


def _sleep_until_ns(target_ns: int) -> None:
    delay = (target_ns - time.time_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)


def _bridge_get(url: str, path: str) -> dict[str, Any] | None:
    http = url.replace("ws://", "http://", 1).rstrip("/") + path
    try:
        with urllib.request.urlopen(http, timeout=2.0) as response:
            return json.load(response)
    except (OSError, ValueError):
        return None


def subsample(values: np.ndarray, limit: int = LATENCY_SAMPLES) -> np.ndarray:
    """At most `limit` values, evenly spaced through `values` (arrival order kept)."""
    if len(values) <= limit:
        return values
    return values[np.linspace(0, len(values) - 1, limit).round().astype(np.int64)]


def _target(value: float | int | None, limit: float | int, passed: bool | None,
            text: str) -> dict[str, Any]:
    return {"value": value, "limit": limit, "pass": passed, "text": text}


class ScenarioRun:
    """One run of one scenario. `run()` returns its result entry (see report.py)."""

    def __init__(self, scenario: Scenario, settings: RunSettings, bridge: str = OURS,
                 rosbridge_encoding: str | None = None) -> None:
        """`rosbridge_encoding` ("json" or "cbor"): our bridge, its clients speaking the
        rosbridge protocol with that compression instead of the native one."""
        if bridge != OURS and bridge not in PEERS:
            raise ValueError(f"unknown bridge {bridge!r}")
        if bridge != OURS and not scenario.peer_capable:
            raise BenchError(f"{scenario.name}: the {bridge} peer runs bench-publisher "
                             "scenarios (sensor_msgs/Imu) only")
        if settings.protocol == "foxglove" and not scenario.peer_capable:
            raise BenchError(f"{scenario.name}: Foxglove clients run bench-publisher scenarios "
                             "(sensor_msgs/Imu, no slow client) only")
        self.scenario = scenario
        self.settings = settings
        self.bridge_name = bridge
        self.rosbridge_encoding = rosbridge_encoding
        self._started: list[ChildProcess] = []
        self._bridge: ChildProcess | None = None
        self._links: list[ThrottledLink] = []
        self.rate_changed_ns = 0  # when _watch_links changed the links' rates

    @property
    def is_peer(self) -> bool:
        return self.bridge_name != OURS

    @property
    def protocol(self) -> str:
        if self.rosbridge_encoding is not None:
            return "rosbridge"
        return "foxglove" if self.is_peer else self.settings.protocol

    def _start(self, name: str, module: str, args: list[str],
               prefix: list[str] | None = None) -> ChildProcess:
        child = ChildProcess(name, module, args, self.settings.env, self.settings.log_dir,
                             prefix or ())
        self._started.append(child)
        return child

    def run(self) -> dict[str, Any]:
        s = self.scenario
        result: dict[str, Any] = {
            "name": s.name, "protocol": self.protocol, "description": s.description,
            "bridge": f"{OURS}, rosbridge {self.rosbridge_encoding}" if self.rosbridge_encoding
            else self.bridge_name,
            "clients": s.clients, "slow_clients": s.slow_clients,
            "client_processes": s.client_processes, "rate_hz": s.rate_hz,
            "publisher": s.publisher if not s.is_idle else None,
            "topics": list(s.topics) if not s.is_idle else [], "encoding": s.encoding,
            "compression": s.compression, "duration_s": self.settings.duration_s,
        }
        bridge_exit: int | None = None
        links = contextlib.ExitStack()
        try:
            # Pids and names of this process: one scenario's links at a time.
            try:
                self._links = [links.enter_context(ThrottledLink(i, spec.rate_kbit))
                               for i, spec in enumerate(s.links)]
            except (LinkUnavailable, subprocess.CalledProcessError) as exc:
                detail = getattr(exc, "stderr", "") or ""
                raise BenchError(f"{s.name}: cannot make its links: {exc} {detail}".strip()) \
                    from None
            bridge = self._start_bridge()
            url = bridge.wait_for("line", self.settings.start_timeout_s,
                                  LISTENING)["text"].split()[-1]
            if s.is_idle:
                result.update(self._measure_idle(bridge))
            else:
                result.update(self._measure_load(bridge, url))
        finally:
            try:
                bridge_exit = self._stop_all()
            finally:
                links.close()
                self._links = []
        result["bridge_exit_code"] = bridge_exit
        return result

    # -- pieces --------------------------------------------------------------------------------

    def _start_bridge(self) -> ChildProcess:
        name = f"{self.scenario.name}-{self.bridge_name}"
        if self.is_peer:
            args = [a for t in self.scenario.topics for a in ("--topic",
                                                              f"{t}:sensor_msgs/msg/Imu")]
            self._bridge = self._start(name, PEER_MODULE, args)
            return self._bridge
        # Behind links: the first link's host address, which every namespace reaches (and
        # this machine too, for the loopback clients and the HTTP reads).
        address = self._links[0].host_address if self._links else "127.0.0.1"
        args = ["--ros-args", "-p", "port:=0", "-p", f"address:={address}"]
        for param, value in self.scenario.bridge_parameters + self.settings.bridge_parameters:
            args += ["-p", f"{param}:={value}"]
        self._bridge = self._start(name, BRIDGE_MODULE, args)
        return self._bridge

    def _measure_idle(self, bridge: ChildProcess) -> dict[str, Any]:
        time.sleep(self.settings.warmup_s)
        clock = _CpuClock({"bridge": [bridge]})
        clock.start()
        time.sleep(self.settings.duration_s)
        cpu = clock.stop()
        memory = process_memory_mb(bridge.pid)
        return {"published": 0, "expected": 0, "delivered": 0, "throughput_msgs_s": 0.0,
                "latency_ms": None, "idle_cpu_pct": cpu["bridge_cpu_pct"],
                "bridge_rss_mb_end": memory.get("rss"), **cpu}

    def _start_publisher(self) -> ChildProcess:
        s = self.scenario
        if s.publisher == "sim":
            args = [a for name, value in s.sim_parameters for a in ("--param", f"{name}={value}")]
            return self._start(f"{s.name}-sim", SIM_PUBLISHER_MODULE, args)
        topic_args = [a for t in s.topics for a in ("--topic", t)]
        return self._start(f"{s.name}-publisher", PUBLISHER_MODULE,
                           ["--rate", f"{s.rate_hz:g}", *topic_args])

    def _measure_load(self, bridge: ChildProcess, url: str) -> dict[str, Any]:
        s = self.scenario
        settings = self.settings
        hog = None
        if s.cpu_hog_duty:
            hog = self._start(f"{s.name}-cpu-hog", CPU_HOG_MODULE,
                              ["--duty", f"{s.cpu_hog_duty:g}", "--core", "0"])
            hog.wait_for("ready", settings.start_timeout_s)
        publisher = self._start_publisher()
        publisher.wait_for("ready", settings.start_timeout_s)

        bare = None
        if s.bare_subscriber:
            bare = self._start(f"{s.name}-bare-subscriber", BARE_SUBSCRIBER_MODULE,
                               ["--topic", s.topics[0], "--drain", f"{settings.drain_s:g}",
                                "--ready-timeout", f"{settings.start_timeout_s:g}"])
        client_args = ["--url", url, *[a for t in s.topics for a in ("--topic", t)],
                       "--encoding", s.encoding, "--drain", f"{settings.drain_s:g}",
                       "--ready-timeout", f"{settings.start_timeout_s:g}"]
        if self.protocol == "foxglove":
            client_args += ["--protocol", "foxglove"]
        elif self.rosbridge_encoding is not None:
            client_args += ["--protocol", "rosbridge", "--encoding", self.rosbridge_encoding]
        elif s.compression is not None:
            client_args += ["--compression", s.compression]
        clients = [self._start(f"{s.name}-clients-{i}", LOADCLIENT_MODULE,
                               client_args + ["--clients", str(s.clients_per_process)])
                   for i in range(s.client_processes)]
        slow = [self._start(f"{s.name}-slow-client", LOADCLIENT_MODULE,
                            client_args + ["--clients", str(s.slow_clients),
                                           "--slow-bytes-per-s", str(s.slow_read_bytes_per_s)])
                ] if s.slow_clients else []
        linked = [self._start(f"{s.name}-link-{i}", LOADCLIENT_MODULE,
                              client_args + ["--clients", "1", "--timeline"],
                              prefix=link.exec_prefix)
                  for i, link in enumerate(self._links)]
        for child in clients:
            child.wait_for("ready", settings.start_timeout_s + 5)
        link_ports = [child.wait_for("ready", settings.start_timeout_s + 5)["ports"][0]
                      for child in linked]
        slow_ports = [p for child in slow
                      for p in child.wait_for("ready", settings.start_timeout_s + 5)["ports"]]
        bare_ready = bare.wait_for("ready", settings.start_timeout_s + 5) if bare else None

        groups = {"bridge": [bridge], "publisher": [publisher], "clients": clients}
        if slow:
            groups["slow_clients"] = slow
        if linked:
            groups["link_clients"] = linked
        if bare is not None:
            groups["bare_subscriber"] = [bare]
        if hog is not None:
            groups["cpu_hog"] = [hog]
        clock = _CpuClock(groups, self.bridge_name)
        start_ns = time.time_ns() + int(settings.warmup_s * 1e9)
        end_ns = start_ns + int(settings.duration_s * 1e9)
        for child in [publisher, *clients, *slow, *linked] + ([bare] if bare else []):
            child.send(f"window {start_ns} {end_ns}")
        _sleep_until_ns(start_ns)
        clock.start()
        memory_start = process_memory_mb(bridge.pid)
        estimates = self._watch_links(url, start_ns, end_ns, link_ports) if linked else []
        _sleep_until_ns(end_ns)
        cpu = clock.stop()
        memory_end = process_memory_mb(bridge.pid)
        bridge_port = urlsplit(url).port or 0
        slow_queues = [tcp_send_queue_bytes(bridge_port, p) for p in slow_ports if p]
        link_queues = [tcp_send_queue_bytes(bridge_port, p) for p in link_ports]
        backpressure = None if self.is_peer else _bridge_get(url, "/api/performance/backpressure")

        published = publisher.wait_for("result", 10.0)
        results_timeout = settings.drain_s + 15.0
        client_results = [r for c in clients
                          for r in c.wait_for("result", results_timeout)["clients"]]
        slow_results = [r for c in slow for r in c.wait_for("result", results_timeout)["clients"]]
        link_results = [c.wait_for("result", results_timeout)["clients"][0] for c in linked]
        bare_result = bare.wait_for("result", results_timeout) if bare else None
        figures = self._figures(published, client_results, slow_results + link_results,
                                bare_result, cpu)
        if linked:
            figures["links_detail"] = [
                _link_figures(spec, r, start_ns, end_ns, self.rate_changed_ns, queued, series,
                              figures.get("published_by_topic") or {})
                for spec, r, queued, series in zip(self.scenario.links, link_results,
                                                   link_queues, estimates)]
        figures.update(self._memory(memory_start, memory_end))
        figures.update(self._bridge_side(backpressure, client_results, slow_results))
        if slow_queues:
            # Where the slow client's backlog lives: the outbox (bridge side) or the kernel.
            figures["slow_clients_kernel_send_queue_bytes"] = slow_queues
        if bare_ready is not None:
            figures["bare_subscriber_qos"] = {k: bare_ready[k]
                                              for k in ("reliable", "transient_local", "depth")}
        figures["bottlenecks"] = self._bottlenecks(figures)
        figures["targets"] = self._targets(figures)
        return figures

    def _watch_links(self, url: str, start_ns: int, end_ns: int,
                     ports: list[int]) -> list[list[dict[str, Any]]]:
        """Through the window: change the links' rates at its middle, and read the bridge's
        view of each link client every CONNECTIONS_POLL_S (its link estimate, where the
        bridge has one). One series per link: [{"t_s": since the window's start, ...}]."""
        middle_ns = (start_ns + end_ns) // 2
        self.rate_changed_ns = middle_ns
        changed = False
        series: list[list[dict[str, Any]]] = [[] for _ in ports]
        while time.time_ns() < end_ns:
            now = time.time_ns()
            if not changed and now >= middle_ns:
                changed = True
                self.rate_changed_ns = now
                for link, spec in zip(self._links, self.scenario.links):
                    if spec.later_rate_kbit is not None:
                        link.change_rate(spec.later_rate_kbit)
            connections = _bridge_get(url, "/api/performance/connections") or {}
            by_port = {c.get("remote", "").rsplit(":", 1)[-1]: c
                       for c in connections.get("connections", [])}
            for i, port in enumerate(ports):
                entry = by_port.get(str(port))
                if entry is not None:
                    series[i].append({"t_s": round((now - start_ns) / 1e9, 2),
                                      **{k: entry.get(k) for k in LINK_FIGURES}})
            time.sleep(min(CONNECTIONS_POLL_S, max(0.0, (end_ns - time.time_ns()) / 1e9)))
        return series

    # -- figures -------------------------------------------------------------------------------

    def _figures(self, published: dict[str, Any], clients: list[dict[str, Any]],
                 slow: list[dict[str, Any]], bare: dict[str, Any] | None,
                 cpu: dict[str, Any]) -> dict[str, Any]:
        s = self.scenario
        duration = self.settings.duration_s
        n_published = int(published["published"])
        expected = n_published * s.clients  # every client subscribes to every topic
        delivered = sum(c["delivered"] for c in clients)
        e2e = _concat(c["latencies_ns"] for c in clients)
        ros = _concat(c["ros_leg_ns"] for c in clients)
        bridge_received = max((c["bridge_received_estimate"] for c in clients), default=0)
        per_client = sorted(c["delivered"] for c in clients)
        lost = max(0, expected - delivered)
        out: dict[str, Any] = {
            "published": n_published,
            "foreign_publishers": published.get("foreign_publishers", 0),
            "published_by_topic": published.get("published_by_topic"),
            "publisher_rate_hz_achieved": round(published["rate_hz_achieved"], 1),
            "expected": expected,
            "delivered": delivered,
            "delivered_pct": round(100.0 * delivered / expected, 2) if expected else None,
            "drop_pct": round(100.0 * lost / expected, 3) if expected else None,
            "throughput_msgs_s": round(delivered / duration, 1),
            "latency_ms": percentiles_ms(e2e),
            "latency_samples_ms": [round(float(v) / 1e6, 3) for v in subsample(e2e)],
            # Where the time goes: publisher -> bridge's ROS callback, then bridge -> client.
            "ros_leg_latency_ms": percentiles_ms(ros),
            "websocket_leg_latency_ms": percentiles_ms(e2e - ros) if len(ros) == len(e2e)
            else None,
            "per_client_delivered_min": per_client[0] if per_client else 0,
            "per_client_delivered_max": per_client[-1] if per_client else 0,
            "clients_connected_at_end": sum(1 for c in clients if c.get("connected_at_end")),
            **cpu,
        }
        if delivered and "bridge_cpu_pct" in cpu:
            out["bridge_cpu_us_per_msg"] = round(
                cpu["bridge_cpu_pct"] / 100.0 * duration / delivered * 1e6, 2)
            roles = cpu.get("bridge_cpu_pct_by_role") or {}
            ros_side = sum(pct for role, pct in roles.items() if role in ROS_SIDE_ROLES)
            out["bridge_cpu_us_per_msg_ros_side"] = round(
                ros_side / 100.0 * duration / delivered * 1e6, 2)
            out["bridge_cpu_us_per_msg_websocket_side"] = round(
                (cpu["bridge_cpu_pct"] - ros_side) / 100.0 * duration / delivered * 1e6, 2)
        if not self.is_peer:
            out.update({
                # From the bridge's per-topic sequence numbers: approximate at the window's edges.
                "bridge_received_estimate": bridge_received,
                "lost_before_bridge_estimate": max(0, n_published - bridge_received)
                if len(s.topics) == 1 else None,
                "lost_in_bridge_estimate": sum(t.get("gaps", 0) for c in clients
                                               for t in c["topics"].values()),
            })
        out.update(_bytes_figures(clients))
        out["by_topic"] = _by_topic(published.get("published_by_topic") or {}, clients)
        critical = _critical_figures(clients + slow)
        if critical is not None:
            out["critical"] = critical
        if slow:
            out["slow_clients_detail"] = _slow_figures(slow, n_published)
        if bare is not None:
            out.update({
                "bare_subscriber_delivered": bare["delivered"],
                "bare_subscriber_msgs_s": round(bare["delivered"] / duration, 1),
                "bare_subscriber_latency_ms": percentiles_ms(decode_ns_array(bare["latencies_ns"])),
            })
        return out

    def _memory(self, start: dict[str, float], end: dict[str, float]) -> dict[str, Any]:
        out: dict[str, Any] = {"bridge_rss_mb_start": start.get("rss"),
                               "bridge_rss_mb_end": end.get("rss"),
                               "bridge_rss_mb_peak": end.get("hwm")}
        if not self.is_peer:
            config = BridgeConfig()
            params = dict(self.scenario.bridge_parameters)
            outbox = int(params.get("outbox_max_bytes", config.outbox_max_bytes))
            write_limit = int(params.get("write_limit_bytes", config.write_limit_bytes))
            # Per client: the outbox, its CRITICAL cap (the same size), the transport's buffer.
            per_client = 2 * outbox + write_limit
            out["bridge_memory_bound_mb"] = round(
                per_client * (self.scenario.clients + self.scenario.slow_clients) / 2**20, 1)
        return out

    def _bridge_side(self, backpressure: dict[str, Any] | None, clients: list[dict[str, Any]],
                     slow: list[dict[str, Any]]) -> dict[str, Any]:
        if backpressure is None:
            return {}
        critical_dropped = sum(c.get("by_priority", {}).get("CRITICAL", {}).get("dropped", 0)
                               for c in backpressure.get("clients", []))
        out: dict[str, Any] = {"bridge_backpressure": {
            k: backpressure.get(k) for k in ("max_utilization", "dropped", "conflated",
                                             "handoff_dropped", "overflow_disconnects")}}
        out["bridge_backpressure"]["critical_dropped"] = critical_dropped
        ports = {c.get("local_port") for c in slow}
        for c in backpressure.get("clients", []):
            if c.get("remote", "").rsplit(":", 1)[-1] in {str(p) for p in ports if p}:
                out.setdefault("slow_clients_bridge_side", []).append(
                    {k: c.get(k) for k in ("state", "peak_utilization", "queued_bytes",
                                           "max_bytes", "pushed", "delivered", "dropped",
                                           "conflated", "by_priority")})
        return out

    def _bottlenecks(self, r: dict[str, Any]) -> list[str]:
        notes = []
        if r.get("foreign_publishers"):
            notes.append(f"INVALID: {r['foreign_publishers']} other publisher(s) on the "
                         "scenario's topics (another run on the same ROS_DOMAIN_ID?): counts "
                         "and latencies mix both")
        by_process = r.get("clients_cpu_pct_by_process") or [r.get("clients_cpu_pct", 0.0)]
        busy = [i for i, pct in enumerate(by_process) if pct >= SATURATED_CPU_PCT]
        if busy:
            notes.append(f"load generator: client process(es) {busy} at "
                         f"{max(by_process):.0f} % of a core")
        if self.scenario.rate_hz and r.get("publisher_cpu_pct", 0.0) >= SATURATED_CPU_PCT:
            notes.append(f"load generator: publisher at {r['publisher_cpu_pct']:.0f} % of a core")
        if r.get("bridge_cpu_pct", 0.0) >= SATURATED_CPU_PCT:
            notes.append(f"bridge at {r['bridge_cpu_pct']:.0f} % of a core")
        if r.get("machine_cpu_busy_pct", 0.0) >= MACHINE_SATURATED_PCT:
            notes.append(f"machine: all cores busy ({r['machine_cpu_busy_pct']:.0f} %)")
        return notes

    def _targets(self, r: dict[str, Any]) -> dict[str, dict[str, Any]]:
        s = self.scenario
        p95 = (r.get("latency_ms") or {}).get("p95")
        drop = r.get("drop_pct")
        held = r.get("clients_connected_at_end", 0)
        targets = {
            "p95_ms": _target(p95, TARGET_P95_MS, None if p95 is None else p95 < TARGET_P95_MS,
                              f"p95 < {TARGET_P95_MS:g} ms"),
            "drop_pct": _target(drop, TARGET_DROP_PCT,
                                None if drop is None else drop < TARGET_DROP_PCT,
                                f"drops < {TARGET_DROP_PCT:g} %"),
            "clients_held": _target(held, s.clients, held >= s.clients,
                                    f"{s.clients} clients held"),
        }
        critical = r.get("critical")
        if critical is not None or s.slow_clients:
            dropped = max((critical or {}).get("dropped", 0),
                          (r.get("bridge_backpressure") or {}).get("critical_dropped", 0))
            targets["critical_dropped"] = _target(dropped, 0, dropped == 0,
                                                  "no CRITICAL message dropped")
        if s.slow_clients and r.get("bridge_memory_bound_mb") is not None \
                and r.get("bridge_rss_mb_start") is not None:
            growth = round(r["bridge_rss_mb_end"] - r["bridge_rss_mb_start"], 1)
            targets["bridge_memory_growth_mb"] = _target(
                growth, r["bridge_memory_bound_mb"], growth <= r["bridge_memory_bound_mb"],
                "bridge memory growth within the outbox bounds")
        return targets

    def _stop_all(self) -> int | None:
        """Clients first (they close their connections), then the rest, the bridge last."""
        bridge_exit = None
        for child in reversed(self._started):
            is_bridge = child is self._bridge
            code = child.stop(signal.SIGINT if is_bridge else signal.SIGTERM,
                              command_first=not is_bridge)
            if is_bridge:
                bridge_exit = code
        self._started.clear()
        return bridge_exit


def _concat(encoded: Any) -> np.ndarray:
    arrays = [decode_ns_array(e) for e in encoded]
    return np.concatenate(arrays) if arrays else np.empty(0, np.int64)


def _bytes_figures(clients: list[dict[str, Any]]) -> dict[str, Any]:
    """Compression and bytes per message, from what the clients received inside the window."""
    wire = sum(c.get("wire_bytes", 0) for c in clients)
    raw = sum(c.get("raw_bytes", 0) for c in clients)
    records = sum(c.get("frame_records", 0) for c in clients)
    frames = sum(c.get("frames", 0) for c in clients)
    out: dict[str, Any] = {
        "frames_received": frames,
        "records_per_frame": round(records / frames, 2) if frames else None,
        "compression_ratio": round(wire / raw, 4) if raw else None,
        "wire_bytes_per_msg": round(wire / records, 1) if records else None,
        "raw_bytes_per_msg": round(raw / records, 1) if records else None,
    }
    # JSON: mean size per topic from the samples, weighted by what each topic delivered.
    sizes: dict[str, tuple[float, int]] = {}
    for c in clients:
        for topic, t in c.get("topics", {}).items():
            if t.get("json_samples"):
                total, n = sizes.get(topic, (0.0, 0))
                sizes[topic] = (total + t["json_bytes_mean"] * t["json_samples"],
                                n + t["json_samples"])
    if sizes:
        delivered = {topic: sum(c["topics"].get(topic, {}).get("delivered", 0) for c in clients)
                     for topic in sizes}
        count = sum(delivered.values())
        json_per_msg = sum(sizes[t][0] / sizes[t][1] * delivered[t] for t in sizes) / count \
            if count else None
        out["json_bytes_per_msg"] = round(json_per_msg, 1) if json_per_msg else None
        if json_per_msg and out["wire_bytes_per_msg"]:
            out["reduction_vs_json_pct"] = round(
                100.0 * (1.0 - out["wire_bytes_per_msg"] / json_per_msg), 1)
    return out


def _by_topic(published: dict[str, int], clients: list[dict[str, Any]]) -> dict[str, Any]:
    names = sorted(set(published) | {t for c in clients for t in c.get("topics", {})})
    out = {}
    for name in names:
        entries = [c["topics"][name] for c in clients if name in c.get("topics", {})]
        delivered = sum(e["delivered"] for e in entries)
        samples = sum(e.get("json_samples", 0) for e in entries)
        json_mean = (sum(e.get("json_bytes_mean", 0) * e.get("json_samples", 0) for e in entries)
                     / samples) if samples else None
        expected = published.get(name, 0) * len(clients)
        out[name] = {
            "published": published.get(name), "expected": expected, "delivered": delivered,
            "drop_pct": round(100.0 * max(0, expected - delivered) / expected, 3)
            if expected else None,
            "sequence_gaps": sum(e.get("gaps", 0) for e in entries),
            "data_bytes_per_msg": round(sum(e["data_bytes"] for e in entries) / delivered, 1)
            if delivered else None,
            "json_bytes_per_msg": round(json_mean, 1) if json_mean else None,
        }
    return out


def _critical_figures(clients: list[dict[str, Any]]) -> dict[str, Any] | None:
    """CRITICAL records are delivered to every subscribed client, and the bridge numbers a
    topic's messages contiguously: every sequence number between the lowest and the highest
    any client saw in the window must reach every client. What is missing was dropped."""
    by_topic: dict[str, list[set[int]]] = {}
    for c in clients:
        for topic, t in c.get("topics", {}).items():
            if t.get("critical_sequences"):
                by_topic.setdefault(topic, [])
    if not by_topic:
        return None
    missing = 0
    per_client = []
    reference_count = 0
    for topic in by_topic:
        seen = [set(c.get("topics", {}).get(topic, {}).get("critical_sequences", []))
                for c in clients]
        every = set().union(*seen)
        reference = set(range(min(every), max(every) + 1))
        reference_count += len(reference)
        for i, own in enumerate(seen):
            lacking = len(reference - own)
            missing += lacking
            if lacking:
                per_client.append({"client": i, "topic": topic, "missing": lacking})
    delays = {kind: _concat(c.get("critical_delay_ns", "") for c in clients
                            if c.get("kind", "native") == kind)
              for kind in {c.get("kind", "native") for c in clients}}
    return {"topics": sorted(by_topic), "messages": reference_count,
            "dropped": missing, "missing_by_client": per_client,
            # bridge receive -> client receive of the CRITICAL records, per kind of client
            "delay_ms": {kind: percentiles_ms(d) for kind, d in sorted(delays.items())}}


# What the bridge reports of a connection's link (/api/performance/connections).
LINK_FIGURES = ("link",)


def _link_figures(spec: LinkSpec, r: dict[str, Any], start_ns: int, end_ns: int,
                  changed_ns: int, kernel_queued: int | None,
                  estimates: list[dict[str, Any]],
                  published_by_topic: dict[str, int]) -> dict[str, Any]:
    """One link client: CRITICAL delays and order, how full the link was, and per topic the
    delivered rate against the published one, the age of what arrived and how evenly it
    arrived (the coefficient of variation of the gaps between arrivals: 0 is a metronome)."""
    duration_s = (end_ns - start_ns) / 1e9
    later = spec.later_rate_kbit if spec.later_rate_kbit is not None else spec.rate_kbit
    # What the link could carry in the window (tbf counts IP packets: headers included, so
    # a WebSocket payload fills at most ~96 % of it).
    capacity_bytes = (spec.rate_kbit * (changed_ns - start_ns)
                      + later * (end_ns - changed_ns)) / 1e9 * 1000 / 8
    critical = decode_ns_array(r.get("critical_delay_ns", ""))
    sequences = [seq for t in r["topics"].values() for seq in t.get("critical_sequences", [])]
    topics: dict[str, Any] = {}
    after_change: dict[str, Any] = {}
    for name, t in r["topics"].items():
        arrivals = decode_ns_array(t["arrivals_ns"]) if "arrivals_ns" in t else np.empty(0)
        ages = decode_ns_array(t["ages_ns"]) if "ages_ns" in t else np.empty(0, np.int64)
        entry: dict[str, Any] = {"delivered": t["delivered"],
                                 "published": published_by_topic.get(name),
                                 "rate_hz": round(t["delivered"] / duration_s, 1),
                                 "age_ms": percentiles_ms(ages)}
        if len(arrivals) > 2:
            gaps = np.diff(np.sort(arrivals))
            entry["spacing_ms"] = percentiles_ms(gaps)
            entry["spacing_cv"] = round(float(np.std(gaps) / np.mean(gaps)), 2)
        topics[name] = entry
        if spec.later_rate_kbit is not None and len(arrivals) == len(ages) and len(ages):
            late = ages[arrivals >= changed_ns + 2_000_000_000]  # the estimate had 2 s
            after_change[name] = percentiles_ms(late)
    out: dict[str, Any] = {
        "rate_kbit": spec.rate_kbit, "later_rate_kbit": spec.later_rate_kbit,
        "connected_at_end": r["connected_at_end"],
        "critical_received": len(sequences),
        # In order and none missing: strictly consecutive sequence numbers per topic.
        "critical_in_order": all(
            list(t["critical_sequences"]) == list(range(t["critical_sequences"][0],
                                                        t["critical_sequences"][0]
                                                        + len(t["critical_sequences"])))
            for t in r["topics"].values() if t.get("critical_sequences")),
        "critical_delay_ms": percentiles_ms(critical),
        "wire_bytes": r["wire_bytes"],
        "link_used_pct": round(100.0 * r["wire_bytes"] / capacity_bytes, 1),
        "kernel_send_queue_bytes_at_end": kernel_queued,
        "by_topic": topics,
    }
    if after_change:
        out["age_ms_from_2s_after_change"] = after_change
    if estimates:
        out["bridge_estimates"] = estimates
        if spec.later_rate_kbit is not None:
            out["estimate_change"] = _estimate_change(
                estimates, (changed_ns - start_ns) / 1e9, spec.later_rate_kbit)
    return out


def _estimate_change(series: list[dict[str, Any]], changed_s: float,
                     later_rate_kbit: int) -> dict[str, Any]:
    """The bridge's bandwidth estimate (B/s) at its last reading before the rate change, and
    the seconds from the change to the first reading within 15 % above the new rate (tbf's
    rate counts IP headers, so the payload rate is ~96 % of it: 15 % above is the old
    estimate gone), to the resolution of CONNECTIONS_POLL_S; None if it never did within the
    window."""
    ceiling = later_rate_kbit * 125 * 1.15
    before = followed = None
    for point in series:
        bandwidth = (point.get("link") or {}).get("bandwidth_bytes_per_s")
        if point["t_s"] < changed_s:
            before = bandwidth
        elif bandwidth is not None and bandwidth <= ceiling:
            followed = round(point["t_s"] - changed_s, 2)
            break
    return {"before_Bps": before, "new_rate_Bps": later_rate_kbit * 125,
            "followed_s": followed}


def _slow_figures(slow: list[dict[str, Any]], published: int) -> list[dict[str, Any]]:
    out = []
    for c in slow:
        critical = sum(len(t.get("critical_sequences", [])) for t in c["topics"].values())
        out.append({
            "delivered": c["delivered"],
            "delivered_pct": round(100.0 * c["delivered"] / published, 2) if published else None,
            "critical_received": critical,
            "latency_ms": percentiles_ms(decode_ns_array(c["latencies_ns"])),
            "wire_bytes": c["wire_bytes"], "connected_at_end": c["connected_at_end"],
            "close_code": c["close_code"],
            "by_topic": {name: t["delivered"] for name, t in c["topics"].items()},
        })
    return out
