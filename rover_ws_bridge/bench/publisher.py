"""The bench publisher: sensor_msgs/Imu on the given topics at an exact rate, or flat out.

    python -m rover_ws_bridge.bench.publisher --rate 200 --topic /imu

Not the sim: its rates are exact and controllable, and every message's header.stamp is the
wall-clock time (time.time_ns) read right before `publish`, which is what latency is measured
from. QoS: sensor data (best effort, volatile, keep last 5), as IMU drivers publish.

Rate: deadlines on the monotonic clock, so sleep overshoot does not accumulate; if the loop
falls more than `MAX_BACKLOG_S` behind it drops the backlog rather than bursting. `--rate 0`
publishes in a tight loop (one message per topic per iteration).

Speaks the runner's line protocol (control.py): "ready" once the publishers exist, "result"
once the window has passed, with the number of messages whose stamp lies in the window.
"""
from __future__ import annotations

import argparse
import sys
import time

import rclpy
from rclpy.qos import qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Imu

from ..ros.qos_events import no_publisher_events
from .control import Commands, emit, shut_down_ros, stop_on_signals

NODE_NAME = "bench_publisher"
MAX_BACKLOG_S = 0.5


def imu_sample() -> Imu:
    msg = Imu()
    msg.header.frame_id = "imu_link"
    msg.orientation.w = 1.0
    msg.angular_velocity.z = 0.1
    msg.linear_acceleration.x = 0.05
    msg.linear_acceleration.z = 9.80665
    msg.orientation_covariance = [1e-4, 0.0, 0.0, 0.0, 1e-4, 0.0, 0.0, 0.0, 1e-4]
    msg.angular_velocity_covariance = [2e-5, 0.0, 0.0, 0.0, 2e-5, 0.0, 0.0, 0.0, 2e-5]
    msg.linear_acceleration_covariance = [3e-3, 0.0, 0.0, 0.0, 3e-3, 0.0, 0.0, 0.0, 3e-3]
    return msg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rover_ws_bridge.bench.publisher")
    parser.add_argument("--rate", type=float, default=200.0,
                        help="messages per second per topic; 0 = as fast as possible")
    parser.add_argument("--topic", action="append", default=None,
                        help="topic to publish Imu on (repeatable; default /imu)")
    args = parser.parse_args(argv)
    topics = args.topic or ["/imu"]

    stop = stop_on_signals()
    commands = Commands()
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(NODE_NAME)
    try:
        # Nothing spins this node, so the default QoS-event handlers would never run anyway.
        no_events = no_publisher_events()
        publishers = [node.create_publisher(Imu, t, qos_profile_sensor_data,
                                            event_callbacks=no_events) for t in topics]
        msg = imu_sample()
        stamp = msg.header.stamp
        emit("ready", topics=topics, rate_hz=args.rate)

        period = 1.0 / args.rate if args.rate > 0 else 0.0
        deadline = time.monotonic()
        total = 0
        in_window = [0] * len(publishers)
        reported = False
        time_ns = time.time_ns
        while not stop.is_set() and not commands.stopped.is_set():
            if period:
                deadline += period
                delay = deadline - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -MAX_BACKLOG_S:
                    deadline = time.monotonic()
            window = commands.window
            now = 0
            for i, publisher in enumerate(publishers):
                now = time_ns()
                stamp.sec, stamp.nanosec = divmod(now, 1_000_000_000)
                publisher.publish(msg)
                total += 1
                if window is not None and window.start_ns <= now < window.end_ns:
                    in_window[i] += 1
            if window is not None and not reported and now >= window.end_ns:
                reported = True
                published = sum(in_window)
                emit("result", published=published,
                     published_by_topic=dict(zip(topics, in_window)),
                     rate_hz_achieved=published / len(topics) / window.duration_s,
                     total_published=total,
                     # more than ours: someone else publishes on these topics (a concurrent
                     # run that drew the same ROS_DOMAIN_ID), and the counts are off
                     foreign_publishers=sum(node.count_publishers(t) for t in topics)
                     - len(topics))
        return 0
    finally:
        shut_down_ros(node)


if __name__ == "__main__":
    sys.exit(main())
