"""A client behind a slow link, for real: a network namespace, a veth pair and tbf (2 Mbit/s,
then 1 Mbit/s from the middle of the window, with `tc qdisc change`), a real bridge process,
rclpy publishers of a camera (LOW, more than the link carries) and a latched e-stop counter
(CRITICAL), and the bench's load client inside each of two namespaces, each behind its own
link: one client reads large records in pieces (native `chunks`, the client's default), the
other asks for whole records (`--no-chunks`), as a client that does not know chunks.

Asserts that every CRITICAL message arrives, in order, that camera frames keep coming at
both rates, whole (their exact size), in pieces only to the client that asked, and evenly
spaced relative to their own median spacing; prints the delays, never asserts a time (a
shared, noisy machine: compare runs). Needs root; skipped otherwise.

A second test gives a link a NORMAL topic it cannot carry (joint states, 150 Hz of 2.4 kB
that lz4 cannot shrink: 2.9 Mbit/s) beside the e-stop: the topic must be down-sampled, the
records kept evenly spaced (by their publish stamps: which records the bridge kept, not how
the link bunched them), every CRITICAL still in order; it prints how long the bridge's link
estimate took to follow the halving.
"""
from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, TOPIC_PREFIX
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import CompressedImage, JointState
from std_msgs.msg import UInt32

from rover_ws_bridge.bench.processes import ChildProcess
from rover_ws_bridge.bench.slowlink import ThrottledLink, unavailable_reason
from rover_ws_bridge.bench.stamps import decode_ns_array

CAMERA = f"{TOPIC_PREFIX}/link_camera"
JOINTS = f"{TOPIC_PREFIX}/link_joints"
JOINTS_HZ = 150.0
ESTOP = f"{TOPIC_PREFIX}/link_estop"
LATCHED = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
WINDOW_S = 6.0
DRAIN_S = 3.0

pytestmark = pytest.mark.skipif(unavailable_reason() is not None,
                                reason=f"slow link: {unavailable_reason()}")


def _ms(values_ns: np.ndarray) -> str:
    if not len(values_ns):
        return "-"
    p50, p95 = np.percentile(values_ns, [50, 95]) / 1e6
    return f"p50 {p50:.0f} / p95 {p95:.0f} / max {values_ns.max() / 1e6:.0f} ms"


def test_critical_in_order_and_camera_keeps_coming_over_a_slow_link_whose_rate_halves(
        ros, start_bridge, periodic_publisher, tmp_path: Path) -> None:
    # Random bytes: lz4 cannot shrink them, so 15 Hz x 40 kB (4.8 Mbit/s) overfills the link.
    frame = os.urandom(40_000)
    with ThrottledLink(0, rate_kbit=2000) as chunked_link, \
            ThrottledLink(1, rate_kbit=2000) as whole_link:
        # Both clients connect to the first link's address: each namespace's route goes back
        # through its own veth, so each client's data leaves through its own tbf.
        bridge = start_bridge(address=chunked_link.host_address)
        clock = ros.node.get_clock()

        def camera_frame(n: int) -> CompressedImage:
            msg = CompressedImage(format="jpeg", data=frame)
            msg.header.stamp = clock.now().to_msg()  # the client's age and window: wall clock
            return msg

        periodic_publisher(CompressedImage, CAMERA, qos_profile_sensor_data, 15.0, camera_frame)
        periodic_publisher(UInt32, ESTOP, LATCHED, 20.0, lambda n: UInt32(data=n))
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
        clients = {name: ChildProcess(
            f"link-client-{name}", "rover_ws_bridge.bench.loadclient",
            ["--url", f"ws://{chunked_link.host_address}:{bridge.port}", "--topic", CAMERA,
             "--topic", ESTOP, "--encoding", "cdr", "--timeline", "--drain", str(DRAIN_S),
             "--ready-timeout", "30"] + extra, env, tmp_path, prefix=link.exec_prefix)
            for name, link, extra in (("chunks", chunked_link, []),
                                      ("whole", whole_link, ["--no-chunks"]))}
        try:
            for client in clients.values():
                client.wait_for("ready", 40.0)
            start_ns = time.time_ns() + 1_000_000_000
            end_ns = start_ns + int(WINDOW_S * 1e9)
            for client in clients.values():
                client.send(f"window {start_ns} {end_ns}")
            time.sleep(max(0.0, (start_ns + end_ns) / 2e9 - time.time()))
            chunked_link.change_rate(1000)
            whole_link.change_rate(1000)
            changed_ns = time.time_ns()
            results = {name: client.wait_for("result", WINDOW_S + DRAIN_S + 20.0)["clients"][0]
                       for name, client in clients.items()}
        finally:
            for client in clients.values():
                client.stop()
        print(chunked_link.qdisc_stats(), whole_link.qdisc_stats())

    for name, result in results.items():
        estop = result["topics"][ESTOP]
        sequences = estop["critical_sequences"]
        # Every CRITICAL message the bridge received in the window reached the client, in
        # order: the bridge numbers a topic's messages contiguously as it receives them.
        assert len(sequences) >= WINDOW_S * 20 * 0.5, (name, sequences)
        assert sequences == list(range(sequences[0], sequences[0] + len(sequences))), name
        assert estop["gaps"] == 0, name
        assert result["connected_at_end"], name

        camera = result["topics"][CAMERA]
        # Whole frames, put back together from pieces or not: CDR of the same 40 kB each.
        cdr_size = camera["data_bytes"] / camera["delivered"]
        assert cdr_size == int(cdr_size) and 40_000 < cdr_size < 40_200, (name, cdr_size)
        arrivals = np.sort(decode_ns_array(camera["arrivals_ns"]))
        before, after = arrivals[arrivals < changed_ns], arrivals[arrivals >= changed_ns]
        # Frames keep coming at both rates (shed when too old or too large, never stopped).
        assert len(before) >= 2 and len(after) >= 2, (name, len(before), len(after))
        gaps = np.diff(arrivals)
        # Evenly spaced: no gap of more than a few median gaps (a ratio, not a time).
        assert gaps.max() <= 6 * np.median(gaps), (name, gaps)

        delays = decode_ns_array(result["critical_delay_ns"])
        print(f"\n[{name}] CRITICAL over 2 -> 1 Mbit/s: {len(sequences)} in order, delay "
              f"bridge -> client {_ms(delays)}; chunk frames {result['chunk_frames']}, "
              f"records abandoned in pieces {result['chunks_abandoned']}")
        print(f"[{name}] camera: {len(before)} frames at 2 Mbit/s, {len(after)} at 1 Mbit/s; "
              f"spacing {_ms(gaps)}, cv {np.std(gaps) / np.mean(gaps):.2f}; age "
              f"{_ms(decode_ns_array(camera.get('ages_ns', '')))}")
    # Pieces only to the client that asked for them.
    assert results["chunks"]["chunk_frames"] > 0
    assert results["whole"]["chunk_frames"] == 0


def _link_view(host: str, port: int, client_port: int) -> dict | None:
    """The bridge's link figures for the client connected from `client_port` (the API masks
    addresses, not ports)."""
    url = f"http://{host}:{port}/api/performance/connections"
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            connections = json.load(response).get("connections", [])
    except (OSError, ValueError):
        return None
    for c in connections:
        if c.get("remote", "").rsplit(":", 1)[-1] == str(client_port):
            return c.get("link") or {}
    return None


def _estimate(view: dict | None) -> float | None:
    view = view or {}
    return view.get("saturated_bytes_per_s") or view.get("bandwidth_bytes_per_s")


def test_normal_topic_evenly_down_sampled_over_a_link_too_slow_for_it(
        ros, start_bridge, periodic_publisher, tmp_path: Path) -> None:
    with ThrottledLink(0, rate_kbit=2000) as link:
        bridge = start_bridge(address=link.host_address)
        clock = ros.node.get_clock()

        def joint_state(n: int) -> JointState:
            msg = JointState(position=np.random.random(300).tolist())
            msg.header.stamp = clock.now().to_msg()
            return msg

        periodic_publisher(JointState, JOINTS, qos_profile_sensor_data, JOINTS_HZ, joint_state)
        periodic_publisher(UInt32, ESTOP, LATCHED, 20.0, lambda n: UInt32(data=n))
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
        client = ChildProcess(
            "link-client-joints", "rover_ws_bridge.bench.loadclient",
            ["--url", f"ws://{link.host_address}:{bridge.port}", "--topic", JOINTS, "--topic",
             ESTOP, "--encoding", "cdr", "--timeline", "--drain", str(DRAIN_S),
             "--ready-timeout", "30"], env, tmp_path, prefix=link.exec_prefix)
        try:
            client_port = client.wait_for("ready", 40.0)["ports"][0]
            start_ns = time.time_ns() + 1_000_000_000
            end_ns = start_ns + int(WINDOW_S * 1e9)
            client.send(f"window {start_ns} {end_ns}")
            time.sleep(max(0.0, (start_ns + end_ns) / 2e9 - time.time()))
            view_before = _link_view(link.host_address, bridge.port, client_port)
            link.change_rate(1000)
            changed_ns = time.time_ns()
            # How long the estimate takes to follow: polled every 0.1 s (printed, not asserted).
            followed_s, readings = None, []
            while time.time_ns() < end_ns and followed_s is None:
                estimate = _estimate(_link_view(link.host_address, bridge.port,
                                                client_port))
                since = (time.time_ns() - changed_ns) / 1e9
                readings.append((round(since, 2), estimate))
                if estimate is not None and estimate <= 1000 * 125 * 1.15:
                    followed_s = since
                time.sleep(0.1)
            view_end = _link_view(link.host_address, bridge.port, client_port)
            result = client.wait_for("result", WINDOW_S + DRAIN_S + 20.0)["clients"][0]
        finally:
            client.stop()
        print(link.qdisc_stats())

    sequences = result["topics"][ESTOP]["critical_sequences"]
    assert len(sequences) >= WINDOW_S * 20 * 0.5, sequences
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    assert result["connected_at_end"]
    joints = result["topics"][JOINTS]
    arrivals = decode_ns_array(joints["arrivals_ns"])
    ages = decode_ns_array(joints["ages_ns"])
    stamps = np.sort(arrivals - ages)  # publish times of the records delivered
    kept = np.diff(stamps)
    missing = joints["gaps"]  # records between the first and last delivered that were not
    # Down-sampled (it does not fit)...
    assert len(stamps) > 10 and missing > 0.2 * (len(stamps) + missing), (len(stamps), missing)
    # ... and evenly, by the stamps of the records kept, at each rate (from 1 s after the
    # window opens or the rate changes: the estimate and the budget need that long): nearly
    # every 100 ms of publishing has a record kept (no bursts between holes), a tolerant
    # test on a shared machine where the publisher itself stalls at times. The coefficient
    # of variation of the gaps is printed.
    halves = {}
    for name, lo, hi in (("2 Mbit/s", start_ns + 1e9, changed_ns),
                         ("1 Mbit/s", changed_ns + 1e9, end_ns)):
        inside = stamps[(stamps >= lo) & (stamps < hi)]
        gaps = np.diff(inside)
        assert len(gaps) > 5, (name, len(gaps))
        bins = np.unique(((inside - lo) // 100_000_000).astype(np.int64))
        covered = len(bins) / max(1, -int(-(hi - lo) // 100_000_000))
        halves[name] = {"kept": len(inside), "cv": round(float(np.std(gaps) / np.mean(gaps)), 2),
                        "median_gap_ms": round(float(np.median(gaps)) / 1e6, 1),
                        "covered": round(covered, 2)}
        assert covered >= 0.7, (name, halves[name])
    link_gaps = np.diff(np.sort(arrivals))
    delays = decode_ns_array(result["critical_delay_ns"])
    print(f"\nNORMAL {JOINTS} over 2 -> 1 Mbit/s: {len(stamps)} delivered, {missing} left "
          f"out between them; gaps between kept stamps {_ms(kept)}; by rate {halves}; "
          f"arrival gaps cv {np.std(link_gaps) / np.mean(link_gaps):.2f}; age {_ms(ages)}")
    print(f"CRITICAL: {len(sequences)} in order, delay bridge -> client {_ms(delays)}")
    print(f"the bridge's estimate: {_estimate(view_before)} B/s before the halving to "
          f"125,000 B/s; within 15 % of it "
          f"{'never' if followed_s is None else f'{followed_s:.2f} s'} after it; readings "
          f"{readings[:25]}; at the end {view_end}")
