"""Runs one scenario: starts the bridge, the publisher and the clients, measures, stops them.

Timeline of a scenario:

    bridge up (port 0) -> publisher up -> clients (and bare subscriber) ready (data flowing)
    -> warm-up -> [measurement window: `duration` s] -> drain -> results -> stop, in order

The window is a pair of wall-clock instants sent to every child. The publisher counts the
messages it stamps inside it (`published`); clients count the records stamped inside it that
reach them by the end of the drain (`delivered`). CPU time of every process (utime + stime from
/proc/<pid>/stat) is sampled at the window's start and end.

The idle scenario runs the bridge alone and only samples its CPU.
"""
from __future__ import annotations

import json
import signal
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .processes import ChildProcess, machine_cpu_s
from .report import percentiles_ms
from .scenarios import Scenario
from .stamps import decode_ns_array

BRIDGE_MODULE = "rover_ws_bridge.ros.node"
PUBLISHER_MODULE = "rover_ws_bridge.bench.publisher"
LOADCLIENT_MODULE = "rover_ws_bridge.bench.loadclient"
BARE_SUBSCRIBER_MODULE = "rover_ws_bridge.bench.bare_subscriber"
LISTENING = r"listening on (ws://\S+)"


@dataclass(frozen=True)
class RunSettings:
    duration_s: float
    warmup_s: float
    drain_s: float
    env: dict[str, str]
    log_dir: Path
    start_timeout_s: float = 30.0


class _CpuClock:
    """CPU seconds of a set of processes and of the machine, between two samples."""

    def __init__(self, processes: dict[str, list[ChildProcess]]) -> None:
        self.processes = processes
        self._start: dict[str, float] = {}
        self._start_machine = (0.0, 0.0)
        self._start_wall = 0.0
        self._bridge_at_start = (0.0, 0.0)
        self.elapsed_s = 0.0

    @staticmethod
    def _sum(group: list[ChildProcess]) -> float:
        return sum(p.cpu_s() or 0.0 for p in group)

    def start(self) -> None:
        self._start_wall = time.monotonic()
        self._start_machine = machine_cpu_s()
        self._start = {name: self._sum(group) for name, group in self.processes.items()}
        self._bridge_at_start = self._bridge_times()

    def _bridge_times(self) -> tuple[float, float]:
        return self.processes["bridge"][0].cpu_times() or (0.0, 0.0)

    def stop(self) -> dict[str, float]:
        """Percent of one core per group, and `machine_cpu_busy_pct` of all cores."""
        ends = {name: self._sum(group) for name, group in self.processes.items()}
        busy, total = machine_cpu_s()
        self.elapsed_s = time.monotonic() - self._start_wall
        out = {f"{name}_cpu_pct": round(100.0 * (ends[name] - self._start[name])
                                        / self.elapsed_s, 1) for name in self.processes}
        # User vs kernel time of the bridge: a high system share means wake-ups and socket
        # writes (per message or per frame), not Python work, are what costs.
        user, system = self._bridge_times()
        out["bridge_cpu_user_pct"] = round(100.0 * (user - self._bridge_at_start[0])
                                           / self.elapsed_s, 1)
        out["bridge_cpu_system_pct"] = round(100.0 * (system - self._bridge_at_start[1])
                                             / self.elapsed_s, 1)
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


def _bridge_health(url: str) -> dict[str, Any] | None:
    http = url.replace("ws://", "http://", 1).rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(http, timeout=2.0) as response:
            return json.load(response)
    except (OSError, ValueError):
        return None


class ScenarioRun:
    """One run of one scenario. `run()` returns its result entry (see report.py)."""

    def __init__(self, scenario: Scenario, settings: RunSettings) -> None:
        self.scenario = scenario
        self.settings = settings
        self._started: list[ChildProcess] = []

    def _start(self, name: str, module: str, args: list[str]) -> ChildProcess:
        child = ChildProcess(name, module, args, self.settings.env, self.settings.log_dir)
        self._started.append(child)
        return child

    def run(self) -> dict[str, Any]:
        s = self.scenario
        result: dict[str, Any] = {
            "name": s.name, "description": s.description, "clients": s.clients,
            "client_processes": s.client_processes, "rate_hz": s.rate_hz,
            "topics": list(s.topics) if not s.is_idle else [], "encoding": s.encoding,
            "duration_s": self.settings.duration_s,
        }
        bridge_exit: int | None = None
        try:
            bridge = self._start_bridge()
            url = bridge.wait_for("line", self.settings.start_timeout_s,
                                  LISTENING)["text"].split()[-1]
            if s.is_idle:
                result.update(self._measure_idle(bridge))
            else:
                result.update(self._measure_load(bridge, url))
            health = _bridge_health(url)
            if health is not None and "handoff_dropped" in health:
                result["bridge_handoff_dropped_total"] = health["handoff_dropped"]
        finally:
            bridge_exit = self._stop_all()
        result["bridge_exit_code"] = bridge_exit
        return result

    # -- pieces --------------------------------------------------------------------------------

    def _start_bridge(self) -> ChildProcess:
        args = ["--ros-args", "-p", "port:=0", "-p", "address:=127.0.0.1"]
        for name, value in self.scenario.bridge_parameters:
            args += ["-p", f"{name}:={value}"]
        return self._start(f"{self.scenario.name}-bridge", BRIDGE_MODULE, args)

    def _measure_idle(self, bridge: ChildProcess) -> dict[str, Any]:
        time.sleep(self.settings.warmup_s)
        clock = _CpuClock({"bridge": [bridge]})
        clock.start()
        time.sleep(self.settings.duration_s)
        cpu = clock.stop()
        return {"published": 0, "expected": 0, "delivered": 0, "throughput_msgs_s": 0.0,
                "latency_ms": None, "idle_cpu_pct": cpu["bridge_cpu_pct"], **cpu}

    def _measure_load(self, bridge: ChildProcess, url: str) -> dict[str, Any]:
        s = self.scenario
        settings = self.settings
        topic_args = [a for t in s.topics for a in ("--topic", t)]
        publisher = self._start(f"{s.name}-publisher", PUBLISHER_MODULE,
                                ["--rate", f"{s.rate_hz:g}", *topic_args])
        publisher.wait_for("ready", settings.start_timeout_s)

        bare = None
        if s.bare_subscriber:
            bare = self._start(f"{s.name}-bare-subscriber", BARE_SUBSCRIBER_MODULE,
                               ["--topic", s.topics[0], "--drain", f"{settings.drain_s:g}",
                                "--ready-timeout", f"{settings.start_timeout_s:g}"])
        client_args = ["--url", url, "--clients", str(s.clients_per_process), *topic_args,
                       "--encoding", s.encoding, "--drain", f"{settings.drain_s:g}",
                       "--ready-timeout", f"{settings.start_timeout_s:g}"]
        if s.compression is not None:
            client_args += ["--compression", s.compression]
        clients = [self._start(f"{s.name}-clients-{i}", LOADCLIENT_MODULE, client_args)
                   for i in range(s.client_processes)]
        for child in clients:
            child.wait_for("ready", settings.start_timeout_s + 5)
        bare_ready = bare.wait_for("ready", settings.start_timeout_s + 5) if bare else None

        groups = {"bridge": [bridge], "publisher": [publisher], "clients": clients}
        if bare is not None:
            groups["bare_subscriber"] = [bare]
        clock = _CpuClock(groups)
        start_ns = time.time_ns() + int(settings.warmup_s * 1e9)
        end_ns = start_ns + int(settings.duration_s * 1e9)
        for child in [publisher, *clients] + ([bare] if bare else []):
            child.send(f"window {start_ns} {end_ns}")
        _sleep_until_ns(start_ns)
        clock.start()
        _sleep_until_ns(end_ns)
        cpu = clock.stop()

        published = publisher.wait_for("result", 10.0)
        results_timeout = settings.drain_s + 15.0
        client_results = [r for c in clients
                          for r in c.wait_for("result", results_timeout)["clients"]]
        bare_result = bare.wait_for("result", results_timeout) if bare else None
        figures = self._figures(published, client_results, bare_result, cpu)
        if bare_ready is not None:
            figures["bare_subscriber_qos"] = {k: bare_ready[k]
                                              for k in ("reliable", "transient_local", "depth")}
        return figures

    def _figures(self, published: dict[str, Any], clients: list[dict[str, Any]],
                 bare: dict[str, Any] | None, cpu: dict[str, float]) -> dict[str, Any]:
        s = self.scenario
        duration = self.settings.duration_s
        n_published = int(published["published"])
        expected = n_published * s.clients  # every client subscribes to every topic
        delivered = sum(c["delivered"] for c in clients)
        end_to_end = [decode_ns_array(c["latencies_ns"]) for c in clients]
        ros_leg = [decode_ns_array(c["ros_leg_ns"]) for c in clients]
        e2e = np.concatenate(end_to_end) if end_to_end else np.empty(0, np.int64)
        ros = np.concatenate(ros_leg) if ros_leg else np.empty(0, np.int64)
        bridge_received = max((c["bridge_received_estimate"] for c in clients), default=0)
        per_client = sorted(c["delivered"] for c in clients)
        out: dict[str, Any] = {
            "published": n_published,
            "publisher_rate_hz_achieved": round(published["rate_hz_achieved"], 1),
            "expected": expected,
            "delivered": delivered,
            "delivered_pct": round(100.0 * delivered / expected, 2) if expected else None,
            "throughput_msgs_s": round(delivered / duration, 1),
            "latency_ms": percentiles_ms(e2e),
            # Where the time goes: publisher -> bridge's ROS callback, then bridge -> client.
            "ros_leg_latency_ms": percentiles_ms(ros),
            "websocket_leg_latency_ms": percentiles_ms(e2e - ros),
            # From the bridge's per-topic sequence numbers: approximate at the window's edges.
            "bridge_received_estimate": bridge_received,
            "lost_before_bridge_estimate": max(0, n_published - bridge_received),
            "lost_in_bridge_estimate": max(0, bridge_received * s.clients - delivered),
            "per_client_delivered_min": per_client[0] if per_client else 0,
            "per_client_delivered_max": per_client[-1] if per_client else 0,
            "client_dropped_locally": sum(c.get("dropped_locally", 0) for c in clients),
            "backpressure_statuses": sum(c.get("backpressure_statuses", 0) for c in clients),
            **cpu,
        }
        if bare is not None:
            out.update({
                "bare_subscriber_delivered": bare["delivered"],
                "bare_subscriber_msgs_s": round(bare["delivered"] / duration, 1),
                "bare_subscriber_latency_ms": percentiles_ms(decode_ns_array(bare["latencies_ns"])),
            })
        return out

    def _stop_all(self) -> int | None:
        """Clients first (they close their connections), then the rest, the bridge last."""
        bridge_exit = None
        for child in reversed(self._started):
            is_bridge = child.name.endswith("-bridge")
            code = child.stop(signal.SIGINT if is_bridge else signal.SIGTERM,
                              command_first=not is_bridge)
            if is_bridge:
                bridge_exit = code
        self._started.clear()
        return bridge_exit
