"""A bare rclpy subscriber, no bridge: how many messages one rclpy process can receive.

    python -m rover_ws_bridge.bench.bare_subscriber --topic /imu

It subscribes the way the bridge does: raw CDR, the QoS the bridge derives from the topic's
publishers (`subscription_qos`, with the bridge's default depth clamps), default QoS-event
handlers off, a SingleThreadedExecutor. Per message it does the least possible: read
header.stamp from the CDR bytes and the receive time. Its rate is the ceiling the bridge's ROS
side could reach on this machine; its latency the floor of the bridge's.

Speaks the runner's line protocol (control.py): "ready" at the first message, "result" once the
window plus `--drain` seconds have passed.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Imu

from ..config import BridgeConfig
from ..ros.node import subscription_qos
from ..ros.qos_events import no_subscription_events
from .control import Commands, emit, shut_down_ros, stop_on_signals
from .stamps import cdr_header_stamp_ns, encode_ns_array

NODE_NAME = "bench_bare_subscriber"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rover_ws_bridge.bench.bare_subscriber")
    parser.add_argument("--topic", default="/imu")
    parser.add_argument("--drain", type=float, default=1.0,
                        help="seconds after the window during which late messages still count")
    parser.add_argument("--ready-timeout", type=float, default=30.0)
    args = parser.parse_args(argv)

    stop = stop_on_signals()
    commands = Commands()
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(NODE_NAME)
    executor = SingleThreadedExecutor()
    latencies: list[int] = []
    counts = {"received": 0, "in_window": 0}
    time_ns = time.time_ns

    def on_message(cdr: bytes) -> None:
        now = time_ns()
        counts["received"] += 1
        window = commands.window
        if window is not None:
            stamp = cdr_header_stamp_ns(cdr)
            if window.start_ns <= stamp < window.end_ns:
                counts["in_window"] += 1
                latencies.append(now - stamp)

    try:
        started = time.monotonic()
        publishers = node.get_publishers_info_by_topic(args.topic)
        while not publishers:
            if stop.is_set() or time.monotonic() - started > args.ready_timeout:
                emit("error", message=f"no publisher of {args.topic} within "
                                      f"{args.ready_timeout:g} s")
                return 1
            time.sleep(0.05)
            publishers = node.get_publishers_info_by_topic(args.topic)
        defaults = BridgeConfig()
        qos = subscription_qos(publishers, defaults.qos_depth_min, defaults.qos_depth_max)
        node.create_subscription(
            Imu, args.topic, on_message, qos.profile(), raw=True,
            event_callbacks=no_subscription_events())
        executor.add_node(node)
        ready = False
        while not stop.is_set() and not commands.stopped.is_set():
            executor.spin_once(timeout_sec=0.1)
            if not ready:
                if counts["received"]:
                    ready = True
                    emit("ready", reliable=qos.reliable, transient_local=qos.transient_local,
                         depth=qos.depth)
                elif time.monotonic() - started > args.ready_timeout:
                    emit("error", message=f"no message on {args.topic} within "
                                          f"{args.ready_timeout:g} s")
                    return 1
            window = commands.window
            if window is not None and time_ns() >= window.end_ns + int(args.drain * 1e9):
                emit("result", delivered=counts["in_window"], received_total=counts["received"],
                     msgs_s=counts["in_window"] / window.duration_s,
                     latencies_ns=encode_ns_array(np.asarray(latencies, dtype=np.int64)))
                return 0
        return 0
    finally:
        shut_down_ros(node, executor)


if __name__ == "__main__":
    sys.exit(main())
