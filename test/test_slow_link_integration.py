"""A client behind a slow link, for real: a network namespace, a veth pair and tbf (2 Mbit/s,
then 1 Mbit/s from the middle of the window, with `tc qdisc change`), a real bridge process,
rclpy publishers of a camera (LOW, more than the link carries) and a latched e-stop counter
(CRITICAL), and the bench's load client inside the namespace.

Asserts that every CRITICAL message arrives, in order, and that camera frames keep coming at
both rates; prints the delays, never asserts a time (a shared, noisy machine: compare runs).
Needs root; skipped otherwise.
"""
from __future__ import annotations

import os
import time
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
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import UInt32

from rover_ws_bridge.bench.processes import ChildProcess
from rover_ws_bridge.bench.slowlink import ThrottledLink, unavailable_reason
from rover_ws_bridge.bench.stamps import decode_ns_array

CAMERA = f"{TOPIC_PREFIX}/link_camera"
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
    with ThrottledLink(0, rate_kbit=2000) as link:
        bridge = start_bridge(address=link.host_address)
        clock = ros.node.get_clock()

        def camera_frame(n: int) -> CompressedImage:
            msg = CompressedImage(format="jpeg", data=frame)
            msg.header.stamp = clock.now().to_msg()  # the client's age and window: wall clock
            return msg

        periodic_publisher(CompressedImage, CAMERA, qos_profile_sensor_data, 15.0, camera_frame)
        periodic_publisher(UInt32, ESTOP, LATCHED, 20.0, lambda n: UInt32(data=n))
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
        client = ChildProcess(
            "link-client", "rover_ws_bridge.bench.loadclient",
            ["--url", f"ws://{link.host_address}:{bridge.port}", "--topic", CAMERA,
             "--topic", ESTOP, "--timeline", "--drain", str(DRAIN_S), "--ready-timeout", "30"],
            env, tmp_path, prefix=link.exec_prefix)
        try:
            client.wait_for("ready", 40.0)
            start_ns = time.time_ns() + 1_000_000_000
            end_ns = start_ns + int(WINDOW_S * 1e9)
            client.send(f"window {start_ns} {end_ns}")
            time.sleep(max(0.0, (start_ns + end_ns) / 2e9 - time.time()))
            link.change_rate(1000)
            changed_ns = time.time_ns()
            result = client.wait_for("result", WINDOW_S + DRAIN_S + 20.0)["clients"][0]
        finally:
            client.stop()
        print(link.qdisc_stats())

    estop = result["topics"][ESTOP]
    sequences = estop["critical_sequences"]
    # Every CRITICAL message the bridge received in the window reached the client, in order:
    # the bridge numbers a topic's messages contiguously as its subscription receives them.
    assert len(sequences) >= WINDOW_S * 20 * 0.5, sequences
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    assert estop["gaps"] == 0
    assert result["connected_at_end"]

    camera = result["topics"][CAMERA]
    arrivals = np.sort(decode_ns_array(camera["arrivals_ns"]))
    before, after = arrivals[arrivals < changed_ns], arrivals[arrivals >= changed_ns]
    # Frames keep coming at both rates (shed when too old or too large, never stopped).
    assert len(before) >= 2 and len(after) >= 2, (len(before), len(after))

    delays = decode_ns_array(result["critical_delay_ns"])
    gaps = np.diff(arrivals)
    print(f"\nCRITICAL over 2 -> 1 Mbit/s: {len(sequences)} in order, delay bridge -> client "
          f"{_ms(delays)}")
    print(f"camera: {len(before)} frames at 2 Mbit/s, {len(after)} at 1 Mbit/s; spacing "
          f"{_ms(gaps)}, cv {np.std(gaps) / np.mean(gaps):.2f}; age "
          f"{_ms(decode_ns_array(camera.get('ages_ns', '')))}")
